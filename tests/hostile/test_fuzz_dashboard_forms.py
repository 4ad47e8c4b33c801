"""The dashboard's forms fuzzed (see harness.py for the property): sign-in, the password change,
and state-changing forms posted with a valid session: fields of the wrong kind, huge, with bytes
that are not UTF-8 or NUL, repeated, missing; the CSRF token missing or wrong (always a 4xx and
nothing changed); bodies that are not forms at all. Never a 5xx, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import strategies as st

from signalvault.config import AccountSettings
from signalvault.control.services import open_accounts
from tests.hostile.harness import PROFILE, Answer, GatewayUnderFuzz, HttpRequest, fuzz
from tests.hostile.harness import gateway_under_fuzz as running_gateway
from tests.hostile.mutations import INVALID_UTF8
from tests.hostile.shapes import PII

PASSWORD = "hostile dashboard password 1"
EMAIL = "owner@example.com"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[GatewayUnderFuzz]:
    def cheap_hashing(settings: Any) -> Any:  # the cheapest Argon2id the validation allows
        return replace(
            settings, accounts=AccountSettings(password_time_cost=1, password_memory_kib=19456)
        )

    with running_gateway(tmp_path_factory.mktemp("forms"), cheap_hashing) as running:
        assert running.app.services is not None
        accounts = open_accounts(running.app.services, running.app.settings)
        accounts.create_account(EMAIL, {None: "owner"}, "test", password=PASSWORD)
        yield running
        print(f"\ngenerated requests per entry point ({PROFILE}): {dict(running.sent)}")


@pytest.fixture(scope="module")
def session(gateway) -> tuple[str, str]:
    """(session cookie, CSRF token) of a signed-in owner. The cookies are `Secure`: sent by
    hand, as a browser on localhost would."""
    response = gateway.client.post("/login", data={"email": EMAIL, "password": PASSWORD})
    assert response.status_code == 303, response.text
    cookies = {c.name: c.value for c in response.cookies.jar}
    return cookies["sv_session"], cookies["sv_csrf"]


# Forms and their fields (values a browser would send, before the mutations).
FORMS: dict[str, dict[str, st.SearchStrategy[str]]] = {
    "/login": {
        "email": st.sampled_from([EMAIL, "nobody@example.com", ""]),
        "password": st.sampled_from(["wrong password 12", ""]),
        "next": st.sampled_from(["/", "/logs", "https://evil.example/", "//evil", "/\\evil"]),
    },
    "/password": {
        "current_password": st.sampled_from(["wrong password 12", ""]),
        "new_password": st.sampled_from(["a new password 123", "short"]),
        "confirm_password": st.sampled_from(["a new password 123", "other"]),
    },
    "/keys": {
        "name": st.sampled_from(["fuzz-key", "", "x" * 300]),
        "environment": st.sampled_from(["dev", "prod", "nope"]),
        "project": st.sampled_from(["default", "checkout", ""]),
        "models": st.sampled_from(["gpt-*", "", "*,claude-*"]),
        "rpm": st.sampled_from(["10", "-1", "1e9", "abc", "99999999999999999999999"]),
        "tpm": st.sampled_from(["", "1000", "NaN"]),
        "budget_tokens": st.sampled_from(["", "0", "1.5"]),
        "expires": st.sampled_from(["", "2030-01-01", "yesterday", "9999-99-99"]),
    },
    "/guardrails/playground": {
        "text": st.sampled_from(["hello", *PII, "x" * 50_000]),
        "direction": st.sampled_from(["input", "output", "sideways"]),
        "rules": st.sampled_from(["", "[]", "{", '[{"name": 1}]', "null"]),
    },
    "/retention/holds": {
        "scope": st.sampled_from(["user", "project", "everything", ""]),
        "value": st.sampled_from(["alice", "", "x" * 5000]),
        "reason": st.sampled_from(["legal", ""]),
    },
    "/settings": {
        "name": st.sampled_from(["guardrails.stream_holdback_chars", "nope", "", "server.port"]),
        "value": st.sampled_from(["256", "-5", "abc", "true", "[1]"]),
    },
    "/accounts": {
        "email": st.sampled_from(["new@example.com", "not an email", ""]),
        "roles": st.sampled_from(["viewer", "god", "", "owner,viewer"]),
    },
}
HUGE = (10_000, 200_000, 1_100_000)


def _encode(value: bytes) -> bytes:
    return quote_from_bytes(value).encode()


@st.composite
def form_requests(draw: st.DrawFn, session: tuple[str, str]) -> HttpRequest:
    path = draw(st.sampled_from(list(FORMS)))
    fields = [(name.encode(), draw(value).encode()) for name, value in FORMS[path].items()]
    cookie, csrf = session
    signed_in = path != "/login" or draw(st.booleans())
    csrf_how = draw(st.sampled_from(["right"] * 5 + ["missing", "wrong", "twice", "empty"]))
    if signed_in and csrf_how != "missing":
        token = {"wrong": b"x" * len(csrf), "empty": b""}.get(csrf_how, csrf.encode())
        fields.append((b"csrf_token", token))
        if csrf_how == "twice":
            fields.append((b"csrf_token", b"another"))
    applied = [f"csrf={csrf_how}"]
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["huge", "bad_utf8", "nul", "drop", "repeat", "extra"]))
        at = draw(st.integers(0, len(fields) - 1)) if fields else 0
        if not fields and kind != "extra":
            continue
        if kind == "huge":
            size = draw(st.sampled_from(HUGE))
            fields[at] = (fields[at][0], b"y" * size)
            kind = f"huge{size}"
        elif kind == "bad_utf8":
            fields[at] = (fields[at][0], fields[at][1] + draw(st.sampled_from(INVALID_UTF8)))
        elif kind == "nul":
            fields[at] = (fields[at][0], b"a\x00b")
        elif kind == "drop":
            del fields[at]
        elif kind == "repeat":
            fields.append(fields[at])
        else:
            fields.append((draw(st.binary(min_size=1, max_size=10)), b"v"))
        applied.append(kind)
    body = b"&".join(_encode(name) + b"=" + _encode(value) for name, value in fields)
    content_type: bytes | None = b"application/x-www-form-urlencoded"
    how = draw(st.sampled_from(["form"] * 6 + ["multipart", "json", "none", "raw_bytes", "many"]))
    if how == "multipart":
        content_type = b"multipart/form-data; boundary=fuzz"
        parts = [
            b'--fuzz\r\ncontent-disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (n, v)
            for n, v in fields
        ]
        body = b"".join(parts) + draw(st.sampled_from([b"--fuzz--\r\n", b"--fu", b""]))
    elif how == "json":
        content_type = b"application/json"
        body = b'{"email": 1}'
    elif how == "none":
        content_type = None
    elif how == "raw_bytes":
        body = draw(st.binary(max_size=200))
    elif how == "many":
        body = b"&".join(b"f%d=v" % i for i in range(draw(st.sampled_from([201, 5000]))))
    headers = [(b"origin", b"http://127.0.0.1")] if draw(st.booleans()) else []
    if content_type is not None:
        headers.append((b"content-type", content_type))
    if signed_in:
        headers.append((b"cookie", f"sv_session={cookie}; sv_csrf={csrf}".encode()))
    chunks = draw(st.sampled_from([1] * 4 + [3]))
    label = ",".join([path, how, *applied, "signed_in" if signed_in else "anonymous"])
    return HttpRequest("POST", path, tuple(headers), body, chunks, label)


def check_form(gateway: GatewayUnderFuzz, request: HttpRequest, answers: list[Answer]) -> None:
    gateway.check(request, answers)
    [answer] = answers
    sent_right_token = "csrf=right" in request.label or "csrf=twice" in request.label
    if request.path != "/login" and not sent_right_token:
        # Without the session's token nothing may change: refused, never a redirect onward.
        assert 400 <= answer.status < 500, f"{answer.status} <- {request.describe()}"


def test_dashboard_forms_survive_hostile_posts(gateway, session):
    fuzz(
        gateway,
        "dashboard forms",
        form_requests(session),
        check=lambda request, answers: check_form(gateway, request, answers),
    )
    # The session survived all of it (nothing above signed it out or broke it).
    cookie, _ = session
    page = gateway.client.get("/keys", headers={"cookie": f"sv_session={cookie}"})
    assert page.status_code == 200
