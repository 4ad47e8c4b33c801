"""Agent events written with the interaction they were found in (SPEC §7b): a tool result with
the request that sent it, a tool call with the response that asked for it.

Their content is encrypted under the data key the interaction's content used (the same end
user), so an erasure of that user makes both unreadable; their rows join the interaction's own
write, so recording them costs no transaction of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from signalvault.crypto.envelope import Cipher
from signalvault.store.sql import INSERT_RECORD
from signalvault.store.writer import WriteOp


class Event(Protocol):
    """A record to write (audit.Interaction is one; named here so this module needs no audit)."""

    @property
    def id(self) -> str: ...
    @property
    def created_at(self) -> float: ...
    @property
    def cipher(self) -> Cipher | None: ...
    @property
    def data_key_id(self) -> str | None: ...

    classification: str | None  # None: the class of the interaction it was found in

    def metadata(self) -> dict[str, Any]: ...


Linked = tuple[Event, bytes | None]  # an agent event and its content (to encrypt)


def linked_ops(source: Event, linked: Sequence[Linked]) -> list[WriteOp]:
    """Insert operations for `linked`, encrypted with `source`'s data key (none if `source`
    kept no content: the events then keep none either), of `source`'s class unless they name
    one (the trail classifies `source` first)."""
    ops = []
    for event, content in linked:
        if event.classification is None:
            # The interaction's class, just set by the trail: classifying each event again
            # would cost a capture as much as the rest of its bookkeeping.
            event.classification = source.classification
        row = event.metadata()
        row["completed_at"] = event.created_at
        cipher = source.cipher
        if content is not None and cipher is not None:
            row["data_key_id"] = source.data_key_id
            row["prompt_ct"] = cipher.encrypt(content, (event.id + ":prompt").encode())
        ops.append(WriteOp(INSERT_RECORD, row))
    return ops
