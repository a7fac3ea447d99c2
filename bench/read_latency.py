"""Old vs new read path: p50/p99 latency, cold and warm, on the same generated trades.

    bin/airflow-env python bench/read_latency.py --trades 1000000 --users 200

Works in keyspace `bench` (--keyspace to change). It generates trades (and backfills them into
user_trades) only when the keyspace holds fewer trades than asked, so a rerun times the same
data straight away. Both paths answer "a user's trades in one symbol, newest first, one page"
for the same sampled users (a seeded sample of settled trades' buyers and sellers, so active
users weigh more, as in the gateway's traffic). Their pages are compared: if they differ
(user_trades emptied or changed since the backfill), it backfills and times again. Cold is each
user's first query in this run, warm the same query right after; the node's own caches are
whatever generation and earlier runs left. The old path reads all of a user's trades, so at 1M
trades a run takes over an hour; --users 50 for a quicker look.
"""
from __future__ import annotations

import argparse
import json
import time

from cassandra.concurrent import execute_concurrent_with_args
from testkit import generator

from trade_migration.backfill import copier
from trade_migration.core.config import Config
from trade_migration.core.session import connect
from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN, TokenRange, divide
from trade_migration.create_table import schema
from trade_migration.read_path import latency
from trade_migration.read_path.paths import DEFAULT_LIMIT, ReadPaths, sample_pairs
from trade_migration.state.ledger import DONE, Ledger
from trade_migration.statements.settled_trades import count_settled_range
from trade_migration.statements.user_trades import count_user_trades_range

KEYSPACE = "bench"
RING = TokenRange(MIN_TOKEN, MAX_TOKEN)


def count(session, config: Config, cql: str) -> int:
    """COUNT(*) in 64 token slices, so no single request scans the whole table."""
    stmt = session.prepare(cql)
    params = [(r.start, r.end) for r in divide(RING, 64)]
    results = execute_concurrent_with_args(session, stmt, params, concurrency=16)
    return sum(res.one()[0] for ok, res in results)


def copy_all(session, config: Config, backfill_id: str) -> None:
    """Backfill the whole ring into user_trades under a ledger of its own (resumed if it exists)."""
    ledger = Ledger(session, config, backfill_id)
    states = ledger.load()
    if not states:
        ledger.plan(divide(RING, 16))
        states = ledger.load()
    if any(s.status != DONE for s in states):
        print(f"backfilling into user_trades (ledger {backfill_id})", flush=True)
        started = time.monotonic()
        done = copier.run_batch(session, config, backfill_id, [RING], copier.Options(progress_every=15))
        print(f"  backfilled in {time.monotonic() - started:,.0f}s: {done}", flush=True)


def ensure_data(session, config: Config, trades: int, seed: int) -> int:
    """Generate and backfill unless the keyspace already has `trades` trades; returns the count."""
    have = count(session, config, count_settled_range(config.keyspace))
    if have < trades:
        print(f"{config.keyspace}.settled_trades has {have:,} trades; generating {trades:,} (seed {seed})", flush=True)
        started = time.monotonic()
        generator.write_symbols(session, config.keyspace)
        generator.write_trades(session, config.keyspace, trades, seed)
        print(f"  generated in {time.monotonic() - started:,.0f}s", flush=True)
        have = count(session, config, count_settled_range(config.keyspace))
    copy_all(session, config, f"bench_{have}")
    return have


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trades", type=int, default=1_000_000, help="trades in the keyspace (default 1,000,000)")
    parser.add_argument("--users", type=int, default=200, help="users x symbol to time (default 200)")
    parser.add_argument("--page", type=int, default=DEFAULT_LIMIT, help="rows per page (default 100)")
    parser.add_argument("--seed", type=int, default=42, help="generator and sample seed")
    parser.add_argument("--keyspace", default=KEYSPACE, help=f"default {KEYSPACE}")
    parser.add_argument("--json", action="store_true", help="also print the report as JSON")
    args = parser.parse_args(argv)

    config = Config.from_env(keyspace=args.keyspace)
    session = connect(config, request_timeout=120)
    try:
        schema.apply(session, config)
        have = ensure_data(session, config, args.trades, args.seed)
        paths = ReadPaths(session, config)
        pairs = sample_pairs(session, config, args.users, seed=args.seed, symbols=paths.symbol_ids)
        print(f"timing {len(pairs)} users x symbol on both paths, cold then warm"
              f" (the old path takes long on large data)", flush=True)
        for attempt in (1, 2):
            report = latency.benchmark(paths, pairs, limit=args.page)
            if not report["different_answers"] or attempt == 2:
                break
            # user_trades was emptied or changed since the last backfill: the new path's answer was wrong
            print(f"{len(report['different_answers'])} pages differ between the paths: backfilling again", flush=True)
            copy_all(session, config, f"bench_{have}_{int(time.time())}")
        rows = count(session, config, count_user_trades_range(config.keyspace))
    finally:
        session.cluster.shutdown()
    print(f"\n{config.keyspace}: {have:,} settled trades, {rows:,} user_trades rows")
    print(latency.format_benchmark(report))
    if args.json:
        print(json.dumps({"trades": have, "user_trades_rows": rows, **report}, indent=2))


if __name__ == "__main__":
    main()
