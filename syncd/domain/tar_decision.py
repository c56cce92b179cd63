"""What to do with one pending tier account request, from what syncd knows of its account.

The brief (product.md §3, write-back): accept a pending TAR once its account is in the CRM at the
TAR's version or newer; ignore it, with the CRM's reason, when the CRM permanently refused that
version; leave it pending while the outcome is retryable or the account's sync is off. In order:

1. the account's sync flag is not on: leave it (flag off, or not decided yet); with the `ignore`
   policy (`SYNCD_DISABLED_TAR_POLICY`) a flag that is off ignores it with `FLAG_OFF_REASON`;
2. a manual conflict on the account is open: leave it (an operator decides what the CRM holds);
3. the CRM holds the account at the TAR's version or newer (`synced_version >= account_version`):
   accept. This holds whatever the link's state, which describes the newest attempt only: when
   version 6 was refused after version 5 went in, the TAR of version 5 is still accepted;
4. the CRM refused a write of that version or a newer one (`state == 'rejected'`,
   `attempted_version >= account_version`): ignore, with the CRM's message cut to 255 characters;
5. anything else (a retryable or unknown CRM outcome, or a version the push has not reached):
   leave it.

Pure code: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Action = Literal["accept", "ignore"]
DisabledPolicy = Literal["leave", "ignore"]

REASON_MAX: Final = 255
"""Connect's limit on a TAR's `reason` (SPEC `dp.TierAccountRequest.reason`)."""

FLAG_OFF_REASON: Final = (
    "Not applied: synchronisation of this tier account with the vendor's CRM is turned off."
)
NO_CRM_MESSAGE: Final = "The CRM refused this change without giving a reason."

# Why a TAR is left pending, as counted and shown by `syncd status`.
FLAG_OFF: Final = "flag_off"
FLAG_UNDECIDED: Final = "flag_undecided"
MANUAL_CONFLICT: Final = "manual_conflict"
CRM_PENDING: Final = "crm_pending"
NOT_IN_CRM: Final = "not_in_crm"


@dataclass(frozen=True)
class TarFacts:
    """What the mirror knows of a pending TAR's account."""

    account_version: int
    sync_enabled: bool | None
    """`tier_accounts.sync_enabled`: None while nobody has decided it."""
    link_state: str | None
    """`crm_links.state` (synced, retry, rejected, unknown); None when never pushed."""
    synced_version: int | None
    attempted_version: int | None
    last_error: str | None
    open_conflict: bool
    """A `crm_conflicts` row with resolution `manual` that no operator has resolved."""


@dataclass(frozen=True)
class Decision:
    """`action` None means leave the TAR pending; `reason` then says why (one of the constants
    above). For an ignore, `reason` is the text sent to Connect; for an accept, a note."""

    action: Action | None
    reason: str


def cut_reason(text: str | None) -> str:
    """A reason Connect takes: the text stripped and cut to 255 characters; never empty."""
    stripped = (text or "").strip()
    return stripped[:REASON_MAX] if stripped else NO_CRM_MESSAGE


def decide(facts: TarFacts, disabled_policy: DisabledPolicy = "leave") -> Decision:
    """The decision for one pending TAR (module doc for the rules, in order)."""
    if facts.sync_enabled is not True:
        if facts.sync_enabled is False and disabled_policy == "ignore":
            return Decision("ignore", FLAG_OFF_REASON)
        return Decision(None, FLAG_OFF if facts.sync_enabled is False else FLAG_UNDECIDED)
    if facts.open_conflict:
        return Decision(None, MANUAL_CONFLICT)
    version = facts.account_version
    if facts.synced_version is not None and facts.synced_version >= version:
        return Decision("accept", f"in the CRM at version {facts.synced_version}")
    if facts.link_state is None:
        return Decision(None, NOT_IN_CRM)
    attempted = facts.attempted_version is not None and facts.attempted_version >= version
    if facts.link_state == "rejected" and attempted:
        return Decision("ignore", cut_reason(facts.last_error))
    if facts.link_state in ("retry", "unknown") and attempted:
        return Decision(None, CRM_PENDING)
    return Decision(None, NOT_IN_CRM)
