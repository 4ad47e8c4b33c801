"""The public labelled data in the workplace's `shared/eval` (never copied into the repo).

It sits beside the checkout (`../shared`); a clone made elsewhere (CI clones into a temporary
directory) finds it at the workplace's fixed place, `/work/shared`.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = (ROOT.parent / "shared" / "eval", Path("/work/shared/eval"))


def eval_dir() -> Path:
    for candidate in CANDIDATES:
        if candidate.is_dir():
            return candidate
    pytest.skip(f"no labelled data in {' or '.join(map(str, CANDIDATES))}")


def eval_texts(name: str, limit: int | None = None) -> list[str]:
    """The `text` of each line of one labelled file (the first `limit` lines)."""
    texts = []
    with (eval_dir() / name).open("rb") as lines:
        for n, line in enumerate(lines):
            if limit is not None and n >= limit:
                break
            texts.append(orjson.loads(line)["text"])
    return texts
