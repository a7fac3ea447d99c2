"""The first pass over a batch of token ranges: row counts of both tables and, in a full run,
the digests of what user_trades should hold and of what it holds.

Counts run in a background thread while this thread scans; both scans read each row once and
look nothing up, so a clean table is verified at scan speed.
"""
from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from cassandra.cluster import Session

from . import statements
from .config import Config
from .counts import range_counts
from .cql import prepared
from .digests import Digest, bucket, row_hash, source_token, target_token
from .parity_run import FULL, Run, Tally
from .reads import pages
from .symbols import load_symbol_ids
from .trades import Reject, convert

WRITETIMES_AT = 15        # scan_settled: token, 14 columns, then their write times
TARGET_WRITETIMES_AT = 14  # scan_user_trades_timed: token, 13 columns, then write times
EXPECTED_TARGET, EXPECTED_SOURCE, ACTUAL_TARGET, ACTUAL_SOURCE = (
    "expected_target", "expected_source", "actual_target", "actual_source")


def newest(stamps) -> int:
    """A row's write time: the newest of its columns' (null columns have none)."""
    return max((s for s in stamps if s is not None), default=0)


def survey(session: Session, config: Config, run: Run, indexes: list[int], *, fetch_size: int = 1000,
           count_concurrency: int = 8, page_timeout: float = 60.0) -> dict:
    """Counts (and in a full, narrowed run the digests) of these ranges, JSON-ready."""
    tallies = {i: Tally() for i in indexes}
    digesting = run.mode == FULL and run.narrow
    pass_ = _DigestPass(session, config, run, tallies, fetch_size, page_timeout) if digesting else None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="range-counts") as pool:
        counting = pool.submit(range_counts, session, config, [run.ranges[i] for i in indexes],
                               concurrency=count_concurrency)
        if pass_ is not None:
            for i in indexes:
                pass_.settled(i)
                pass_.user_trades(i)
        for i, (settled, target) in zip(indexes, counting.result()):
            tallies[i].settled, tallies[i].user_trades = settled, target
    return {
        "tallies": {str(i): t.to_json() for i, t in tallies.items()},
        "digests": {k: d.to_json() for k, d in pass_.digests.items()} if pass_ else None,
        "rejects": pass_.rejects if pass_ else [],
        "rejected_by_reason": dict(pass_.reasons) if pass_ else {},
    }


class _DigestPass:
    def __init__(self, session, config, run, tallies, fetch_size, page_timeout):
        ks = config.keyspace
        self.session, self.run, self.tallies, self.timeout = session, run, tallies, page_timeout
        self.scan_source = prepared(session, statements.scan_settled(ks), consistency=config.read_cl,
                                    fetch_size=fetch_size)
        self.scan_target = prepared(session, statements.scan_user_trades_timed(ks),
                                    consistency=config.read_cl, fetch_size=fetch_size)
        self.symbol_ids = load_symbol_ids(session, ks)
        self.digests = {k: Digest() for k in (EXPECTED_TARGET, EXPECTED_SOURCE, ACTUAL_TARGET, ACTUAL_SOURCE)}
        self.rejects: list[dict] = []
        self.reasons: Counter = Counter()

    def settled(self, i: int) -> None:
        """Expected rows: every in-scope trade converted, as the backfill converts it."""
        rng, tally, t0, symbol_ids = self.run.ranges[i], self.tallies[i], self.run.started_us, self.symbol_ids
        by_target, by_source = self.digests[EXPECTED_TARGET].add, self.digests[EXPECTED_SOURCE].add
        for page in pages(self.session, self.scan_source, (rng.start, rng.end), timeout=self.timeout):
            for row in page:
                if newest(row[WRITETIMES_AT:]) > t0:
                    tally.late += 1
                    continue
                tally.source_rows += 1
                trade = tuple(row[1:WRITETIMES_AT])
                out = convert(trade, symbol_ids)
                if isinstance(out, Reject):
                    tally.rejected += 1
                    self.reasons[out.code] += 1
                    if len(self.rejects) < self.run.report_cap:
                        self.rejects.append({"range": i, "trade_id": trade[0], "reason": out.reason})
                    continue
                source_bucket = bucket(row[0])
                for urow in out:
                    h = row_hash(urow)
                    by_target(bucket(target_token(urow[0], urow[1])), h)
                    by_source(source_bucket, h)

    def user_trades(self, i: int) -> None:
        """Actual rows, each under its own token and under its trade's settled_trades token."""
        rng, tally, t0 = self.run.ranges[i], self.tallies[i], self.run.started_us
        by_target, by_source = self.digests[ACTUAL_TARGET].add, self.digests[ACTUAL_SOURCE].add
        for page in pages(self.session, self.scan_target, (rng.start, rng.end), timeout=self.timeout):
            for row in page:
                if newest(row[TARGET_WRITETIMES_AT:]) > t0:
                    tally.late += 1
                    continue
                tally.target_rows += 1
                urow = tuple(row[1:TARGET_WRITETIMES_AT])
                h = row_hash(urow)
                by_target(bucket(row[0]), h)
                by_source(bucket(source_token(urow[3])), h)
