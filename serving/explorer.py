"""The decision explorer and the analytics pages, served by the decision service itself (no web server to run).

Pages and their assets are static and carry no data, so a browser can open them without credentials; every
figure comes from the JSON endpoints below, which need the API key when one is set. The pages' script sends the
key the user typed as ``X-API-Key`` (kept in the tab's session storage), never in a URL. Customer lookups are
POSTs: no customer data in URLs or access logs. The JSON endpoints are in the published OpenAPI document (tag
``explorer``, models in :mod:`nextbest.serving.explorer_schemas`); the pages and assets are not.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from nextbest.core.ids import CustomerId
from nextbest.errors import NotFoundError
from nextbest.serving import explorer_data
from nextbest.serving.dependencies import Protected, Runtime, runtime_of
from nextbest.serving.explorer_schemas import AnalyticsResponse, ExplorerMeta, LookupResponse
from nextbest.serving.http_errors import responses
from nextbest.serving.schemas import DecideRequest, Identifier

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {
    "nextbest.css": "text/css",
    "common.js": "text/javascript",
    "charts.js": "text/javascript",
    "explorer.js": "text/javascript",
    "analytics.js": "text/javascript",
}
NO_STORE = {"Cache-Control": "no-store"}

router = APIRouter(tags=["explorer"])


def _exactly_one(schema: dict[str, Any]) -> None:
    """The published form of WhatIf: exactly one of the two, a string (null is not "not given")."""
    for name in ("rules_file", "rules_yaml"):
        prop = schema["properties"][name]
        prop.pop("default", None)
        string = next(s for s in prop.pop("anyOf") if s.get("type") == "string")
        prop.update(string)
    schema["oneOf"] = [{"required": ["rules_file"]}, {"required": ["rules_yaml"]}]


class WhatIf(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_exactly_one)

    rules_file: str | None = Field(
        None, min_length=1, max_length=200, description="A rule file listed by /explorer/meta."
    )
    rules_yaml: str | None = Field(None, max_length=explorer_data.MAX_RULES_BYTES, description="Pasted rules.")

    @model_validator(mode="before")
    @classmethod
    def _not_null(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(k in data and data[k] is None for k in ("rules_file", "rules_yaml")):
            raise ValueError("give exactly one of rules_file and rules_yaml, as a string (not null)")
        return data

    @model_validator(mode="after")
    def _one(self) -> WhatIf:
        if (self.rules_file is None) == (self.rules_yaml is None):
            raise ValueError("give exactly one of rules_file and rules_yaml")
        return self


class LookupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_id: CustomerId
    channel: str = Field(
        "any", min_length=1, max_length=32, description="Channel of the interaction (a catalog channel) or `any`."
    )
    candidates: list[Identifier] | None = Field(None, max_length=100, description="Restrict to these action ids.")
    whatif: WhatIf | None = None


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type="text/html", headers=NO_STORE)


@router.get("/explorer", include_in_schema=False)
async def explorer_page() -> FileResponse:
    return _page("explorer.html")


@router.get("/analytics", include_in_schema=False)
async def analytics_page() -> FileResponse:
    return _page("analytics.html")


@router.get("/static/{name}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    if name not in ASSETS:  # a fixed list: no path is ever built from the request
        raise NotFoundError(f"name: no asset {name!r}")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})


@router.get("/explorer/meta", dependencies=Protected, response_model=ExplorerMeta, responses=responses(401, 503))
async def meta(runtime: Runtime) -> dict[str, Any]:
    """Channels, actions, the live ruleset and the rule files a what-if can name."""
    policy = runtime.components.policy
    return {
        "channels": ["any", *policy.catalog.channels],
        "actions": list(policy.catalog.ids),
        "ruleset_version": policy.ruleset.version,
        "rule_files": sorted(explorer_data.rule_files(runtime.settings)),
        "model_version": runtime.components.model.version,
        "currency": policy.catalog.currency,
    }


@router.post(
    "/explorer/lookup",
    dependencies=Protected,
    response_model=LookupResponse,
    responses=responses(401, 413, 422, 503),
)
def lookup(body: LookupRequest, runtime: Runtime) -> JSONResponse:  # sync: a what-if runs in a worker thread
    """Features, the decision (not recorded), suppressions, recent decisions and, optionally, a what-if."""
    req = DecideRequest(customer_id=body.customer_id, channel=body.channel, candidates=body.candidates)
    whatif = (body.whatif.rules_file, body.whatif.rules_yaml) if body.whatif else None
    return JSONResponse(explorer_data.explore(runtime, req, whatif), headers=NO_STORE)


@router.get(
    "/analytics/data",
    dependencies=Protected,
    response_model=AnalyticsResponse,
    responses=responses(401, 422, 503),
)
def analytics_data(
    request: Request,
    since_days: Annotated[
        float, Query(ge=0.001, le=366, description="The window: the last `since_days` days (86.4 s to a year).")
    ] = 7.0,
) -> JSONResponse:  # sync: a long window is read in a worker thread, decisions keep flowing
    """Decisions, outcomes, lifts against the control group, per action, day and rule, over a window."""
    runtime = runtime_of(request)
    started = time.perf_counter()
    report = explorer_data.analytics(runtime.backends.log, runtime.components.policy.catalog, since_days)
    body = {**report.as_dict(), "seconds": round(time.perf_counter() - started, 3)}
    return JSONResponse(body, headers=NO_STORE)


def standalone_analytics(data: dict[str, Any]) -> str:
    """The analytics page as one self-contained HTML file with ``data`` embedded (``nextbest report``): the same
    markup, styles, scripts and charts as the live page, readable offline and attachable to a ticket."""
    import json
    import re

    page = (STATIC / "analytics.html").read_text()
    payload = json.dumps(data, allow_nan=False).replace("</", "<\\/")  # never closes the script element early
    page = page.replace(
        '<link rel="stylesheet" href="static/nextbest.css">',
        f"<style>\n{(STATIC / 'nextbest.css').read_text()}</style>",
    )
    page = page.replace("<script src=", f"<script>window.NEXTBEST_REPORT = {payload};</script>\n<script src=", 1)
    return re.sub(
        r'<script src="static/([a-z]+\.js)"></script>',
        lambda m: f"<script>\n{(STATIC / m.group(1)).read_text()}</script>",
        page,
    )
