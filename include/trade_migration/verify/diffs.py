"""What row parity reports: one Diff per user_trades row that is missing, differs, or has no trade."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from trade_migration.core.model import USER_TRADE_COLUMNS, UserTrade

MISSING, MISMATCHED, ORPHAN = "missing", "mismatched", "orphan"
KINDS = (MISSING, MISMATCHED, ORPHAN)
FORWARD, REVERSE = "forward", "reverse"   # settled trade -> its rows; user_trades row -> its trade


@dataclass
class Diff:
    kind: str
    direction: str                  # FORWARD or REVERSE: how it was found
    range: int                      # index of the range it was found in (of settled_trades
                                    # going forward, of user_trades going in reverse)
    trade_id: int
    user_id: int | None
    symbol_id: int | None
    settled_at: datetime | None
    side: str | None
    columns: tuple[str, ...] = ()   # the columns that differ (mismatched)
    expected: dict = field(default_factory=dict)
    actual: dict = field(default_factory=dict)
    detail: str = ""
    source_written_us: int | None = None
    target_written_us: int | None = None   # the row's own newest write (orphans: what a resolve deletes)
    repair: str = ""                       # how it was fixed, or why not
    row: UserTrade | None = field(default=None, repr=False, compare=False)   # the row to write back

    @property
    def key(self) -> tuple:
        return (self.user_id, self.symbol_id, self.settled_at, self.trade_id, self.side)

    @property
    def identity(self) -> tuple:
        """The same difference seen on the first look and on the recheck has the same identity."""
        return self.direction, self.range, self.key

    def to_json(self) -> dict:
        return {"kind": self.kind, "direction": self.direction, "range": self.range, "trade_id": self.trade_id,
                "user_id": self.user_id,
                "symbol_id": self.symbol_id, "side": self.side,
                "settled_at": self.settled_at.isoformat() if self.settled_at else None,
                "columns": list(self.columns), "expected": _jsonable(self.expected),
                "actual": _jsonable(self.actual), "detail": self.detail,
                "source_written_us": self.source_written_us, "target_written_us": self.target_written_us,
                "repair": self.repair}


def _jsonable(values: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items()}


def compare(expected: UserTrade, actual: UserTrade) -> tuple[str, ...]:
    """The user_trades columns whose values differ."""
    return tuple(name for name, e, a in zip(USER_TRADE_COLUMNS, expected, actual, strict=True) if e != a)


def _diff(kind: str, direction: str, i: int, row: UserTrade, written: int | None, **kw) -> Diff:
    return Diff(kind, direction, i, row.trade_id, row.user_id, row.symbol_id, row.settled_at, row.side,
                source_written_us=written, row=row if kind != ORPHAN else None, **kw)


def missing(i: int, expected: UserTrade, written: int) -> Diff:
    return _diff(MISSING, FORWARD, i, expected, written, expected=expected._asdict(),
                 detail="no user_trades row for this side of the trade")


def mismatch(i: int, expected: UserTrade, actual: UserTrade, cols: tuple, written: int, *,
             direction: str = FORWARD) -> Diff:
    e, a = expected._asdict(), actual._asdict()
    return _diff(MISMATCHED, direction, i, expected, written, columns=cols,
                 expected={c: e[c] for c in cols}, actual={c: a[c] for c in cols},
                 detail="differs in " + ", ".join(cols))


def orphan(i: int, row: UserTrade, row_written: int, detail: str, written: int | None = None) -> Diff:
    return _diff(ORPHAN, REVERSE, i, row, written, actual=row._asdict(), detail=detail,
                 target_written_us=row_written)
