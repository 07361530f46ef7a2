"""The explorer and analytics pages in a real headless browser (Debian's chromium driven by Playwright), against
a real ``bentoml serve`` subprocess with an API key and a decision log of its own.

Chromium comes from Debian (``apt-get install -y chromium``), never from ``playwright install``. Under
``CI=true`` a missing browser fails the test; elsewhere it skips with the install line.

``NEXTBEST_SCREENSHOTS=docs/screenshots`` also saves the pages as PNGs (with a week of history seeded,
so the charts have days to show): ``NEXTBEST_SCREENSHOTS=docs/screenshots pytest tests/e2e/test_explorer_browser.py``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from nextbest.core.exploration import in_control_group
from nextbest.settings import Settings
from tests.support.servers import running_service

pytestmark = pytest.mark.slow
INSTALL = "apt-get install -y chromium"
KEY = "e2e-explorer-key"
CONTROL_SHARE = 0.2
SALT = "nextbest-global-control"


def chromium() -> str:
    path = os.environ.get("NEXTBEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    problem = None
    if not Path(path).is_file():
        problem = f"Debian's chromium is not installed at {path}: {INSTALL}"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is missing: pip install -e '.[dev]' (never `playwright install`)"
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    return path


@pytest.fixture(scope="session")  # session: set up before the session's champion, so a skip costs nothing
def browser_path() -> str:
    return chromium()


@pytest.fixture(scope="module")
def service(
    browser_path: str, settings: Settings, champion: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:  # browser_path first: skip or fail before training a champion
    browser = browser_path
    tmp = tmp_path_factory.mktemp("explorer-e2e")
    env = {
        "NEXTBEST_DATA_DIR": str(settings.data_dir),
        "NEXTBEST_PROJECT_DIR": str(settings.project_dir),
        "NEXTBEST_DECISION_LOG_URL": f"sqlite:///{tmp / 'decisions.db'}",
        "NEXTBEST_SERVING__API_KEY": KEY,
        "NEXTBEST_SERVING__CONTROL_GROUP_SHARE": str(CONTROL_SHARE),
        "NEXTBEST_SERVING__RELOAD_INTERVAL_S": "0",
    }
    with (
        running_service(settings.home, env, tmp / "serve.log") as base,
        httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=60) as client,
    ):
        yield {"base": base, "client": client, "log": tmp / "decisions.db", "browser": browser, "settings": settings}


def seed(client: httpx.Client, customers: list[int]) -> None:
    """Decisions through the API, then feedback: impressions for contacts, some clicks, and conversions whose
    probability is higher for treated customers (so there is a lift to read)."""
    rng = np.random.default_rng(5)
    decisions = []
    for start in range(0, len(customers), 400):
        body = {"requests": [{"customer_id": c, "channel": "any"} for c in customers[start : start + 400]]}
        r = client.post("/decide/batch", json=body)
        assert r.status_code == 200, r.text
        decisions.extend(r.json()["decisions"])
    items: list[dict[str, Any]] = []
    for d in decisions:
        contacted = d["action"] != "no_action"
        if contacted:
            items.append({"decision_id": d["decision_id"], "type": "impression"})
            if rng.random() < 0.18:
                items.append({"decision_id": d["decision_id"], "type": "click"})
        if rng.random() < (0.12 if contacted else 0.07):
            amount = round(float(rng.gamma(4.0, 14.0)), 2)
            items.append({"decision_id": d["decision_id"], "type": "conversion", "revenue": amount})
    r = client.post("/feedback/batch", json={"items": items})
    assert r.status_code == 200 and all(x["recorded"] for x in r.json()["results"])


def lift_from_log(path: Path) -> tuple[float, int]:
    """Revenue per decision, policy minus control group (degraded decisions left out), straight from SQL; and
    the number of decisions logged."""
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT d.control, d.degraded, COALESCE(SUM(CASE WHEN f.type = 'conversion' THEN f.revenue END), 0) "
            "FROM nextbest_decisions d LEFT JOIN nextbest_feedback f ON f.decision_id = d.decision_id "
            "GROUP BY d.decision_id, d.control, d.degraded"
        ).fetchall()
    treated = [r for c, degraded, r in rows if not c and not degraded]
    control = [r for c, _, r in rows if c]
    return sum(treated) / len(treated) - sum(control) / len(control), len(rows)


def spread_over_days(path: Path, days: int = 7) -> None:
    """Screenshots only: move the seeded decisions (and their feedback) back over ``days`` days."""
    with sqlite3.connect(path) as db:
        db.execute(f"UPDATE nextbest_decisions SET created_at = created_at - (abs(random()) % {days}) * 86400.0")
        db.execute(
            "UPDATE nextbest_feedback SET created_at = (SELECT d.created_at + 600 FROM nextbest_decisions d "
            "WHERE d.decision_id = nextbest_feedback.decision_id)"
        )


def promo_customer(client: httpx.Client) -> int:
    """A customer whose email promotion is eligible now, found with the explorer itself (which records nothing)."""
    for customer in range(300, 600):
        r = client.post("/explorer/lookup", json={"customer_id": customer, "channel": "email"}).json()
        if any(c["action"] == "email_promo" and c["eligible"] for c in r["decision"]["candidates"]):
            return customer
    raise AssertionError("no customer with an eligible email promotion")


def test_explorer_and_analytics_in_a_browser(service: dict[str, Any]) -> None:
    from playwright.sync_api import expect, sync_playwright

    client: httpx.Client = service["client"]
    shots = os.environ.get("NEXTBEST_SCREENSHOTS")
    control = [c for c in range(600, 3000) if in_control_group(c, CONTROL_SHARE, SALT)]
    treated = [c for c in range(600, 3000) if c not in set(control)]
    seed(client, control[:120] + treated[: (1500 if shots else 400)])
    if shots:
        spread_over_days(service["log"])
    customer = promo_customer(client)
    for kind, revenue in (("click", None), ("conversion", 42.0)):  # web contacts: no email cooldown or cap
        d = client.post("/decide", json={"customer_id": customer, "channel": "web"}).json()
        items = [{"decision_id": d["decision_id"], "type": "impression"}]
        items.append({"decision_id": d["decision_id"], "type": kind, **({"revenue": revenue} if revenue else {})})
        assert all(x["recorded"] for x in client.post("/feedback/batch", json={"items": items}).json()["results"])
    now = datetime.now(UTC) + timedelta(seconds=1)
    event = {"type": "ticket_opened", "customer_id": customer, "ticket_id": 990_777, "severity": 2,
             "timestamp": now.isoformat()}  # fmt: skip
    assert client.post("/events", json=event).json()["outcome"] == "applied"
    expected, logged = lift_from_log(service["log"])
    settings: Settings = service["settings"]
    assert settings.rules_path is not None
    rules = yaml.safe_load(settings.rules_path.read_text())
    proposed = {
        **rules,
        "version": "pause-off",
        "rules": [r for r in rules["rules"] if r["id"] != "no_promo_open_ticket"],
    }
    urls: list[str] = []

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=service["browser"], headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.on("request", lambda r: urls.append(r.url))
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))

        page.goto(f"{service['base']}/explorer")
        page.fill("#customer", str(customer))
        page.click("#go")
        expect(page.locator("#error")).to_contain_text("API key")  # the key is required and not yet given
        page.fill("#api-key", KEY)
        page.dispatch_event("#api-key", "change")
        expect(page.locator("#channel option[value=email]")).to_have_count(1)
        page.select_option("#channel", "email")
        page.click("#go")
        blocked = page.locator(
            '#suppressions .suppression[data-action="email_promo"][data-rule="no_promo_open_ticket"]'
        )
        expect(blocked).to_be_visible()
        assert "Open service ticket: promotions are paused" in blocked.inner_text()
        assert page.locator("[data-testid=chosen-action]").inner_text() != "email_promo"
        expect(page.locator("#summary")).to_contain_text(f"{customer} · channel email")
        expect(page.locator("[data-testid=recent] tbody tr")).to_have_count(2)
        expect(page.locator("[data-testid=recent]")).to_contain_text("conversion")

        page.check("#whatif-on")
        page.fill("#whatif-yaml", yaml.safe_dump(proposed))
        page.click("#go")
        expect(page.locator("[data-testid=whatif-action]")).to_be_visible()
        eligible = page.locator('[data-testid=whatif-candidates] tr[data-action="email_promo"]')
        expect(eligible).to_contain_text("eligible")
        expect(page.locator("#summary")).to_contain_text(f"{customer} · channel email")
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(shots) / "explorer.png"), full_page=True)

        page.goto(f"{service['base']}/analytics")  # same tab: the key is still in session storage
        value = page.locator("[data-testid=lift-revenue-value]")
        expect(value).to_contain_text("EUR")
        shown = float(value.inner_text().split()[0].replace("−", "-"))
        assert shown == pytest.approx(expected, abs=0.005001), (shown, expected)
        assert page.locator("[data-testid=decisions-value]").inner_text() == f"{logged:,}"
        expect(page.locator("#chart-lift svg")).to_have_count(1)
        if shots:
            page.screenshot(path=str(Path(shots) / "analytics.png"), full_page=True)
        browser.close()

    assert not errors, errors
    assert all(f"/{customer}" not in u and f"={customer}" not in u and "customer" not in u for u in urls), urls
    assert sqlite3.connect(service["log"]).execute("SELECT COUNT(*) FROM nextbest_decisions").fetchone()[0] == logged
