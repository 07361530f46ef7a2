"""The service walk-through of the demo (and of the end-to-end test): over HTTP, a decision for a customer, a
ticket-opened event, the next decision suppressing promotions with the rule's message, a ticket-closed event,
and the promotion eligible again; then feedback on the decision."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from nextbest.errors import UnavailableError

PROMOS = ("email_promo", "discount_10", "discount_20")


@dataclass
class Walkthrough:
    customer_id: int
    steps: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def add(self, title: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.steps.append((title, payload))
        return payload


def start_service(
    home: Path, port: int, log_file: Path, extra_env: dict[str, str] | None = None, instance_id: str | None = None
) -> subprocess.Popen[bytes]:
    """``nextbest serve`` as a background process in its own session (stop it with :func:`stop_service`);
    ``instance_id``: what its ``/ready`` reports, for :func:`wait_ready` to check."""
    env = {**os.environ, "NEXTBEST_HOME": str(home), **(extra_env or {})}
    if instance_id is not None:
        env["NEXTBEST_SERVING__INSTANCE_ID"] = instance_id
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "nextbest.cli", "serve", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def wait_ready(
    base: str, process: subprocess.Popen[bytes] | None = None, timeout: float = 120.0, instance_id: str | None = None
) -> float:
    """Seconds until the service at ``base`` is ready. With ``instance_id``, the service answering must report
    it (another service on the port, e.g. a demo of another checkout, is an error, not a success)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process is not None and process.poll() is not None:
            raise UnavailableError(f"the service exited with code {process.returncode} while starting")
        try:
            if instance_id is None:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    return time.monotonic() - started
            else:
                r = httpx.get(f"{base}/ready", timeout=2)
                if r.status_code == 200:
                    answered = r.json().get("details", {}).get("instance_id")
                    if answered != instance_id:
                        raise UnavailableError(
                            f"another service answers at {base} (not the one just started); stop it or use --port"
                        )
                    return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise UnavailableError(f"the service at {base} was not ready after {timeout:.0f} s")


def stop_service(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def find_promo_customer(client: httpx.Client, candidates: range) -> tuple[int, dict[str, Any]]:
    """A customer whose current best action is a promotion (so the ticket guardrail has something to stop)."""
    fallback = None
    for customer in candidates:
        d = client.post("/decide", json={"customer_id": customer, "channel": "email"}).json()
        if d.get("degraded"):
            continue
        if d["greedy_action"] in PROMOS and not d["control"]:
            return customer, d
        eligible = [c for c in d["candidates"] if c["eligible"] and c["action"] in PROMOS]
        if fallback is None and eligible:
            fallback = (customer, d)
    if fallback is None:
        raise UnavailableError("no customer with an eligible promotion found")
    return fallback


def run_walkthrough(base: str, customers: range = range(1, 400), api_key: str | None = None) -> Walkthrough:
    headers = {"X-API-Key": api_key} if api_key else {}
    with httpx.Client(base_url=base, timeout=10, headers=headers) as client:
        customer, first = find_promo_customer(client, customers)
        w = Walkthrough(customer)
        w.add("decision", first)
        ticket = 900_000 + customer
        w.add(
            "ticket opened",
            client.post(
                "/events",
                json={
                    "type": "ticket_opened",
                    "customer_id": customer,
                    "ticket_id": ticket,
                    "severity": 2,
                    "timestamp": _now(),
                },
            ).json(),
        )
        w.add(
            "decision during the ticket",
            client.post("/decide", json={"customer_id": customer, "channel": "email"}).json(),
        )
        w.add(
            "ticket closed",
            client.post(
                "/events",
                json={"type": "ticket_closed", "customer_id": customer, "ticket_id": ticket, "timestamp": _now()},
            ).json(),
        )
        last = w.add(
            "decision after the ticket",
            client.post(
                "/decide",
                json={"customer_id": customer, "channel": "email", "request_id": f"demo-{customer}-{int(time.time())}"},
            ).json(),
        )
        w.add(
            "feedback",
            client.post(
                "/feedback", json={"decision_id": last["decision_id"], "type": "impression", "customer_id": customer}
            ).json(),
        )
    return w
