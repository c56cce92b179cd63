"""What a phase's counts say about its progress, and that as a line of text.

`snapshot` reads a phase object of `syncd.sync` (its `counts`, and what else tells how far it is):
the pull's current feed and its total as `Content-Range` told it (`PullPhase.position`), the
push's accounts planned, the write-back's TARs decided. `phase_total` counts, before a phase
starts, what it has to do in all. `render_line` and `render_bar` turn a snapshot into text.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from syncd.store.links import count_candidates
from syncd.store.schema import tier_account_requests
from syncd.sync.flags import FlagPhase
from syncd.sync.pull import PullPhase
from syncd.sync.push import PushPhase
from syncd.sync.writeback import WritebackPhase

BAR_WIDTH = 20


@dataclass(frozen=True)
class Snapshot:
    """Where one phase is: `done` of `total` (None when unknown) `unit`, and details."""

    phase: str
    done: int
    unit: str
    rate_unit: str
    total: int | None = None
    details: tuple[str, ...] = ()
    label: str = ""
    """Replaces `done/total unit` in the line (the pull names its feed and offset)."""
    fraction: float | None = None
    """For the bar; `done / total` when not given."""

    @property
    def share(self) -> float | None:
        """The fraction done, between 0 and 1, or None when there is no total."""
        if self.fraction is not None:
            return min(max(self.fraction, 0.0), 1.0)
        if self.total:
            return min(self.done / self.total, 1.0)
        return None


def _some(*parts: tuple[int, str], always: int = 1) -> tuple[str, ...]:
    """`"1,950 created"`… for the first `always` parts, and for the others when not zero."""
    return tuple(
        f"{count:,} {label}" for i, (count, label) in enumerate(parts) if i < always or count
    )


def snapshot(name: str, phase: object, total: int | None = None) -> Snapshot | None:
    """The progress of `phase` (a phase object of `syncd.sync`) now; None for an unknown one."""
    if isinstance(phase, PullPhase):
        return _pull(name, phase)
    if isinstance(phase, FlagPhase):
        c = phase.counts
        details = _some((c.asset_pages, "asset pages"), (c.products_read, "products read"))
        if c.enabled or c.disabled:
            details += (f"{c.enabled:,} on, {c.disabled:,} off",)
        return Snapshot(name, c.looked_up, "accounts looked up", "acc", None, details)
    if isinstance(phase, PushPhase):
        p = phase.counts
        if phase.options.dry_run:
            report = phase.report
            details = _some(
                (len(report.creates), "to create"),
                (len(report.updates), "to update"),
                (report.unchanged, "unchanged"),
                (p.rejected, "refused"),
                always=2,
            )
        else:
            details = _some(
                (p.created, "created"),
                (p.updated, "updated"),
                (p.unchanged, "unchanged"),
                (p.rejected + p.retry + p.unknown, "failed"),
                always=2,
            )
        return Snapshot(name, p.planned, "accounts", "acc", _at_least(total, p.planned), details)
    if isinstance(phase, WritebackPhase):
        w = phase.counts
        left = sum(w.left_pending.values())
        planned = len(phase.planned)
        done = w.accepted + w.ignored + w.failed + w.released + left + planned
        details = _some(
            (w.accepted, "accepted"),
            (w.ignored, "ignored"),
            (left, "left pending"),
            (planned, "to accept or ignore"),
            (w.failed, "failed"),
        )
        return Snapshot(name, done, "TARs", "TAR", _at_least(total, done), details)
    return None


def _at_least(total: int | None, done: int) -> int | None:
    # A count taken at the start can be passed (read-backs of earlier runs' actions, records
    # that arrived meanwhile): never show more done than in all.
    return None if total is None else max(total, done)


def _pull(name: str, phase: PullPhase) -> Snapshot:
    c = phase.counts
    records = c.requests_seen + c.accounts_seen
    details = _some(
        (c.pages, "pages"),
        (c.requests_written, "TARs stored"),
        (c.accounts_written, "accounts stored"),
        (c.malformed, "malformed"),
        always=3,
    )
    position: tuple[str, int, int | None] | None = getattr(phase, "position", None)
    if position is None:
        return Snapshot(name, records, "records", "rec", None, details)
    path, offset, total = position
    feed = path.rstrip("/").rsplit("/", 1)[-1]
    label = f"{feed} {offset:,}" + (f"/{total:,}" if total is not None else "")
    fraction = offset / total if total else None
    return Snapshot(name, records, "records", "rec", None, details, label, fraction)


def phase_total(phase: object) -> int | None:
    """What the phase has to do in all, counted before it starts: the push's candidates, the
    write-back's pending TARs; None for the others (the pull learns its totals as it pages)."""
    if isinstance(phase, PushPhase):
        return count_candidates(phase.engine, phase.options.selection, phase.clock())
    if isinstance(phase, WritebackPhase):
        query = (
            select(func.count())
            .select_from(tier_account_requests)
            .where(tier_account_requests.c.status == "pending")
        )
        with phase.ctx.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())
    return None


# -- rendering ---------------------------------------------------------------------------------


def _main(snap: Snapshot, final: bool = False) -> str:
    if snap.label and not final:
        return snap.label
    if snap.total is not None:
        return f"{snap.done:,}/{snap.total:,} {snap.unit}"
    return f"{snap.done:,} {snap.unit}"


def _rate(snap: Snapshot, seconds: float) -> str:
    if seconds <= 0 or not snap.done:
        return ""
    return f", {snap.done / seconds:,.0f} {snap.rate_unit}/s"


def render_line(kind: str, snap: Snapshot, seconds: float, *, final: bool = False) -> str:
    """`resync: push 4,200/10,000 accounts (1,950 created, 2,250 updated), 310 acc/s`; a final
    line says `done`, what was done in all and how long the phase took."""
    text = f"{kind}: {snap.phase}{' done' if final else ''} {_main(snap, final)}"
    if snap.details:
        text += f" ({', '.join(snap.details)})"
    text += _rate(snap, seconds)
    if final:
        text += f" in {seconds:.1f}s"
    return text


def render_bar(kind: str, snap: Snapshot, seconds: float, width: int = 100) -> str:
    """The line with a bar when the total is known, cut to `width - 1` characters."""
    share = snap.share
    bar = ""
    if share is not None:
        filled = round(share * BAR_WIDTH)
        bar = f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {share * 100:3.0f}% "
    text = f"{kind}: {snap.phase} {bar}{_main(snap)}"
    if snap.details:
        text += f" ({', '.join(snap.details)})"
    text += _rate(snap, seconds)
    return text[: max(width - 1, 10)]
