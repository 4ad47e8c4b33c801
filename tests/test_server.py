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
