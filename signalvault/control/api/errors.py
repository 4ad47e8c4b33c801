"""Every admin API failure as `{"error": {"message", "code"}}`: never a traceback, never input."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from signalvault.errors import (
    ConfigError,
    CryptoError,
    HeldError,
    HTTPError,
    RateLimited,
    StoreError,
)

log = logging.getLogger("signalvault.api")
STATUS_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


def error_response(
    status: int, message: str, code: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"message": message, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPError)
    headers = {}
    if isinstance(exc, RateLimited):
        headers["retry-after"] = str(max(1, round(exc.retry_after)))
    if exc.status_code == 401:
        headers["www-authenticate"] = "Bearer"
    return error_response(exc.status_code, exc.message, exc.code, headers)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Locations and reasons only: the rejected input may be a password or a secret.
    problems = [
        f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', 'invalid')}"
        for error in exc.errors()[:10]
    ]
    return error_response(422, "; ".join(problems) or "invalid request", "validation_error")


async def _starlette(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = STATUS_CODES.get(exc.status_code, "http_error")
    message = "no such endpoint" if exc.status_code == 404 else str(exc.detail)
    return error_response(exc.status_code, message, code, dict(exc.headers or {}))


async def _config(request: Request, exc: Exception) -> JSONResponse:
    return error_response(400, str(exc), "invalid_request")


async def _held(request: Request, exc: Exception) -> JSONResponse:
    return error_response(409, str(exc), "legal_hold")


async def _store(request: Request, exc: Exception) -> JSONResponse:
    log.error("admin API: store unavailable: %s", exc)
    return error_response(503, "the audit store is unavailable", "audit_store_unavailable")


async def _crypto(request: Request, exc: Exception) -> JSONResponse:
    log.error("admin API: %s", exc)
    return error_response(500, "stored content could not be decrypted", "crypto_error")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("admin API: unexpected %s on %s", type(exc).__name__, request.url.path)
    return error_response(500, "internal error", "internal_error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(HTTPError, _http_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _starlette)
    app.add_exception_handler(ConfigError, _config)
    app.add_exception_handler(HeldError, _held)
    app.add_exception_handler(StoreError, _store)
    app.add_exception_handler(CryptoError, _crypto)
    app.add_exception_handler(Exception, _unexpected)
