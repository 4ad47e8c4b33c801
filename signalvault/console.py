"""Terminal output shared by CLI commands: aligned tables and UTC timestamps."""

from __future__ import annotations

import datetime as dt
import getpass
import os
from collections.abc import Sequence
from typing import Any


def iso(epoch: float | None) -> str | None:
    """Epoch seconds as an ISO-8601 UTC string (None stays None)."""
    if epoch is None:
        return None
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Left-aligned columns with a header line; `(none)` for no rows."""
    if not rows:
        return "(none)"
    cells = [["" if row.get(c) is None else str(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def cli_actor() -> str:
    """Who a CLI command acts as in the audit trail: the operating-system account running it."""
    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (e.g. some containers)
        return f"cli:uid{os.getuid()}"
