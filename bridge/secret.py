"""Secrets in the config (passwords, tokens): kept out of logs, reprs and error messages.

A config field typed `Secret` holds its text in a `Secret`, whose `str()` and `repr()` are `***`; only
`reveal()` gives the text, and only code that hands it to a client library calls it.
"""

from __future__ import annotations

MASK = "***"


class Secret:
    """A secret string that prints as `***`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret text, for the library that needs it; never log it."""
        return self._value

    def __repr__(self) -> str:
        return MASK

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def reveal(secret: Secret | None) -> str | None:
    """The text of an optional secret."""
    return None if secret is None else secret.reveal()
