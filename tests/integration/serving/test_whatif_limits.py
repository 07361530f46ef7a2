"""The explorer's what-if runs a pasted ruleset in a child process with a time limit: a ruleset within the
size and nesting bounds but costly to evaluate (two nested comprehensions over long lists) is stopped with a
422 naming ``whatif``, decisions are served meanwhile, and the next what-if works."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from nextbest.serving.app import create_app
from nextbest.serving.runtime import DecisionRuntime, build_runtime
from nextbest.settings import Settings

LIST = "[" + ",".join(str(i) for i in range(440)) + "]"
COSTLY = "\n".join(
    ["version: costly", "rules:"]
    + [
        f"  - {{id: r{i}, description: d, owner: o, effect: suppress, message: m, "
        f"when: '{LIST}.exists(x, {LIST}.exists(y, x == y + 100000))'}}"
        for i in range(40)
    ]
)
PLAIN = "version: plain\nrules:\n  - {id: p, description: d, owner: o, effect: suppress, message: m, when: 'false'}"


@pytest.fixture(scope="module")
def client(settings: Settings, champion: Any, tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    log = tmp_path_factory.mktemp("whatif") / "decisions.db"
    serving = settings.serving.model_copy(update={"whatif_timeout_s": 2.0})
    runtime: DecisionRuntime = build_runtime(
        settings.model_copy(update={"decision_log_url": f"sqlite:///{log}", "serving": serving})
    )
    app = create_app()
    app.state.runtime = runtime
    return TestClient(app)


def test_a_costly_what_if_is_stopped_at_its_limit_and_decisions_go_on(client: TestClient) -> None:
    assert client.post("/explorer/lookup", json={"customer_id": 12, "channel": "email",
                                                 "whatif": {"rules_yaml": PLAIN}}).status_code == 200  # fmt: skip
    decided: list[float] = []
    done = threading.Event()

    def decide_meanwhile() -> None:
        while not done.is_set():
            started = time.perf_counter()
            assert client.post("/decide", json={"customer_id": 12, "channel": "email"}).status_code == 200
            decided.append(time.perf_counter() - started)

    side = threading.Thread(target=decide_meanwhile)
    side.start()
    started = time.perf_counter()
    try:
        r = client.post("/explorer/lookup", json={"customer_id": 12, "channel": "email",
                                                  "whatif": {"rules_yaml": COSTLY}})  # fmt: skip
    finally:
        done.set()
        side.join()
    took = time.perf_counter() - started
    assert r.status_code == 422 and r.json()["field"] == "whatif", r.text
    assert "did not finish within 2 s" in r.json()["error"]
    assert took < 10, took
    assert len(decided) >= 5 and max(decided) < 1.0, decided  # the worker kept deciding
    again = client.post("/explorer/lookup", json={"customer_id": 12, "channel": "email",
                                                  "whatif": {"rules_yaml": PLAIN}})  # fmt: skip
    assert again.status_code == 200 and again.json()["whatif"]["ruleset_version"], again.text
