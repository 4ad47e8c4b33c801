"""The SignalVault exception tree; imports nothing from signalvault.

    SignalVaultError
    ├── ConfigError              bad settings or command-line input (CLI: one-line error, exit 1)
    ├── StoreError               the audit store cannot read or write (HTTP 503, fail-closed)
    ├── CryptoError              wrong master key, damaged ciphertext
    ├── HeldError                refused: a legal hold covers the data (erasure)
    └── HTTPError                rendered in the caller's native error shape
        ├── BadRequest           400 invalid_request_error
        │   └── GuardrailBlocked 400 guardrail_violation (carries finding kinds, never values)
        ├── AuthError            401
        ├── Forbidden            403
        │   └── ClassificationNotAllowed 403 (no candidate provider may receive the data class)
        ├── NotFound             404
        ├── Conflict             409 conflict (the current state refuses it: exists, already done)
        ├── MethodNotAllowed     405
        ├── PayloadTooLarge      413
        ├── UnsupportedMedia     415
        ├── RequestTimeout       408 (the request body came too slowly)
        ├── RateLimited          429 rate_limit_exceeded / budget_exceeded (carries retry_after)
        ├── StoreUnavailable     503
        ├── LimiterUnavailable   503 (shared limits unreachable, fail-closed)
        └── ProviderError        502
            ├── ProviderTimeout  504
            └── ProviderUnavailable 503 (every target's circuit breaker is open; retry_after)

Messages never contain prompt text, matched values, keys or decrypted payloads.
"""

from __future__ import annotations


class SignalVaultError(Exception):
    """Base of every error SignalVault raises on purpose."""


class ConfigError(SignalVaultError):
    """Settings, a config file or command-line input are wrong."""


class StoreError(SignalVaultError):
    """The store could not complete a read or write."""


class CryptoError(SignalVaultError):
    """A key is wrong or a ciphertext does not authenticate."""


class HeldError(SignalVaultError):
    """Refused because an active legal hold covers the data."""


class HTTPError(SignalVaultError):
    """An error with an HTTP status and a stable machine-readable code."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param


class BadRequest(HTTPError):
    status_code = 400
    code = "invalid_request_error"


class GuardrailBlocked(BadRequest):
    code = "guardrail_violation"

    def __init__(self, message: str, *, rules: list[str], kinds: list[str]) -> None:
        super().__init__(message)
        self.rules = rules
        self.kinds = kinds


class GuardrailUnavailable(HTTPError):
    """The guardrail engine failed and the failure mode is closed: nothing unscreened passes."""

    status_code = 503
    code = "guardrail_unavailable"


class AuthError(HTTPError):
    status_code = 401
    code = "invalid_api_key"


class Forbidden(HTTPError):
    status_code = 403
    code = "model_not_allowed"


class ClassificationNotAllowed(Forbidden):
    """No candidate provider may receive data of the request's class (SPEC §7c)."""

    code = "classification_not_allowed"


class NotFound(HTTPError):
    status_code = 404
    code = "not_found"


class Conflict(HTTPError):
    status_code = 409
    code = "conflict"


class MethodNotAllowed(HTTPError):
    status_code = 405
    code = "method_not_allowed"


class PayloadTooLarge(HTTPError):
    status_code = 413
    code = "request_too_large"


class UnsupportedMedia(HTTPError):
    status_code = 415
    code = "unsupported_media_type"


class RequestTimeout(HTTPError):
    status_code = 408
    code = "request_timeout"


class RateLimited(HTTPError):
    status_code = 429
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class StoreUnavailable(HTTPError):
    status_code = 503
    code = "audit_store_unavailable"


class LimiterUnavailable(HTTPError):
    status_code = 503
    code = "rate_limiter_unavailable"


class ProviderError(HTTPError):
    status_code = 502
    code = "provider_error"


class ProviderTimeout(ProviderError):
    status_code = 504
    code = "provider_timeout"


class ProviderUnavailable(ProviderError):
    status_code = 503
    code = "provider_unavailable"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
