"""The first pass over a batch of token ranges: row counts of both tables (a full run) and the
digests of what user_trades should hold and of what it holds (in a sampled run, of the rows
settled in its windows).

Counts run alongside the scans; both scans read each row once and look nothing up, so a clean
table is verified at scan speed.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from cassandra.cluster import Session

from trade_migration.core.config import Config
from trade_migration.core.convert import Reject, convert
from trade_migration.core.prepared import prepared
from trade_migration.core.reads import pages_of_each
from trade_migration.core.settings import COUNTS_IN_FLIGHT, FETCH_SIZE, PAGE_TIMEOUT_S
from trade_migration.core.symbols import load_symbol_ids
from trade_migration.core.tokens import settled_token, user_trades_token
from trade_migration.statements.settled_trades import decode_scanned_trade, scan_settled
from trade_migration.statements.user_trades import decode_timed_user_trade, scan_user_trades_timed
from trade_migration.verify.counts import range_counts
from trade_migration.verify.digests import Digest, bucket, row_hash
from trade_migration.verify.parity_run import FULL, Run, Tally
from trade_migration.verify.rejects import Rejects

EXPECTED_TARGET, EXPECTED_SOURCE, ACTUAL_TARGET, ACTUAL_SOURCE = (
    "expected_target", "expected_source", "actual_target", "actual_source")


def _digests() -> dict[str, Digest]:
    return {k: Digest() for k in (EXPECTED_TARGET, EXPECTED_SOURCE, ACTUAL_TARGET, ACTUAL_SOURCE)}


def survey(session: Session, config: Config, run: Run, indexes: list[int], *, fetch_size: int = FETCH_SIZE,
           count_concurrency: int = COUNTS_IN_FLIGHT, scan_threads: int = 4,
           page_timeout: float = PAGE_TIMEOUT_S) -> dict:
    """Counts (a full run) and digests (a narrowed run) of these ranges, JSON-ready.

    Ranges are scanned by `scan_threads` threads: a scan mostly waits for its next page, so
    several keep the replicas busy while the client works through the pages it has.
    """
    tallies = {i: Tally() for i in indexes}
    digests = _digests()
    rejects = Rejects(run.report_cap)
    digesting = run.narrow
    with ThreadPoolExecutor(max_workers=1 + scan_threads, thread_name_prefix="survey") as pool:
        # whole-table counts need every row of every range, which is what a sample avoids
        counting = pool.submit(range_counts, session, config, [run.ranges[i] for i in indexes],
                               concurrency=count_concurrency) if run.mode == FULL else None
        if digesting:
            scan = _RangeDigest(session, config, run, fetch_size, page_timeout)
            tallies.update(zip(indexes, pool.map(scan, indexes), strict=True))
            for part in scan.parts:
                for k, d in part.items():
                    digests[k].merge(d)
            rejects = scan.rejects
        for i, (settled, target) in zip(indexes, counting.result(), strict=True) if counting else ():
            tallies[i].settled, tallies[i].user_trades = settled, target
    return {
        "tallies": {str(i): t.to_json() for i, t in tallies.items()},
        "digests": {k: d.to_json() for k, d in digests.items()} if digesting else None,
        "rejects": rejects.sorted(),
        "rejected_by_reason": dict(rejects.by_reason),
    }


class _RangeDigest:
    """Scans one range of both tables into its thread's digests; returns the range's Tally."""

    def __init__(self, session, config, run, fetch_size, page_timeout):
        ks = config.keyspace
        self.session, self.run, self.timeout = session, run, page_timeout
        windowed = bool(run.windows)
        self.scan_source = prepared(session, scan_settled(ks, windowed=windowed), consistency=config.read_cl,
                                    fetch_size=fetch_size)
        self.scan_target = prepared(session, scan_user_trades_timed(ks, windowed=windowed),
                                    consistency=config.read_cl, fetch_size=fetch_size)
        self.symbol_ids = load_symbol_ids(session, ks)
        # each thread's digests over every range it scanned (a thousand buckets each): one set per
        # thread rather than per range keeps memory flat however many ranges a batch has
        self.parts: list[dict[str, Digest]] = []
        self._mine = threading.local()
        self.rejects = Rejects(run.report_cap)    # one for all threads

    def __call__(self, i: int) -> Tally:
        part = getattr(self._mine, "part", None)
        if part is None:
            part = self._mine.part = _digests()
            self.parts.append(part)   # list.append is atomic
        tally = Tally()
        self.settled(i, part, tally)
        self.user_trades(i, part, tally)
        return tally

    def settled(self, i: int, part: dict[str, Digest], tally: Tally) -> None:
        """Expected rows: every in-scope trade converted, as the backfill converts it."""
        symbol_ids = self.symbol_ids
        by_target, by_source = part[EXPECTED_TARGET].add, part[EXPECTED_SOURCE].add
        for page in pages_of_each(self.session, self.scan_source, self.run.scans(self.run.ranges[i]),
                                  timeout=self.timeout):
            for token, trade, _, _ in self.run.before_start(page, decode_scanned_trade, tally):
                tally.source_rows += 1
                out = convert(trade, symbol_ids)
                if isinstance(out, Reject):
                    tally.rejected += 1
                    self.rejects.note(i, trade.trade_id, out)
                    continue
                source_bucket = bucket(token)
                for urow in out:
                    h = row_hash(urow)
                    by_target(bucket(user_trades_token(urow.user_id, urow.symbol_id)), h)
                    by_source(source_bucket, h)

    def user_trades(self, i: int, part: dict[str, Digest], tally: Tally) -> None:
        """Actual rows, each under its own token and under its trade's settled_trades token."""
        by_target, by_source = part[ACTUAL_TARGET].add, part[ACTUAL_SOURCE].add
        for page in pages_of_each(self.session, self.scan_target, self.run.scans(self.run.ranges[i]),
                                  timeout=self.timeout):
            for token, urow, _ in self.run.before_start(page, decode_timed_user_trade, tally):
                tally.target_rows += 1
                h = row_hash(urow)
                by_target(bucket(token), h)
                by_source(bucket(settled_token(urow.trade_id)), h)
