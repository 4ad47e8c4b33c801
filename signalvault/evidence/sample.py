"""Auditor samples (SPEC §7c): a reproducible random draw of sealed records, each written with
its Merkle leaf fields and inclusion proof against the newest signed checkpoint, the public key,
and a signature over the whole file, so `sample_check` can verify it with nothing but the file.

The draw is `random.Random(seed).sample` over the seqs of live sealed records in the period, in
seq order: the same seed, period and checkpoint draw the same records. Creating a sample is
recorded in the trail before the file is written (content included only for readable classes).
"""

from __future__ import annotations

import base64
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select

from signalvault import __version__
from signalvault.console import iso
from signalvault.errors import ConfigError, StoreError
from signalvault.evidence.proofs import ProofTree
from signalvault.store import Store
from signalvault.store import seal_queries as q
from signalvault.store.schema import audit_records
from signalvault.trail.audit import AuditTrail
from signalvault.trail.export import manifest as manifests
from signalvault.trail.integrity.checkpoint import CheckpointError, parse_body
from signalvault.trail.integrity.leaf import COLUMN_INDEX, leaf_data
from signalvault.trail.integrity.merkle import leaf_hash
from signalvault.trail.signing import Signer

SAMPLE_TYPE = "signalvault.audit.sample"
SAMPLE_VERSION = 1
SAMPLE_EVENT = "audit_sample"
MAX_SAMPLE = 10_000
_SEQ, _LEAF, _CREATED = COLUMN_INDEX["seq"], COLUMN_INDEX["leaf_hash"], COLUMN_INDEX["created_at"]
_KIND, _TOMBSTONED = COLUMN_INDEX["kind"], COLUMN_INDEX["tombstoned_at"]


@dataclass(frozen=True, slots=True)
class SampleRequest:
    n: int
    since: float | None = None
    until: float | None = None
    seed: int | None = None  # None: a random seed, written into the file
    kind: str | None = None  # only records of this kind (e.g. interaction)
    include_content: bool = False

    def parameters(self, seed: int) -> dict[str, Any]:
        return {
            "n": self.n,
            "seed": seed,
            "from": iso(self.since),
            "to": iso(self.until),
            "kind": self.kind,
            "include_content": self.include_content,
        }


def _eligible(row: tuple[Any, ...], request: SampleRequest) -> bool:
    created = row[_CREATED]
    return (
        row[_TOMBSTONED] is None  # a tombstone's fields are gone: its leaf cannot be re-derived
        and (request.since is None or created >= request.since)
        and (request.until is None or created < request.until)
        and (request.kind is None or row[_KIND] == request.kind)
    )


def draw_sample(
    store: Store,
    trail: AuditTrail,
    signer: Signer,
    request: SampleRequest,
    actor: str,
    readable: Callable[[dict[str, Any]], bool],
) -> dict[str, Any]:
    """The signed sample document (not yet written anywhere).

    Raises:
        ConfigError: nothing sealed yet, or a bad sample size.
        StoreError: the stored leaves do not rebuild the checkpoint's root (run `audit verify`),
            or the trail cannot record the sample.
    """
    if not 1 <= request.n <= MAX_SAMPLE:
        raise ConfigError(f"--n must be between 1 and {MAX_SAMPLE}")
    seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
    with store.engine.connect() as conn:
        head = q.last_checkpoint(conn)
    if head is None:
        raise ConfigError("nothing is sealed yet: run `signalvault audit seal` first")
    try:
        checkpoint = parse_body(head.body, head.signature)
    except CheckpointError as exc:
        raise StoreError(f"the newest checkpoint is unreadable: {exc}") from None
    leaves: list[bytes] = []
    population: list[int] = []
    for row in q.sealed_records(store.engine, checkpoint.tree_size):
        if row[_SEQ] != len(leaves) or row[_LEAF] is None:
            raise StoreError(f"the trail is not intact at seq {len(leaves)}: run `audit verify`")
        leaves.append(bytes(row[_LEAF]))
        if _eligible(row, request):
            population.append(row[_SEQ])
    tree = ProofTree(leaves)
    if len(leaves) != checkpoint.tree_size or tree.root() != checkpoint.root:
        raise StoreError(
            "the sealed records do not rebuild the checkpoint's root: run `audit verify`"
        )
    # random.Random is the point here: anyone with the seed re-draws the same sample.
    chosen = sorted(random.Random(seed).sample(population, min(request.n, len(population))))  # noqa: S311
    rows = _rows(store, chosen)
    records = [_sampled(trail, tree, rows[seq], request, readable) for seq in chosen]
    audit_id = trail.record_event(
        SAMPLE_EVENT,
        actor,
        {
            **request.parameters(seed),
            "population": len(population),
            "drawn": len(records),
            "checkpoint_tree_size": checkpoint.tree_size,
            "records": [r["leaf"]["id"] for r in records],
            "content_records": sum(1 for r in records if "content" in r),
        },
    )
    document = {
        "type": SAMPLE_TYPE,
        "v": SAMPLE_VERSION,
        "generated_at": iso(time.time()),
        "generator": f"signalvault {__version__}",
        "parameters": request.parameters(seed),
        "population": {
            "eligible": len(population),
            "sealed": checkpoint.tree_size,
            "first_seq": population[0] if population else None,
            "last_seq": population[-1] if population else None,
        },
        "checkpoint": orjson.loads(checkpoint.json_line()),
        "records": records,
        "audit_record_id": audit_id,
    }
    return manifests.sign(document, signer)


def _rows(store: Store, seqs: list[int]) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    with store.engine.connect() as conn:
        for start in range(0, len(seqs), 500):
            query = select(audit_records).where(audit_records.c.seq.in_(seqs[start : start + 500]))
            found.update({row.seq: dict(row._mapping) for row in conn.execute(query)})
    return found


def _sampled(
    trail: AuditTrail,
    tree: ProofTree,
    row: dict[str, Any],
    request: SampleRequest,
    readable: Callable[[dict[str, Any]], bool],
) -> dict[str, Any]:
    data = leaf_data(row)
    stated = bytes(row["leaf_hash"])
    if leaf_hash(data) != stated:
        raise StoreError(f"record {row['id']} at seq {row['seq']} changed: run `audit verify`")
    entry: dict[str, Any] = {
        "seq": row["seq"],
        "leaf_hash": stated.hex(),
        "leaf": orjson.loads(data),
        "proof": [node.hex() for node in tree.inclusion(row["seq"])],
    }
    if request.include_content and row.get("data_key_id") is not None:
        if readable(row):
            prompt, response = trail.decrypt(row)
            entry["content"] = {
                "prompt": None if prompt is None else prompt.decode("utf-8", "replace"),
                "response": None if response is None else response.decode("utf-8", "replace"),
                # The leaf commits to the ciphertext's SHA-256 (the *_ct fields).
                "prompt_ct": _b64(row.get("prompt_ct")),
                "response_ct": _b64(row.get("response_ct")),
            }
            if row.get("events_ct") is not None:  # tool calls and results it holds
                entry["content"]["events"] = trail.decrypt_events(row)
                entry["content"]["events_ct"] = _b64(row["events_ct"])
        else:
            entry["content"] = {"withheld": True}
    return entry


def _b64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode()
