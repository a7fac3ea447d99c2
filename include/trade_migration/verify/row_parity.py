"""Row parity row by row, in both directions, with a recheck and an optional repair.

Forward: each settled trade in scope converts (trades.convert, as the backfill converts it) to
its two rows, each looked up by primary key -> missing, or mismatched with the columns that
differ. Reverse: each user_trades row in scope is traced to its trade -> an orphan when there is
no trade, the trade is rejected, or it converts to other keys. Anything written after the run
started, on either side, is left to the next run, and a difference counts only if a second look
after a delay still sees it: that is what keeps live writes from raising alarms.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args

from trade_migration.core.config import Config
from trade_migration.core.convert import SETTLED_AT, Reject, convert, row_key
from trade_migration.core.model import USER_TRADE_COLUMNS
from trade_migration.core.prepared import prepared
from trade_migration.core.reads import lookup, pages
from trade_migration.core.symbols import load_symbol_ids
from trade_migration.core.tokens import settled_token
from trade_migration.statements.settled_trades import scan_settled, scan_settled_times, select_settled
from trade_migration.statements.user_trades import insert_user_trade, scan_user_trades_timed, select_user_trade_timed
from trade_migration.verify.parity_run import CELLS, RECENTLY_SETTLED, Run, Scope, Tally
from trade_migration.verify.survey import TARGET_WRITETIMES_AT, WRITETIMES_AT, newest

MISSING, MISMATCHED, ORPHAN = "missing", "mismatched", "orphan"
KINDS = (MISSING, MISMATCHED, ORPHAN)
FORWARD, REVERSE = "forward", "reverse"   # settled trade -> its rows; user_trades row -> its trade
# How a repaired row was written: at the source's write time (as the backfill writes), or, when a
# newer delete or value written before the run shadows that, at the run's start; writes made
# after the run started always win.
AT_SOURCE_TIME, AT_RUN_START, NOT_REPAIRED = "source_write_time", "run_start", "newer_write_wins"


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
    repair: str = ""
    row: tuple | None = field(default=None, repr=False, compare=False)   # the row to write back

    @property
    def key(self) -> tuple:
        return (self.user_id, self.symbol_id, self.settled_at, self.trade_id, self.side)

    def to_json(self) -> dict:
        return {"kind": self.kind, "direction": self.direction, "range": self.range, "trade_id": self.trade_id,
                "user_id": self.user_id,
                "symbol_id": self.symbol_id, "side": self.side,
                "settled_at": self.settled_at.isoformat() if self.settled_at else None,
                "columns": list(self.columns), "expected": _jsonable(self.expected),
                "actual": _jsonable(self.actual), "detail": self.detail,
                "source_written_us": self.source_written_us, "repair": self.repair}


def _jsonable(values: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items()}


def _named(row: tuple) -> dict:
    return dict(zip(USER_TRADE_COLUMNS, row, strict=True))


def compare(expected: tuple, actual: tuple) -> tuple[str, ...]:
    """The user_trades columns whose values differ."""
    return tuple(name for name, e, a in zip(USER_TRADE_COLUMNS, expected, actual, strict=True) if e != a)


class Checker:
    """Checks ranges of one batch; symbols and prepared statements are loaded once."""

    def __init__(self, session: Session, config: Config, run: Run, scope: Scope, *, fetch_size: int = 1000,
                 concurrency: int = 128, page_timeout: float = 60.0):
        ks, cl = config.keyspace, config.read_cl
        self.session, self.config, self.run, self.scope = session, config, run, scope
        self.concurrency, self.timeout = concurrency, page_timeout
        self.scan_source = prepared(session, scan_settled(ks), consistency=cl, fetch_size=fetch_size)
        self.scan_times = prepared(session, scan_settled_times(ks), consistency=cl,
                                   fetch_size=fetch_size)
        self.scan_target = prepared(session, scan_user_trades_timed(ks), consistency=cl,
                                    fetch_size=fetch_size)
        self.get_source = prepared(session, select_settled(ks), consistency=cl)
        self.get_target = prepared(session, select_user_trade_timed(ks), consistency=cl)
        self.symbol_ids = load_symbol_ids(session, ks)
        self.tallies: dict[int, Tally] = {}
        self.rejects: list[dict] = []
        self.reasons: Counter = Counter()
        self._lock = threading.Lock()               # ranges are checked by several threads
        self.diffs: list[Diff] = []                 # confirmed, after recheck()
        self._first: dict[tuple, Diff] = {}         # first-look differences by (direction, range, key)

    def tally(self, i: int) -> Tally:
        return self.tallies.setdefault(i, Tally())

    @property
    def first_look(self) -> list[Diff]:
        """Differences seen so far, before the recheck."""
        return list(self._first.values())

    # --- first look ---------------------------------------------------------------------------
    def check_range(self, i: int) -> None:
        """The first look at one range. Rows are counted as checked (and rejects as rejected)
        unless the run only looks again where digests differ: the survey counted those."""
        rng = self.run.ranges[i]
        how = self.scope.forward.get(i)
        if how == RECENTLY_SETTLED:
            since = self.run.recent_since
            for page in pages(self.session, self.scan_times, (rng.start, rng.end), timeout=self.timeout):
                ids = [(r[1],) for r in page if r[2] is not None and r[2] >= since]
                self._note(self.forward(i, how, self._sources(ids), counting=True))
        elif how is not None:
            for page in pages(self.session, self.scan_source, (rng.start, rng.end), timeout=self.timeout):
                self._note(self.forward(i, how, page, counting=how != CELLS))
        how = self.scope.reverse.get(i)
        if how is not None:
            for page in pages(self.session, self.scan_target, (rng.start, rng.end), timeout=self.timeout):
                self._note(self.reverse(i, how, page, counting=how != CELLS))

    def _sources(self, ids: list[tuple]) -> list:
        return [r for r in lookup(self.session, self.get_source, ids, concurrency=self.concurrency) if r is not None]

    def _note(self, diffs: list[Diff]) -> None:
        with self._lock:
            for d in diffs:
                self._first[_identity(d)] = d

    # --- forward: settled trade -> its two rows -------------------------------------------------
    def forward(self, i: int, how: str, rows: list, *, counting: bool) -> list[Diff]:
        """Differences of these settled_trades rows (scan_settled shape); counting on the first look."""
        t0, tally = self.run.started_us, self.tally(i)
        wanted = []
        for row in rows:
            written = newest(row[WRITETIMES_AT:])
            if written > t0:
                tally.late += int(counting)
                continue
            trade = tuple(row[1:WRITETIMES_AT])
            out = convert(trade, self.symbol_ids)
            if counting:
                tally.source_rows += 1
            if isinstance(out, Reject):
                if counting:
                    self._reject(i, trade[0], out)
                continue
            wanted += [(written, urow) for urow in self.scope.forward_rows(how, row[0], out)]
        found = lookup(self.session, self.get_target, [row_key(u) for _, u in wanted], concurrency=self.concurrency)
        diffs = []
        for (written, urow), got in zip(wanted, found, strict=True):
            if got is None:
                diffs.append(self._diff(MISSING, FORWARD, i, urow, written, expected=_named(urow),
                                        detail="no user_trades row for this side of the trade"))
            elif newest(got[TARGET_WRITETIMES_AT:]) > t0:
                continue   # rewritten since the run started: the next run's
            else:
                actual = tuple(got[1:TARGET_WRITETIMES_AT])
                cols = compare(urow, actual)
                if cols:
                    diffs.append(self._mismatch(i, urow, actual, cols, written))
        return diffs

    def _reject(self, i: int, trade_id: int, out: Reject) -> None:
        self.tally(i).rejected += 1   # a range's tally belongs to the one thread checking it
        with self._lock:
            self.reasons[out.code] += 1
            if len(self.rejects) < self.run.report_cap:
                self.rejects.append({"range": i, "trade_id": trade_id, "reason": out.reason})

    # --- reverse: user_trades row -> its trade -------------------------------------------------
    def reverse(self, i: int, how: str, rows: list, *, counting: bool) -> list[Diff]:
        """Orphans (and, for trades the forward check does not cover, mismatches) among these
        user_trades rows (scan_user_trades_timed shape)."""
        t0, tally = self.run.started_us, self.tally(i)
        keep = []
        for row in rows:
            if newest(row[TARGET_WRITETIMES_AT:]) > t0:
                tally.late += int(counting)
                continue
            urow = tuple(row[1:TARGET_WRITETIMES_AT])
            src_tok = settled_token(urow[3])
            if how == CELLS and not self.scope.in_cell(src_tok, row[0]):
                continue
            tally.target_rows += int(counting)
            keep.append((row[0], src_tok, urow))
        ids = sorted({u[3] for _, _, u in keep})
        sources = dict(zip(ids, lookup(self.session, self.get_source, [(t,) for t in ids],
                                       concurrency=self.concurrency), strict=True))
        diffs = []
        for tgt_tok, src_tok, urow in keep:
            source = sources[urow[3]]
            if source is None:
                diffs.append(self._orphan(i, urow, f"no settled trade {urow[3]}"))
                continue
            written = newest(source[WRITETIMES_AT:])
            if written > t0:
                continue   # the trade changed since the run started: the next run's
            trade = tuple(source[1:WRITETIMES_AT])
            out = convert(trade, self.symbol_ids)
            if isinstance(out, Reject):
                diffs.append(self._orphan(i, urow, f"its trade is rejected ({out.reason})", written))
                continue
            expected = next((e for e in out if row_key(e) == row_key(urow)), None)
            if expected is None:
                keys = "; ".join(f"user {e[0]} symbol {e[1]} {e[4]} at {e[2]}" for e in out)
                diffs.append(self._orphan(i, urow, f"its trade converts to other rows: {keys}", written))
            elif expected != urow and not self.scope.covers(self.run, src_tok, trade[SETTLED_AT], tgt_tok):
                diffs.append(self._mismatch(i, expected, urow, compare(expected, urow), written,
                                            direction=REVERSE))
        return diffs

    # --- recheck ----------------------------------------------------------------------------
    def recheck(self, delay: float | None = None) -> list[Diff]:
        """Look again, after a delay, at every difference found; keep those seen both times."""
        if not self._first:
            return []
        time.sleep(self.run.recheck_delay if delay is None else delay)
        forward: dict[int, set] = {}
        reverse: dict[int, list] = {}
        for d in self._first.values():
            if d.direction == REVERSE:
                reverse.setdefault(d.range, []).append(d.key)
            else:
                forward.setdefault(d.range, set()).add(d.trade_id)
        again: list[Diff] = []
        for i, ids in forward.items():
            again += self.forward(i, self.scope.forward[i], self._sources(sorted((t,) for t in ids)), counting=False)
        for i, keys in reverse.items():
            rows = [r for r in lookup(self.session, self.get_target, keys, concurrency=self.concurrency)
                    if r is not None]
            again += self.reverse(i, self.scope.reverse[i], rows, counting=False)
        confirmed = [d for d in again if _identity(d) in self._first]
        for d in confirmed:
            tally = self.tally(d.range)
            if d.kind == MISSING:
                tally.missing += 1
            elif d.kind == MISMATCHED:
                tally.mismatched += 1
            else:
                tally.orphans += 1
        self.diffs = confirmed
        return confirmed

    # --- repair -----------------------------------------------------------------------------
    def repair(self) -> int:
        """Write missing and mismatched rows from their trades; orphans are never deleted.

        First at the source's write time, as the backfill writes: a dual write or correction made
        later wins. A row a newer delete or value shadows (written before this run began, so a
        fault, not live traffic) is written again at the run's start. Every write is read back.
        """
        todo = [d for d in self.diffs if d.kind in (MISSING, MISMATCHED) and d.row is not None]
        insert = prepared(self.session, insert_user_trade(self.config.keyspace),
                          consistency=self.config.write_cl)
        for label, stamp in ((AT_SOURCE_TIME, lambda d: d.source_written_us),
                             (AT_RUN_START, lambda d: max(d.source_written_us, self.run.started_us))):
            if not todo:
                break
            execute_concurrent_with_args(self.session, insert, [(*d.row, stamp(d)) for d in todo],
                                         concurrency=self.concurrency, raise_on_first_error=True)
            found = lookup(self.session, self.get_target, [row_key(d.row) for d in todo], concurrency=self.concurrency)
            left = []
            for d, got in zip(todo, found, strict=True):
                if got is not None and tuple(got[1:TARGET_WRITETIMES_AT]) == d.row:
                    d.repair = label
                    self.tally(d.range).repaired += 1
                else:
                    left.append(d)
            todo = left
        for d in todo:
            d.repair = NOT_REPAIRED
        return sum(1 for d in self.diffs if d.repair in (AT_SOURCE_TIME, AT_RUN_START))

    # --- records ----------------------------------------------------------------------------
    def _diff(self, kind: str, direction: str, i: int, urow: tuple, written: int | None, **kw) -> Diff:
        return Diff(kind, direction, i, urow[3], urow[0], urow[1], urow[2], urow[4], source_written_us=written,
                    row=urow if kind != ORPHAN else None, **kw)

    def _mismatch(self, i: int, expected: tuple, actual: tuple, cols: tuple, written: int, *,
                  direction: str = FORWARD) -> Diff:
        e, a = _named(expected), _named(actual)
        return self._diff(MISMATCHED, direction, i, expected, written, columns=cols,
                          expected={c: e[c] for c in cols}, actual={c: a[c] for c in cols},
                          detail="differs in " + ", ".join(cols))

    def _orphan(self, i: int, urow: tuple, detail: str, written: int | None = None) -> Diff:
        return self._diff(ORPHAN, REVERSE, i, urow, written, actual=_named(urow), detail=detail)


def _identity(d: Diff) -> tuple:
    return d.direction, d.range, d.key


def inspect(session: Session, config: Config, run: Run, scope: Scope, indexes: list[int], *,
            scan_threads: int = 4, **options) -> Checker:
    """First look at each range of the batch (`scan_threads` ranges at a time), one recheck of
    everything found, then (if the run repairs) the repair."""
    checker = Checker(session, config, run, scope, **options)
    for i in indexes:
        checker.tally(i)
    with ThreadPoolExecutor(max_workers=scan_threads, thread_name_prefix="inspect") as pool:
        list(pool.map(checker.check_range, indexes))
    checker.recheck()
    if run.repair:
        checker.repair()
    return checker
