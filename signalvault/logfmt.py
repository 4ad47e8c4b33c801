"""The gateway's own logs: one JSON object per line (or plain text), never request content.

Callers pass ids, names and error types in `extra`; nothing here can see prompts or keys.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson

from signalvault.config import LoggingSettings

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD and not name.startswith("_"):
                entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: exception messages can quote data (e.g. a driver echoing values).
            entry["exception"] = record.exc_info[0].__name__
        return orjson.dumps(entry, default=str).decode()


# Protocol libraries that log the messages they carry (MCP tool arguments and results) at debug
# level, and may quote them in warnings: their records keep their level and origin, not their text.
QUOTING_LIBRARIES = ("mcp", "sse_starlette", "httpx2")


def _withhold_quoted_text(record: logging.LogRecord) -> bool:
    if record.name.partition(".")[0] in QUOTING_LIBRARIES:
        record.msg, record.args = "log text withheld (it may quote MCP content)", ()
    return True


def configure_logging(settings: LoggingSettings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_withhold_quoted_text)
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # The audit trail is the access log; uvicorn's per-request line (also in worker processes,
    # where its access_log flag does not reach) would only add cost.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # One warning per span dropped or export retried would flood the log while a collector is
    # down; signalvault.telemetry logs the change once and /metrics counts the spans.
    logging.getLogger("opentelemetry").setLevel(logging.ERROR)
