"""POST /decide over HTTP: the real service against its own trivial endpoint and against the naive composition.

Three HTTP targets, each driven by ``wrk`` at concurrency 1, 8 and 32 (random customer per request):
  1. ``/ping`` of the same ``nextbest serve`` (BentoML) process: the ceiling of the server itself;
  2. ``POST /decide`` of ``nextbest serve``: 20 candidate actions, online features, contact history, model,
     rules, arbitration, exploration and the decision-log write;
  3. the naive composition a user would otherwise assemble: ``feast serve`` for the features, ``mlflow models
     serve`` for the scores of the same champion, and a caller that does both calls per request and applies
     the guardrails (consent, open ticket, app users) and the net-value arbitration in Python. The caller is an
     aiohttp server with a keep-alive client session (no contact history, no decision log: less work than
     nextbest does).
Targets at concurrency 8: nextbest >= 60% of /ping and >= 3x the naive composition in requests/s, p99 < 25 ms.

    python benchmarks/http_decide.py [--seconds 8] [--customers 10000] [--home DIR] [--port 3140]

Needs ``wrk`` (``apt-get install -y wrk``; ``make bench`` installs it). Every server runs in its own process
group and is stopped when the script ends, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _decision_world import prepare

WRK_HINT = (
    "wrk is not installed. Install it with `apt-get install -y wrk` (Debian/Ubuntu) or `brew install wrk` "
    "(macOS), or run `make bench`, which installs it."
)
CONCURRENCY = (1, 8, 32)
# wrk: a random customer per request; done() prints the figures as one JSON line.
LUA = """
local path, body_fmt, customers = "%(path)s", '%(body)s', %(customers)d
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end
function init(args)
  math.randomseed(os.time() * 1000 + seed)
end
function request()
  local body = string.format(body_fmt, math.random(1, customers))
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, ' ..
    '"errors": %%d, "status_errors": %%d}\\n', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), e.connect + e.read + e.write + e.timeout, e.status))
end
"""


class Servers:
    """Child processes, each in its own session; all are stopped on exit, error or signal."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        atexit.register(self.stop_all)

    def start(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.procs[name] = proc
        return proc

    def wait(self, name: str, url: str, timeout: float = 180.0) -> float:
        import httpx

        started, proc = time.monotonic(), self.procs[name]
        while time.monotonic() - started < timeout:
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with code {proc.returncode} while starting:\n{tail}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{name} was not ready at {url} after {timeout:.0f} s (log: {self.logs / name}.log)")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.procs.clear()


def wrk(url: str, script: Path, concurrency: int, seconds: int) -> dict[str, float]:
    # One wrk thread drives 32 connections at these rates; a second one takes the servers' core away on a
    # 2-core machine (it multiplies /ping's p99 by 4).
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    r = json.loads(line.removeprefix("RESULT "))
    return {
        "rps": r["requests"] / (r["duration_us"] / 1e6),
        "p50": r["p50_us"] / 1000.0,
        "p99": r["p99_us"] / 1000.0,
        "errors": r["errors"] + r["status_errors"],
        "requests": r["requests"],
    }


def script(directory: Path, name: str, path: str, body: str, customers: int) -> Path:
    file = directory / f"{name}.lua"
    file.write_text(LUA % {"path": path, "body": body, "customers": customers})
    return file


def check_response(url: str, body: dict[str, Any], expect: str) -> None:
    import httpx

    r = httpx.post(url, json=body, timeout=30)
    if r.status_code != 200 or expect not in r.text:
        raise RuntimeError(f"{url} answered {r.status_code}: {r.text[:500]}")


# The naive composition's caller ----------------------------------------------------------------------------
def naive_caller(config_file: Path) -> None:
    """``POST /decide {"customer_id": N}``: features from feast serve, scores from mlflow models serve, the
    guardrails and the arbitration in Python. Run as its own process by :func:`main`."""
    import asyncio

    import aiohttp
    from aiohttp import web

    cfg = json.loads(config_file.read_text())
    actions, control, margin = cfg["actions"], cfg["control"], cfg["margin"]
    numeric, columns = set(cfg["numeric"]), cfg["columns"]
    severe = cfg["severe_ticket_severity"]
    headers = {"Content-Type": "application/json"}

    def eligible(a: dict[str, Any], f: dict[str, Any]) -> bool:
        if a["id"] == control:
            return True
        if a["consent"] and f.get(f"{a['consent']}_opt_in") != 1:
            return False
        if a["category"] == "promo" and (f.get("open_tickets") or 0) > 0:
            return False
        if a["category"] == "reminder" and (f.get("max_open_severity") or 0) >= severe:
            return False
        return not (a["needs_app"] and f.get("app_user") != 1)

    async def decide(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        customer = int(body["customer_id"])
        session: aiohttp.ClientSession = request.app["session"]
        query = {"feature_service": cfg["feature_service"],
                 "entities": {"customer_id": [customer], "request_ts": [int(time.time())]}}  # fmt: skip
        async with session.post(cfg["feast_url"], data=json.dumps(query), headers=headers) as r:
            got = json.loads(await r.read())
        names = got["metadata"]["feature_names"]
        features = {n: res["values"][0] for n, res in zip(names, got["results"], strict=True)}
        row = [
            (None if features.get(c) is None else float(features[c])) if c in numeric else features.get(c)
            for c in columns
        ]
        payload = {"dataframe_split": {"columns": columns, "data": [row]}}
        async with session.post(cfg["mlflow_url"], data=json.dumps(payload), headers=headers) as r:
            scores = json.loads(await r.read())["predictions"][0]
        base = scores[f"revenue_{control}"]
        best, best_net, out = control, margin, []
        for a in actions:
            net = 0.0 if a["id"] == control else scores[f"revenue_{a['id']}"] - base - a["cost"]
            ok = eligible(a, features)
            out.append({"action": a["id"], "eligible": ok, "p": scores[f"p_{a['id']}"], "net_value": net})
            if ok and a["id"] != control and net > best_net:
                best, best_net = a["id"], net
        return web.Response(
            text=json.dumps({"customer_id": customer, "action": best, "candidates": out}),
            content_type="application/json",
        )

    async def session_ctx(app: web.Application) -> Any:
        connector = aiohttp.TCPConnector(limit=128, keepalive_timeout=60)
        app["session"] = aiohttp.ClientSession(connector=connector)
        yield
        await app["session"].close()

    async def ping(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.add_routes([web.post("/decide", decide), web.get("/ping", ping)])
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    web.run_app(app, host="127.0.0.1", port=cfg["port"], access_log=None, print=None)


# The benchmark ---------------------------------------------------------------------------------------------
def start_all(
    servers: Servers, world: dict[str, Any], home: Path, work: Path, ports: dict[str, int], workers: int
) -> None:
    import yaml

    from nextbest.core.catalog import load_catalog
    from nextbest.serving.models import load_serving_model
    from nextbest.settings import load_settings

    bin_dir = Path(sys.executable).parent
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"  # mlflow execs `uvicorn` from the PATH
    env = {**os.environ, "NEXTBEST_HOME": str(home), "PYTHONOPTIMIZE": "1", "PATH": path}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    nextbest_env = {
        **env,
        "NEXTBEST_CATALOG_PATH": world["catalog"],
        "NEXTBEST_DECISION_LOG_URL": f"sqlite:///{work / 'decisions.db'}",  # a fresh log for every run
        "BENTOML_HOME": str(home / "bentoml"),
    }
    serve = ["serve", "--port", str(ports["nextbest"]), "--workers", str(workers)]
    servers.start("nextbest", [sys.executable, "-m", "nextbest.cli", *serve], nextbest_env)

    settings = load_settings(home=home, catalog_path=Path(world["catalog"]))
    repo = work / "feast_repo"
    repo.mkdir(parents=True, exist_ok=True)
    text = string.Template(settings.feature_store_yaml.read_text()).substitute({**os.environ, **settings.template_vars})
    (repo / "feature_store.yaml").write_text(text)
    servers.start(
        "feast",
        [str(bin_dir / "feast"), "-c", str(repo), "serve", "-h", "127.0.0.1", "-p", str(ports["feast"]),
         "--workers", "1", "--no-access-log", "--max-requests", "100000000"],  # no worker recycling: fair
        env,
    )  # fmt: skip
    mlflow_env = {**env, "MLFLOW_TRACKING_URI": str(settings.mlflow_tracking_uri)}
    model_uri = f"models:/{settings.serving.model_name}@{settings.serving.model_alias}"
    servers.start(
        "mlflow",
        [str(bin_dir / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
         "-h", "127.0.0.1", "-p", str(ports["mlflow"]), "--workers", "1"],
        mlflow_env,
    )  # fmt: skip

    model = load_serving_model(settings).model
    assert model is not None
    catalog = load_catalog(Path(world["catalog"]))
    params = yaml.safe_load(Path(str(settings.rule_params_path)).read_text())["params"]
    from nextbest.core.features import DEFAULT_FEATURE_SERVICE

    config = {
        "port": ports["naive"],
        "feast_url": f"http://127.0.0.1:{ports['feast']}/get-online-features",
        "mlflow_url": f"http://127.0.0.1:{ports['mlflow']}/invocations",
        "feature_service": DEFAULT_FEATURE_SERVICE,
        "columns": list(model.feature_names),
        "numeric": list(model.encoder.numeric),
        "control": catalog.control,
        "margin": model.decision_margin,
        "severe_ticket_severity": params["severe_ticket_severity"],
        "actions": [
            {"id": a.id, "cost": a.cost, "consent": a.consent, "category": a.category,
             "needs_app": "push" in a.channels or bool(a.eligibility and "app_user" in a.eligibility)}
            for a in catalog.actions
        ],
    }  # fmt: skip
    (work / "naive.json").write_text(json.dumps(config))
    servers.start("naive", [sys.executable, __file__, "--naive-caller", str(work / "naive.json")], env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8, help="wrk duration per measurement")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--home", type=Path, default=None, help="Reuse (or build once into) this home.")
    parser.add_argument("--port", type=int, default=3140, help="First of four consecutive ports.")
    parser.add_argument("--workers", type=int, default=1, help="Workers of nextbest serve (default: its default).")
    parser.add_argument("--naive-caller", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_caller is not None:
        naive_caller(args.naive_caller)
        return
    if shutil.which("wrk") is None:
        print(f"error: {WRK_HINT}", file=sys.stderr)
        sys.exit(2)
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup on `kill` too

    home = args.home or Path(tempfile.mkdtemp(prefix="nextbest-bench-"))
    world = prepare(home, args.customers)
    work = Path(tempfile.mkdtemp(prefix="http-", dir=home))
    ports = {name: args.port + i for i, name in enumerate(("nextbest", "feast", "mlflow", "naive"))}
    servers = Servers(work)
    try:
        print(f"starting nextbest serve, feast serve, mlflow models serve and the naive caller (logs in {work}) ...",
              flush=True)  # fmt: skip
        start_all(servers, world, home, work, ports, args.workers)
        base = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        ready = {
            "nextbest": servers.wait("nextbest", f"{base['nextbest']}/readyz"),
            "feast": servers.wait("feast", f"{base['feast']}/health"),
            "mlflow": servers.wait("mlflow", f"{base['mlflow']}/ping"),
            "naive": servers.wait("naive", f"{base['naive']}/ping"),
        }
        print("ready: " + ", ".join(f"{k} {v:.0f} s" for k, v in ready.items()), flush=True)
        check_response(f"{base['nextbest']}/decide", {"customer_id": 1, "channel": "any"}, '"degraded":false')
        check_response(f"{base['naive']}/decide", {"customer_id": 1}, '"action"')
        check_response(f"{base['nextbest']}/ping", {}, '"ok"')

        n = world["customers"]
        targets = {
            "nextbest /ping (BentoML, same process)": (
                base["nextbest"] + "/ping",
                script(work, "ping", "/ping", "{}", n),
            ),
            "nextbest POST /decide": (
                base["nextbest"] + "/decide",
                script(work, "decide", "/decide", '{"customer_id": %d, "channel": "any"}', n),
            ),
            "naive: feast serve + mlflow serve + rules": (
                base["naive"] + "/decide",
                script(work, "naive", "/decide", '{"customer_id": %d}', n),
            ),
        }  # fmt: skip
        results: dict[tuple[str, int], dict[str, float]] = {}
        for c in CONCURRENCY:
            for name, (url, lua) in targets.items():
                wrk(url, lua, c, 1)  # warm-up at this concurrency
                results[(name, c)] = r = wrk(url, lua, c, args.seconds)
                print(f"  c={c:<3} {name:<44} {r['rps']:>8.0f} req/s  p50 {r['p50']:.2f} ms  p99 {r['p99']:.2f} ms",
                      flush=True)  # fmt: skip
    finally:
        servers.stop_all()

    print(
        f"\nPOST /decide over HTTP, 20 candidate actions, {n:,} customers, wrk {args.seconds} s per cell, "
        f"{args.workers} worker(s) for nextbest, 1 per other server, {os.cpu_count()} cores shared with wrk"
    )
    print(f"{'target':<44}{'conc.':>6}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for c in CONCURRENCY:
        for name in targets:
            r = results[(name, c)]
            print(f"{name:<44}{c:>6}{r['rps']:>9.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}{r['errors']:>8.0f}")
    names = list(targets)
    ping, decide, naive = (results[(k, 8)] for k in names)
    vs_ping, vs_naive = decide["rps"] / ping["rps"], decide["rps"] / naive["rps"]
    checks = [
        (vs_ping >= 0.6, f"/decide throughput at c=8 is {vs_ping:.0%} of /ping (>= 60%)"),
        (vs_naive >= 3, f"/decide throughput at c=8 is {vs_naive:.1f}x the naive composition (>= 3x)"),
        (decide["p99"] < 25.0, f"/decide p99 at c=8 is {decide['p99']:.1f} ms (< 25 ms)"),
        (all(r["errors"] == 0 for r in results.values()), "no errors or non-2xx responses"),
    ]  # fmt: skip
    print()
    for ok, text in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {text}")


if __name__ == "__main__":
    main()
