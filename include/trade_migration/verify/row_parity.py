"""Row parity row by row, in both directions, with a recheck and an optional repair (verify/repair.py).

Forward: each settled trade in scope converts (core.convert, as the backfill converts it) to
its two rows, each looked up by primary key -> missing, or mismatched with the columns that
differ. Reverse: each user_trades row in scope is traced to its trade -> an orphan when there is
no trade, the trade is rejected, or it converts to other keys; a row with no trade written once
dual_write was new_only is a trade settled in user_trades alone, counted (Tally.new_only), not an
orphan. Anything written after the run
started, on either side, is left to the next run, and a difference counts only if a second look
after a delay still sees it: that is what keeps live writes from raising alarms.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from cassandra.cluster import Session

from trade_migration.core.clock import naive_utc
from trade_migration.core.config import Config
from trade_migration.core.convert import Reject, convert
from trade_migration.core.model import SettledTrade, UserTrade
from trade_migration.core.prepared import prepared
from trade_migration.core.reads import chunked, pages_of_each, rows_of
from trade_migration.core.settings import FETCH_SIZE, IN_FLIGHT, PAGE_TIMEOUT_S
from trade_migration.core.symbols import load_symbol_ids
from trade_migration.core.tokens import settled_token
from trade_migration.statements.settled_trades import (
    decode_scanned_trade,
    scan_settled,
    scanned_trade_id,
    select_settled_in,
)
from trade_migration.statements.user_trades import (
    decode_timed_user_trade,
    scan_user_trades_timed,
    select_user_trades_by_keys,
)
from trade_migration.verify.diffs import MISMATCHED, MISSING, REVERSE, Diff, compare, mismatch, missing, orphan
from trade_migration.verify.parity_run import CELLS, Run, Scope, Tally
from trade_migration.verify.rejects import Rejects
from trade_migration.verify.repair import repair

IN_KEYS = 100   # keys one read asks for (trades, or rows of one partition): a request per key costs
                # the client and the coordinator far more than the row itself
SLICES_PER_READ = 800   # user x clustering key pairs one user_trades read looks for
LOOKUP_ROWS = 40_000    # expected rows the forward check gathers (across the batch's ranges) before
                        # looking them up: the more keys of a partition one read asks for, the less
                        # each costs the node


def counterpart(trade: SettledTrade | None, urow: UserTrade, symbol_ids: dict[str, int]) -> UserTrade | str:
    """The row `trade` converts to under this row's key; when there is none, why not (the row is an
    orphan: the reverse check's detail, the resolve's reason)."""
    if trade is None:
        return f"no settled trade {urow.trade_id}"
    out = convert(trade, symbol_ids)
    if isinstance(out, Reject):
        return f"its trade is rejected ({out.reason})"
    expected = next((e for e in out if e.key == urow.key), None)
    if expected is None:
        return "its trade converts to other rows: " + "; ".join(
            f"user {e.user_id} symbol {e.symbol_id} {e.side} at {e.settled_at}" for e in out)
    return expected


def _identity(key: tuple) -> tuple:
    """A user_trades key as the driver returns it (settled_at naive UTC)."""
    user_id, symbol_id, settled_at, trade_id, side = key
    return user_id, symbol_id, naive_utc(settled_at), trade_id, side


def reads_of(keys: list[tuple]) -> list[tuple]:
    """select_user_trades_by_keys parameters covering these user_trades keys. Most partitions hold
    one key of a sample (a market maker's hold many), so a read covers the keys of several users
    in one symbol, up to SLICES_PER_READ user x key pairs (what the node looks for; the pairs no
    key asked for find nothing, or rows the caller leaves)."""
    by_symbol: dict[int, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for user_id, symbol_id, *clustering in keys:
        by_symbol[symbol_id][user_id].append(tuple(clustering))
    reads = []
    for symbol_id, users in by_symbol.items():
        group: list[int] = []
        wanted: list[tuple] = []
        for user_id, clustering in sorted(users.items(), key=lambda u: -len(u[1])):
            for part in chunked(clustering, IN_KEYS):   # a user's next chunk never joins its last
                if group and (user_id in group or (len(group) + 1) * (len(wanted) + len(part)) > SLICES_PER_READ):
                    reads.append((group, symbol_id, wanted))
                    group, wanted = [], []
                group, wanted = [*group, user_id], wanted + part
        reads.append((group, symbol_id, wanted))
    return reads


class Checker:
    """Checks ranges of one batch; symbols and prepared statements are loaded once."""

    def __init__(self, session: Session, config: Config, run: Run, scope: Scope, *, fetch_size: int = FETCH_SIZE,
                 concurrency: int = IN_FLIGHT, page_timeout: float = PAGE_TIMEOUT_S):
        ks, cl = config.keyspace, config.read_cl
        self.session, self.config, self.run, self.scope = session, config, run, scope
        self.concurrency, self.timeout = concurrency, page_timeout
        windowed = bool(run.windows)   # a sampled run reads the rows settled in its windows
        self.scan_source = prepared(session, scan_settled(ks, windowed=windowed), consistency=cl,
                                    fetch_size=fetch_size)
        self.scan_target = prepared(session, scan_user_trades_timed(ks, windowed=windowed), consistency=cl,
                                    fetch_size=fetch_size)
        # by timed: the first look reads values only, the recheck and the repair write times too
        self.get_sources = {t: prepared(session, select_settled_in(ks, timed=t), consistency=cl) for t in (True, False)}
        self.get_by_keys = {t: prepared(session, select_user_trades_by_keys(ks, timed=t), consistency=cl)
                            for t in (True, False)}
        self.symbol_ids = load_symbol_ids(session, ks)
        self.tallies: dict[int, Tally] = {}
        self.rejects = Rejects(run.report_cap)
        self._lock = threading.Lock()               # ranges are checked by several threads
        self.diffs: list[Diff] = []                 # confirmed, after recheck()
        self._first: dict[tuple, Diff] = {}         # first-look differences by (direction, range, key)
        self._gathered: list[tuple] = []            # (range, write time, expected row) not looked up yet

    def tally(self, i: int) -> Tally:
        return self.tallies.setdefault(i, Tally())

    @property
    def first_look(self) -> list[Diff]:
        """Differences seen so far, before the recheck."""
        return list(self._first.values())

    # --- first look ---------------------------------------------------------------------------
    def check_range(self, i: int) -> None:
        """The first look at one range (its expected rows gathered for lookup: flush() ends the
        forward check). Rows are counted as checked (and rejects as rejected) unless the run only
        looks again where digests differ: the survey counted those."""
        scans = self.run.scans(self.run.ranges[i])
        how = self.scope.forward.get(i)
        if how is not None:
            for page in pages_of_each(self.session, self.scan_source, scans, timeout=self.timeout):
                self._gather(self._expected(i, how, page, counting=how != CELLS))
        how = self.scope.reverse.get(i)
        if how is not None:
            for page in pages_of_each(self.session, self.scan_target, scans, timeout=self.timeout):
                self._note(self.reverse(i, how, page, counting=how != CELLS))

    def _sources(self, ids: list[int], *, timed: bool = True) -> list:
        """The trades of these ids that exist (scan_settled shape), IN_KEYS per read."""
        return list(rows_of(self.session, self.get_sources[timed], [(c,) for c in chunked(ids, IN_KEYS)],
                            concurrency=self._reads_in_flight))

    @property
    def _reads_in_flight(self) -> int:
        """Multi-key reads in flight: each asks for up to IN_KEYS rows, so keep as many rows pending
        as `concurrency` single lookups would."""
        return max(1, self.concurrency * 8 // IN_KEYS)

    def targets(self, keys: list[tuple], *, timed: bool = True) -> list:
        """The row (or None) under each user_trades key, in order: one read for many keys
        (reads_of), rather than one per key."""
        found = {_identity(decode_timed_user_trade(r).row.key): r
                 for r in rows_of(self.session, self.get_by_keys[timed], reads_of(keys),
                                  concurrency=self._reads_in_flight)}
        return [found.get(_identity(key)) for key in keys]

    def _note(self, diffs: list[Diff]) -> None:
        with self._lock:
            for d in diffs:
                self._first[d.identity] = d

    # --- forward: settled trade -> its two rows -------------------------------------------------
    def forward(self, i: int, how: str, rows: list, *, counting: bool) -> list[Diff]:
        """Differences of these settled_trades rows (scan_settled shape); counting on the first look."""
        return self._compare(self._expected(i, how, rows, counting=counting))

    def _expected(self, i: int, how: str, rows: list, *, counting: bool) -> list[tuple]:
        """(range, write time, expected row) of these settled_trades rows; their rejects noted."""
        tally, wanted = self.tally(i), []
        for token, trade, written, _ in self.run.before_start(rows, decode_scanned_trade, tally, counting=counting):
            out = convert(trade, self.symbol_ids)
            if counting:
                tally.source_rows += 1
            if isinstance(out, Reject):
                if counting:
                    self._reject(i, trade.trade_id, out)
                continue
            wanted += [(i, written, urow) for urow in self.scope.forward_rows(how, token, out)]
        return wanted

    def _gather(self, wanted: list[tuple]) -> None:
        """Keep expected rows until LOOKUP_ROWS are waiting, then look them up (in this thread)."""
        with self._lock:
            self._gathered += wanted
            if len(self._gathered) < LOOKUP_ROWS:
                return
            batch, self._gathered = self._gathered, []
        self._note(self._compare(batch, timed=False))

    def flush(self) -> None:
        """Look up what is still gathered (once every range has been read)."""
        batch, self._gathered = self._gathered, []
        self._note(self._compare(batch, timed=False))

    def _compare(self, wanted: list[tuple], *, timed: bool = True) -> list[Diff]:
        """Missing and mismatched rows among these expected rows, read in as few requests as their
        keys allow. Untimed (a first look), a row rewritten since the run started is not told
        apart: where it differs, the recheck reads its write time."""
        t0 = self.run.started_us
        found = self.targets([u.key for _, _, u in wanted], timed=timed)
        diffs = []
        for (i, written, urow), got in zip(wanted, found, strict=True):
            if got is None:
                diffs.append(missing(i, urow, written))
                continue
            actual = decode_timed_user_trade(got)
            if actual.written > t0:
                continue   # rewritten since the run started: the next run's
            cols = compare(urow, actual.row)
            if cols:
                diffs.append(mismatch(i, urow, actual.row, cols, written))
        return diffs

    def _reject(self, i: int, trade_id: int, out: Reject) -> None:
        self.tally(i).rejected += 1   # a range's tally belongs to the one thread checking it
        self.rejects.note(i, trade_id, out)

    # --- reverse: user_trades row -> its trade -------------------------------------------------
    def reverse(self, i: int, how: str, rows: list, *, counting: bool, first: bool = True) -> list[Diff]:
        """Orphans (and, for trades the forward check does not cover, mismatches) among these
        user_trades rows (scan_user_trades_timed shape); rows settled in new_only mode counted on
        the first look (the survey cannot tell them, so even a narrowed run counts them here)."""
        t0, tally = self.run.started_us, self.tally(i)
        keep = []
        for tgt_tok, urow, row_written in self.run.before_start(rows, decode_timed_user_trade, tally,
                                                                counting=counting):
            src_tok = settled_token(urow.trade_id)
            if how == CELLS and not self.scope.in_cell(src_tok, tgt_tok):
                continue
            tally.target_rows += int(counting)
            keep.append((tgt_tok, src_tok, urow, row_written))
        found = {scanned_trade_id(r): r for r in self._sources(sorted({u.trade_id for _, _, u, _ in keep}),
                                                               timed=not first)}   # see _compare
        diffs = []
        for tgt_tok, src_tok, urow, row_written in keep:
            source = found.get(urow.trade_id)
            scanned = None if source is None else decode_scanned_trade(source)
            if scanned is not None and scanned.written > t0:
                continue   # the trade changed since the run started: the next run's
            if scanned is None and self.run.settled_in_new_only(row_written):
                tally.new_only += int(first)
                continue   # settled once the writer had left settled_trades: user_trades is its only table
            trade, written = (None, None) if scanned is None else (scanned.trade, scanned.written)
            expected = counterpart(trade, urow, self.symbol_ids)
            if isinstance(expected, str):
                diffs.append(orphan(i, urow, row_written, expected, written))
            elif expected != urow and not self.scope.covers(self.run, src_tok, tgt_tok):
                diffs.append(mismatch(i, expected, urow, compare(expected, urow), written, direction=REVERSE))
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
            again += self.forward(i, self.scope.forward[i], self._sources(sorted(ids)), counting=False)
        for i, keys in reverse.items():
            rows = [r for r in self.targets(keys) if r is not None]
            again += self.reverse(i, self.scope.reverse[i], rows, counting=False, first=False)
        confirmed = [d for d in again if d.identity in self._first]
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


def inspect(session: Session, config: Config, run: Run, scope: Scope, indexes: list[int], *,
            scan_threads: int = 4, **options) -> Checker:
    """First look at each range of the batch (`scan_threads` ranges at a time), one recheck of
    everything found, then (if the run repairs) the repair."""
    checker = Checker(session, config, run, scope, **options)
    for i in indexes:
        checker.tally(i)
    with ThreadPoolExecutor(max_workers=scan_threads, thread_name_prefix="inspect") as pool:
        list(pool.map(checker.check_range, indexes))
    checker.flush()
    checker.recheck()
    if run.repair:
        repair(checker)
    return checker
