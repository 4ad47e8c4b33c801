"""Guardrails: the policy in force and every version (`GET /api/policies`), a version with its
diff, proposing, approving, rejecting and rolling back under the two-person rule (the policy
routes decide who may), and the playground (`POST /api/policies/playground`: nothing stored)."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from signalvault.control.api import config_routes, overview_routes
from signalvault.control.api.models import PolicyDecision, PolicyPropose, PolicyRollback
from signalvault.control.api.overview_models import PlaygroundRun
from signalvault.dashboard.render import page
from signalvault.dashboard.viewer import Viewer, field, look, raw, read_form
from signalvault.errors import BadRequest

DONE = {
    "proposed": "Proposed. With two-person review on, another account must approve it.",
    "approved": "Approved: the gateway applies it from its next request.",
    "rejected": "Rejected: the proposal is closed.",
    "rolled_back": "The earlier rules are proposed again as this new version.",
}


def _version(request: Request) -> int:
    text = request.path_params["version"]
    if not text.isdigit() or not 1 <= int(text) <= 2**53:
        raise BadRequest("not a policy version")
    return int(text)


def _rules(text: str) -> list[dict[str, Any]]:
    """The rules a form carries as JSON (the policy routes then check every rule)."""
    try:
        rules = orjson.loads(text or "[]")
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the rules are not valid JSON: {exc}") from None
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise BadRequest("the rules must be a JSON list of rule objects")
    return rules


def _pretty(rules: object) -> str:
    return orjson.dumps(rules, option=orjson.OPT_INDENT_2).decode()


async def _active_rules(viewer: Viewer) -> str:
    listing = await viewer.call(config_routes.list_policies)
    active = next((v for v in listing.data if v.version == listing.active_version), None)
    return _pretty([] if active is None else active.rules)


async def policies(request: Request) -> Response:
    viewer = await look(request, "GET", "/api/policies")
    listing = await viewer.call(config_routes.list_policies)
    active = next((v for v in listing.data if v.version == listing.active_version), None)
    return page(
        request,
        "guardrails.html",
        viewer,
        listing=listing,
        active=active,
        versions=list(reversed(listing.data)),
        review=viewer.api.settings.guardrails.two_person_review,
    )


async def version(request: Request) -> Response:
    viewer = await look(request, "GET", "/api/policies/{version}")
    found = await viewer.call(config_routes.get_policy, _version(request))
    listing = await viewer.call(config_routes.list_policies)
    return page(
        request,
        "policy.html",
        viewer,
        policy=found,
        active_version=listing.active_version,
        review=viewer.api.settings.guardrails.two_person_review,
        is_proposer=found.proposed_by == viewer.who.actor,
        done=DONE.get(request.query_params.get("done", "")),
    )


async def new_policy(request: Request) -> Response:
    viewer = await look(request, "POST", "/api/policies")
    return page(request, "propose.html", viewer, rules=await _active_rules(viewer), reason="")


async def propose(request: Request) -> Response:
    form = await read_form(request)
    viewer = await look(request, "POST", "/api/policies", form)
    body = PolicyPropose(rules=_rules(raw(form, "rules")), reason=field(form, "reason"))
    created = await viewer.call(config_routes.propose_policy, body)
    return RedirectResponse(f"/guardrails/{created.version}?done=proposed", status_code=303)


async def decide(request: Request) -> Response:
    """Approve, reject or roll back: the route of the same name decides who may."""
    action = request.path_params["action"]
    if action not in ("approve", "reject", "rollback"):
        raise BadRequest("no such action")
    form = await read_form(request)
    viewer = await look(request, "POST", f"/api/policies/{{version}}/{action}", form)
    number = _version(request)
    reason = field(form, "reason")
    if action == "approve":
        done = await viewer.call(config_routes.approve_policy, number)
        return RedirectResponse(f"/guardrails/{done.version}?done=approved", status_code=303)
    if action == "reject":
        done = await viewer.call(
            config_routes.reject_policy, number, body=PolicyDecision(reason=reason)
        )
        return RedirectResponse(f"/guardrails/{done.version}?done=rejected", status_code=303)
    done = await viewer.call(
        config_routes.rollback_policy, number, body=PolicyRollback(reason=reason)
    )
    return RedirectResponse(f"/guardrails/{done.version}?done=rolled_back", status_code=303)


async def playground_form(request: Request) -> Response:
    viewer = await look(request, "POST", "/api/policies/playground")
    return page(
        request,
        "playground.html",
        viewer,
        rules=await _active_rules(viewer),
        text="",
        direction="input",
        result=None,
        pieces=[],
    )


async def playground(request: Request) -> Response:
    form = await read_form(request)
    viewer = await look(request, "POST", "/api/policies/playground", form)
    direction: Literal["input", "output"] = (
        "output" if field(form, "direction") == "output" else "input"
    )
    rules_text, text = raw(form, "rules"), raw(form, "text")
    body = PlaygroundRun(rules=_rules(rules_text), text=text, direction=direction)
    result = await viewer.call(overview_routes.playground, body)
    return page(
        request,
        "playground.html",
        viewer,
        rules=rules_text,
        text=text,
        direction=direction,
        result=result,
        pieces=highlight(text, [(f.start, f.end, f.type) for f in result.findings]),
    )


def highlight(text: str, spans: list[tuple[int, int, str]]) -> list[tuple[str, str | None]]:
    """`text` cut into pieces, each a finding (with its type) or not; overlaps merge into the
    first. The template renders every piece as text."""
    pieces: list[tuple[str, str | None]] = []
    cursor = 0
    for start, end, kind in sorted(spans):
        if end <= cursor or start >= len(text):
            continue
        start = max(start, cursor)
        if start > cursor:
            pieces.append((text[cursor:start], None))
        pieces.append((text[start:end], kind))
        cursor = end
    if cursor < len(text):
        pieces.append((text[cursor:], None))
    return pieces


routes = [
    Route("/guardrails", policies, methods=["GET"]),
    Route("/guardrails/new", new_policy, methods=["GET"]),
    Route("/guardrails", propose, methods=["POST"]),
    Route("/guardrails/playground", playground_form, methods=["GET"]),
    Route("/guardrails/playground", playground, methods=["POST"]),
    Route("/guardrails/{version}", version, methods=["GET"]),
    Route("/guardrails/{version}/{action}", decide, methods=["POST"]),
]
