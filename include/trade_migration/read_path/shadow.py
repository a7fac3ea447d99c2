"""The shadow comparison: both read paths for the same users, every difference that stays.

A difference counts only if a second look after a delay still sees it, so a trade settled
between the two reads of a pair is not an alarm; switching reads to user_trades needs a clean one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from trade_migration.core.errors import ReadPathBlocked
from trade_migration.core.model import USER_TRADE_COLUMNS
from trade_migration.read_path.paths import DEFAULT_LIMIT, ReadPaths, order_key

MISSING, EXTRA, MISMATCH = "missing_in_user_trades", "only_in_user_trades", "mismatch"


@dataclass(frozen=True)
class Difference:
    user_id: int
    symbol: str
    kind: str            # MISSING, EXTRA or MISMATCH
    trade_id: int
    side: str
    settled_at: str
    detail: str = ""

    def line(self) -> str:
        tail = f": {self.detail}" if self.detail else ""
        return (f"user {self.user_id} {self.symbol} trade {self.trade_id} {self.side}"
                f" settled {self.settled_at}: {self.kind}{tail}")


@dataclass
class ShadowReport:
    pairs: int = 0
    rows_compared: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.differences

    def summary(self, show: int = 50) -> dict:
        """JSON-ready, for the audit log: counts by kind and the first `show` differences."""
        kinds: dict[str, int] = {}
        for d in self.differences:
            kinds[d.kind] = kinds.get(d.kind, 0) + 1
        return {"pairs": self.pairs, "rows_compared": self.rows_compared, "clean": self.clean,
                "differences": len(self.differences), "by_kind": kinds,
                "first": [d.line() for d in self.differences[:show]]}

    def text(self) -> str:
        head = (f"shadow compare: {self.pairs} users x symbol, {self.rows_compared} rows,"
                f" {len(self.differences)} differences")
        return "\n".join([head] + ["  " + d.line() for d in self.differences])


def compare_pair(paths: ReadPaths, user_id: int, symbol: str,
                 limit: int = DEFAULT_LIMIT) -> tuple[int, list[Difference]]:
    """Diff the new path's page against the same window of the old path: (rows compared, differences).

    The window ends at the new page's last row when the page is full, so a row missing from
    user_trades is reported once, not also as a shifted page boundary.
    """
    old_all = paths.old(user_id, symbol, limit=None)
    new = paths.new(user_id, symbol, limit)
    if len(new) >= limit:
        boundary = order_key(new[-1])
        old_window = [r for r in old_all if order_key(r) <= boundary]
    else:
        old_window = old_all
    old_by_key = {order_key(r): r for r in old_window}
    new_by_key = {order_key(r): r for r in new}
    diffs = []
    for key in sorted(old_by_key.keys() | new_by_key.keys()):
        a, b = old_by_key.get(key), new_by_key.get(key)
        row = a or b
        where = dict(user_id=user_id, symbol=symbol, trade_id=row.trade_id, side=row.side,
                     settled_at=row.settled_at.isoformat())
        if b is None:
            diffs.append(Difference(kind=MISSING, **where))
        elif a is None:
            diffs.append(Difference(kind=EXTRA, **where))
        elif a != b:
            cols = [f"{c}: settled_trades {x!r}, user_trades {y!r}"
                    for c, x, y in zip(USER_TRADE_COLUMNS, a, b, strict=True) if x != y]
            diffs.append(Difference(kind=MISMATCH, detail="; ".join(cols), **where))
    return len(old_by_key.keys() | new_by_key.keys()), diffs


def shadow_compare(paths: ReadPaths, pairs: list[tuple[int, str]], *, limit: int = DEFAULT_LIMIT,
                   recheck_delay_s: float = 1.0) -> ShadowReport:
    """Run both paths for every pair and report every difference that is still there on a
    second look: a live trade settled between the two reads of a pair is not a difference."""
    report = ShadowReport(pairs=len(pairs))
    suspects = []
    for user_id, symbol in pairs:
        rows, diffs = compare_pair(paths, user_id, symbol, limit)
        report.rows_compared += rows
        if diffs:
            suspects.append((user_id, symbol, diffs))
    if suspects:
        time.sleep(recheck_delay_s)
    for user_id, symbol, diffs in suspects:
        _, again = compare_pair(paths, user_id, symbol, limit)
        still = set(again)
        report.differences += [d for d in diffs if d in still]
    return report


def require_clean(summary: dict | None, *, override_reason: str = "") -> None:
    """Switching reads to user_trades needs a clean shadow compare of at least one user (a
    ShadowReport.summary()), or an override with a reason."""
    if override_reason.strip():
        return
    if summary is None or not summary["pairs"]:
        raise ReadPathBlocked("switching read_path to user_trades needs a shadow comparison of at least"
                              " one user first (or an override_reason)")
    if summary["clean"]:
        return
    first = "\n  ".join(summary["first"][:10])
    raise ReadPathBlocked(
        f"switching read_path to user_trades needs a clean shadow comparison; found"
        f" {summary['differences']} differences over {summary['pairs']} users x symbol:\n  {first}\n"
        f"fix them (backfill, verify) and rerun, or give an override_reason")
