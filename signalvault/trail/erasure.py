"""Data-subject erasure: destroy an end user's data keys, tombstone their records, leave a
receipt that names them only by a keyed hash, then make the database drop the old bytes."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from signalvault.crypto.envelope import MasterKeys, new_key
from signalvault.errors import ConfigError, CryptoError, HeldError
from signalvault.store import Store
from signalvault.trail.audit import AuditTrail

EVENT_KIND = "erasure"
RECEIPT_KEY_NAME = "erasure-receipt-key"


def _receipt_key(store: Store, master_keys: MasterKeys) -> bytes:
    """The HMAC key naming erased subjects: random, stored wrapped by the master key (re-wrapped,
    not replaced, by a rotation, so receipts stay matchable)."""
    found = store.get_wrapped_secret(RECEIPT_KEY_NAME)
    if found is None:
        store.put_wrapped_secret(
            RECEIPT_KEY_NAME, master_keys.wrap(RECEIPT_KEY_NAME, new_key()), master_keys.key_id
        )
        found = store.get_wrapped_secret(RECEIPT_KEY_NAME)
        if found is None:
            raise CryptoError("the erasure receipt key could not be stored")
    return master_keys.unwrap(RECEIPT_KEY_NAME, found[0], found[1])


def subject_hash(store: Store, master_keys: MasterKeys, end_user: str) -> str:
    """HMAC-SHA-256 of the end user id: matches a receipt to a later request without the id."""
    key = _receipt_key(store, master_keys)
    return hmac.new(key, end_user.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Receipt:
    record_id: str
    subject_hash: str
    records: int
    keys: int
    is_space_reclaimed: bool


def erase_subject(store: Store, trail: AuditTrail, end_user: str, actor: str) -> Receipt:
    """Erase everything about `end_user`.

    Raises:
        ConfigError: no user given.
        HeldError: a legal hold covers the user or one of their records (nothing is changed).
        StoreError: the store failed (the erasure transaction is all or nothing).
    """
    if not end_user:
        raise ConfigError("name the end user to erase (--user)")
    holds = store.holds_covering_user(end_user)
    if holds:
        ids = ", ".join(hold.id for hold in holds)
        raise HeldError(f"cannot erase: legal hold(s) {ids} cover this user; release them first")
    store.flush()  # this process's queued writes about the user land before, not after
    tag = subject_hash(store, trail.master_keys, end_user)
    records, keys = store.erase_subject(end_user, "erased:" + tag, time.time())
    record_id = trail.record_event(
        EVENT_KIND,
        actor,
        {"subject_hash": tag, "records": records, "data_keys": keys},
    )
    return Receipt(record_id, tag, records, keys, store.reclaim_space())
