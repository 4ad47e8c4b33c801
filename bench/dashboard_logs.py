"""The dashboard on a big trail: server time of the logs page under each filter, of the audit log,
and of the overview (first view and cached), with 1,000,000 records in SQLite.

    python bench/dashboard_logs.py [--records 1000000] [--dir DIR] [--runs 7]

Fills DIR once (bench/trail_fill.py: a month of traffic over five projects, 24 keys, 5,000 end
users, ~0.1% admin events; ~4 minutes and ~3 GB for a million records) and reuses it on later runs
with the same DIR. Requests go to the running app in process (httpx's ASGI transport, signed in
as an owner), so the times are the server's, without a network. Goal: every filtered logs page
under 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from trail_fill import KEYS, fill

from signalvault.app import create_app
from signalvault.config import AccountSettings, Settings, StoreSettings
from signalvault.control.services import open_accounts, open_services
from signalvault.errors import BadRequest
from signalvault.store.sql import SqlStore

PASSWORD = "bench owner password"  # noqa: S105 (a throwaway account of the bench's own store)
PAGES = {
    "logs, no filter": "/logs",
    "logs, project": "/logs?project=internal-tools",
    "logs, key": f"/logs?key_id={KEYS[3]}",
    "logs, end user": "/logs?end_user=user-42",
    "logs, model": "/logs?model=o3-mini",
    "logs, outcome": "/logs?outcome=blocked",
    "logs, classification": "/logs?classification=restricted",
    "logs, rule that fired": "/logs?rule=secrets",
    "logs, last hour": "/logs?since=1h",
    "logs, a day 20 days ago": "/logs?since=20d&until=19d",
    "logs, project + outcome": "/logs?project=search&outcome=rate_limited",
    "logs, no such project": "/logs?project=nonexistent",
    "audit log": "/audit-log",
    "overview 24h": "/?period=24h",
    "overview 7d": "/?period=7d",
    "overview 30d": "/?period=30d",
}


def prepare(directory: Path, records: int) -> Settings:
    settings = Settings(
        store=StoreSettings(data_dir=directory),
        accounts=AccountSettings(password_time_cost=1, password_memory_kib=19456),
    )
    services = open_services(settings)
    try:
        store = services.store
        assert isinstance(store, SqlStore)
        have = store.count_records()
        if have < records:
            print(f"filling {records - have:,} records into {directory} ...", flush=True)
            started = time.perf_counter()
            fill(store, records - have)
            print(f"filled in {time.perf_counter() - started:.0f} s", flush=True)
        accounts = open_accounts(services, settings)
        with contextlib.suppress(BadRequest):  # made by an earlier run
            accounts.create_account("bench@example.com", {None: "owner"}, "bench", PASSWORD)
    finally:
        services.store.close()
    return settings


async def measure(settings: Settings, runs: int) -> None:
    app = create_app(settings)
    await app.startup()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://bench") as client:
            login = await client.post(
                "/login", data={"email": "bench@example.com", "password": PASSWORD}
            )
            assert login.status_code == 303, login.text
            print(f"\n{'page':28} {'first':>9} {'median':>9} {'max':>9}  rows")
            for name, path in PAGES.items():
                times = []
                rows = 0
                for _ in range(runs):
                    started = time.perf_counter()
                    answer = await client.get(path)
                    times.append((time.perf_counter() - started) * 1000)
                    assert answer.status_code == 200, (path, answer.status_code)
                    rows = answer.text.count('href="/logs/')
                rest = times[1:] or times
                print(
                    f"{name:28} {times[0]:7.1f}ms {statistics.median(rest):7.1f}ms "
                    f"{max(rest):7.1f}ms  {rows}"
                )
    finally:
        await app.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    default = Path(tempfile.gettempdir()) / "signalvault-dashboard-bench"
    parser.add_argument("--dir", type=Path, default=default)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    settings = prepare(args.dir, args.records)
    asyncio.run(measure(settings, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
