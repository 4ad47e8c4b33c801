"""`Secret`: a string whose repr and str are masked (master key, provider keys, URLs with
passwords), unwrapped with `reveal()` only where it is used."""

from __future__ import annotations


class Secret:
    """A secret string whose repr and str are masked; call `reveal()` where it is used."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)
