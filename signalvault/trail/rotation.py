"""Master-key rotation: re-wrap every data key, named secret and stored provider credential
under a new master key, in batches, without re-encrypting any record; `finish` re-wraps
stragglers and retires the old key.

Gateways keep serving throughout: each wrapped key names its master key, and a gateway's key
ring accepts the previous key until `finish` (see docs/audit-and-keys.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from signalvault.crypto.envelope import MasterKey, MasterKeyRing, new_key
from signalvault.crypto.master_key import ENV_ROTATION_STEPS, EnvKeySource, KeySource
from signalvault.errors import ConfigError
from signalvault.store import Store
from signalvault.store.credential_queries import StoredCredential, wrap_name
from signalvault.store.lifecycle import WrappedKey
from signalvault.trail.audit import AuditTrail

EVENT_KIND = "master_key_rotation"
BATCH = 500

Progress = Callable[[int], None]  # keys re-wrapped so far


@dataclass(slots=True)
class RotationReport:
    old_key_ids: list[str]
    new_key_id: str
    rewrapped: int = 0
    unreadable: dict[str, int] = field(default_factory=dict)  # master key id -> keys
    retired: str | None = None


def rewrap_all(
    store: Store,
    keys: MasterKeyRing,
    target: MasterKey,
    batch: int = BATCH,
    progress: Progress | None = None,
) -> tuple[int, dict[str, int]]:
    """Re-wrap every live key not under `target` that `keys` can unwrap. Returns (re-wrapped,
    keys per master key id this process does not hold)."""
    skip = [target.key_id]
    done = 0
    unreadable: dict[str, int] = {}
    while True:
        found = store.keys_not_wrapped_by(skip, batch)
        if not found:
            break
        rewrapped: list[tuple[WrappedKey, bytes]] = []
        for key in found:
            if not keys.holds(key.master_key_id):
                if key.master_key_id not in skip:
                    skip.append(key.master_key_id)
                continue
            secret = keys.unwrap(key.name, key.wrapped, key.master_key_id)
            rewrapped.append((key, target.wrap(key.name, secret)))
        done += store.rewrap(rewrapped, target.key_id)
        if progress is not None:
            progress(done)
    done += _rewrap_credentials(store, keys, target, skip, batch, done, progress)
    counts = _count_wrapped_by(store)
    for key_id in skip[1:]:
        unreadable[key_id] = counts.get(key_id, 0)
    return done, unreadable


def _rewrap_credentials(
    store: Store,
    keys: MasterKeyRing,
    target: MasterKey,
    skip: list[str],
    batch: int,
    done_before: int,
    progress: Progress | None,
) -> int:
    """Re-wrap stored provider credentials (`skip` gains master key ids this process lacks)."""
    done = 0
    while True:
        found = store.credentials_not_wrapped_by(skip, batch)
        if not found:
            return done
        rewrapped: list[tuple[StoredCredential, bytes]] = []
        for stored in found:
            if not keys.holds(stored.master_key_id):
                if stored.master_key_id not in skip:
                    skip.append(stored.master_key_id)
                continue
            name = wrap_name(stored.provider, stored.environment)
            secret = keys.unwrap(name, stored.wrapped, stored.master_key_id)
            rewrapped.append((stored, target.wrap(name, secret)))
        done += store.rewrap_credentials(rewrapped, target.key_id)
        if progress is not None:
            progress(done_before + done)


def _count_wrapped_by(store: Store) -> dict[str, int]:
    """Live wrapped keys and stored credentials per master key id."""
    counts = store.count_wrapped_by()
    for key_id, count in store.count_credentials_by_master_key().items():
        counts[key_id] = counts.get(key_id, 0) + count
    return counts


def rotate(
    store: Store,
    trail: AuditTrail,
    source: KeySource,
    actor: str,
    *,
    new_master_key: MasterKey | None = None,
    batch: int = BATCH,
    progress: Progress | None = None,
) -> RotationReport:
    """Make `new_master_key` (or a fresh random key) the master key and re-wrap everything under it.

    Raises:
        ConfigError: the source cannot take a new key (environment without a new key file), a
            rotation is unfinished, or the new key is already the current one.
    """
    before = source.load()
    if isinstance(source, EnvKeySource) and new_master_key is None:
        raise ConfigError(ENV_ROTATION_STEPS)
    target = new_master_key or MasterKey.from_bytes(new_key())
    if target.key_id == before.key_id:
        raise ConfigError("the new master key is the current one")
    if isinstance(source, EnvKeySource):
        keys = MasterKeyRing((*before.previous, before.current, target))
    else:
        source.install(target)
        keys = source.load()
    report = RotationReport([before.key_id], target.key_id)
    report.rewrapped, report.unreadable = rewrap_all(store, keys, target, batch, progress)
    trail.record_event(
        EVENT_KIND,
        actor,
        {
            "action": "rotate",
            "old_key_id": before.key_id,
            "new_key_id": target.key_id,
            "rewrapped": report.rewrapped,
        },
    )
    return report


def finish(
    store: Store,
    trail: AuditTrail,
    source: KeySource,
    actor: str,
    *,
    batch: int = BATCH,
    progress: Progress | None = None,
) -> RotationReport:
    """Re-wrap keys still under the previous master key, then retire it.

    Raises:
        ConfigError: some keys could not be re-wrapped; the previous key is kept.
    """
    keys = source.load()
    previous = [key.key_id for key in keys.previous]
    report = RotationReport(previous, keys.key_id)
    report.rewrapped, report.unreadable = rewrap_all(store, keys, keys.current, batch, progress)
    remaining = _count_wrapped_by(store)
    left = sum(remaining.get(key_id, 0) for key_id in previous)
    if left:
        raise ConfigError(f"{left} key(s) are still wrapped by the previous master key; it is kept")
    report.retired = source.retire_previous()
    trail.record_event(
        EVENT_KIND,
        actor,
        {
            "action": "finish",
            "retired_key_ids": previous,
            "new_key_id": keys.key_id,
            "rewrapped": report.rewrapped,
        },
    )
    return report
