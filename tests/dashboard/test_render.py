"""How the dashboard writes time spans people read at a glance."""

from __future__ import annotations

import pytest

from signalvault.dashboard.render import duration


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "\u2013"),
        (0.0, "0 ms"),
        (0.3404, "340 ms"),
        (0.9996, "1 s"),
        (45.4, "45 s"),
        (700, "11 min"),
        (12_000, "3 h 20 min"),
        (200_000, "2 d 7 h"),
    ],
)
def test_duration_reads_at_a_glance(seconds: float | None, shown: str) -> None:
    assert duration(seconds) == shown
