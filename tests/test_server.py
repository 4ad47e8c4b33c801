"""Running under the server: what `serve` does to the process beyond the app itself."""

from __future__ import annotations

import gc

import pytest

from signalvault.server import GC_THRESHOLDS, served_app
from tests.conftest import make_settings


@pytest.mark.anyio
async def test_the_served_app_settles_its_heap_once_started(tmp_path):
    """Everything loaded at startup is frozen out of the collector's walks, so a full collection
    while serving does not hold requests for the whole heap."""
    thresholds = gc.get_threshold()
    app = served_app(make_settings(tmp_path, "http://127.0.0.1:9/v1"))
    try:
        await app.startup()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        await app.shutdown()
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_malloc_is_tuned_unless_the_operator_set_it(monkeypatch):
    """Both thresholds are fixed, except one the operator's MALLOC_*_ variable sets."""
    import signalvault.server as server

    calls: list[tuple[int, int]] = []

    class Libc:
        def mallopt(self, option: int, value: int) -> int:
            calls.append((option, value))
            return 1

    monkeypatch.setattr(server.ctypes, "CDLL", lambda name: Libc())
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    server.tune_malloc()
    assert sorted(calls) == [(-3, 128 * 1024), (-1, 16 * 1024 * 1024)]
    calls.clear()
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1048576")
    server.tune_malloc()
    assert calls == [(-3, 128 * 1024)]
