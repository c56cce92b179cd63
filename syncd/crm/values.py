"""CRM values as syncd keeps them.

A CRM may hand back a value holding NUL (HubSpot stores a property value as it was sent), and
Postgres refuses NUL in `text` and `jsonb` alike, with the whole batch's transaction. The
adapters therefore return every value they read with NUL escaped as the six characters
`\\u0000`, as the ledger keeps it (`syncd.store.runs`): readable, storable, and stable from one
read to the next, so the diff compares like with like and sees no change that is not there.
"""

from __future__ import annotations

NUL = "\x00"
ESCAPED_NUL = "\\u0000"


def storable(value: str | None) -> str | None:
    """`value` with every NUL escaped (`\\u0000`); None and NUL-free text unchanged."""
    if not isinstance(value, str) or NUL not in value:  # a CRM may send a number as one
        return value
    return value.replace(NUL, ESCAPED_NUL)
