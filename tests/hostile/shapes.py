"""Hypothesis strategies for request bodies, built from the official SDKs' own request types
(the `openai` and `anthropic` packages' TypedDicts), so generated bodies have the fields, nesting
and literals those SDKs send. `mutations.py` then breaks them.

`from_type` alone cannot do this: the SDK types use `Iterable[...]` (it would generate
iterators), pydantic models inside unions, and `object` for JSON schemas.
"""

from __future__ import annotations

import collections.abc
import types
import typing
from typing import Any

import typing_extensions
from hypothesis import strategies as st

MAX_DEPTH = 5  # type nesting followed in full; deeper, only required keys and short lists
_WRAPPERS = {typing.Required, typing.NotRequired, typing_extensions.Required}
_WRAPPERS |= {typing_extensions.NotRequired, typing.ClassVar}

# Leaf values. Text sometimes carries personal data (so the gateway must redact and re-emit
# the body) or a secret (so it must block); both make more of the pipeline run.
PII = ("mail bob.smith@example.com", "call +1 415 555 0132", "IBAN GB82 WEST 1234 5698 7654 32")
SECRET = "AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(PII),
    st.just(SECRET),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=200),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=10,
)


def shape_of(tp: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """JSON values of type `tp` (a TypedDict, a pydantic model, or any typing construct)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated or origin in _WRAPPERS:
        return shape_of(args[0], depth)
    if tp is Any or tp is object:
        return json_values
    if tp is type(None) or tp is None:
        return st.none()
    if tp is str:
        return texts
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(min_value=-(2**31), max_value=2**31)
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False) | st.integers(0, 4)
    if tp is bytes:
        return st.text(max_size=20)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([shape_of(arg, depth) for arg in args])
    if origin in (list, tuple, set, frozenset, collections.abc.Iterable, collections.abc.Sequence):
        return st.lists(shape_of(args[0] if args else Any, depth + 1), max_size=_list_size(depth))
    if origin in (dict, collections.abc.Mapping):
        values = shape_of(args[1] if len(args) == 2 else Any, depth + 1)
        return st.dictionaries(st.text(max_size=12), values, max_size=3)
    if typing_extensions.is_typeddict(tp):
        return _typed_dict(tp, depth)
    if isinstance(tp, type) and hasattr(tp, "model_fields"):  # a pydantic model in a union
        # On the wire a field goes by its alias (the mcp SDK's `protocolVersion`, `_meta`).
        fields = {f.alias or name: f.annotation for name, f in tp.model_fields.items()}
        required = {f.alias or name for name, f in tp.model_fields.items() if f.is_required()}
        return _object(fields, required, depth)
    if isinstance(tp, typing.TypeVar) or origin is not None:
        return json_values
    if "SequenceNotStr" in repr(tp):  # the SDKs' list-but-not-str protocol
        return st.lists(texts, max_size=3)
    return json_values  # a type this walker does not know: any JSON value


def _list_size(depth: int) -> int:
    return 3 if depth < MAX_DEPTH else 1


def _typed_dict(tp: Any, depth: int) -> st.SearchStrategy[dict[str, Any]]:
    hints = typing.get_type_hints(tp, include_extras=True)
    # `__required_keys__` misses `Required[...]` written as a string annotation on Python 3.11.
    required = {
        name
        for name, hint in hints.items()
        if typing.get_origin(hint) in (typing.Required, typing_extensions.Required)
        or (
            tp.__total__
            and typing.get_origin(hint) not in (typing.NotRequired, typing_extensions.NotRequired)
        )
    }
    return _object(hints, required, depth)


def _object(fields: dict[str, Any], required: set[str], depth: int) -> st.SearchStrategy[Any]:
    if depth > MAX_DEPTH * 2:
        return st.fixed_dictionaries({})
    needed = {
        name: st.deferred(_later(tp, depth + 1)) for name, tp in fields.items() if name in required
    }
    optional = {}
    if depth <= MAX_DEPTH:
        optional = {
            name: st.deferred(_later(tp, depth + 1))
            for name, tp in fields.items()
            if name not in required
        }
    return st.fixed_dictionaries(needed, optional=optional)


def _later(tp: Any, depth: int) -> Any:
    # Deferred: the SDK types are recursive in places, and most branches are never drawn.
    return lambda: shape_of(tp, depth)


def params(
    tp: Any,
    fixed: dict[str, st.SearchStrategy[Any]],
    optional: dict[str, st.SearchStrategy[Any]] | None = None,
) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies of the SDK request type `tp`, with the fields of `fixed` (and, sometimes, of
    `optional`) drawn from those strategies instead: a model the gateway routes, say, so most
    bodies get past routing."""
    extra = st.fixed_dictionaries(fixed, optional=optional or {})
    return st.tuples(shape_of(tp), extra).map(lambda pair: {**pair[0], **pair[1]})
