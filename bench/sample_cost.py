"""What a sampled verification's key reads cost the node against a scan: why a 5% sample costs
about a fifth of a full run rather than a twentieth.

    bin/airflow-env python bench/sample_cost.py --keyspace bench_verify

On a keyspace that bench/verify_speed.py has filled and backfilled. Node CPU is the local node's
JVM (scripts/cassandra; "n/a" for another), client CPU this process's. Prints:
  1. a 5% sample's parts timed apart: the counts, its forward check alone (each trade's two rows
     read by key), its reverse check alone (each user_trades row's trade read by key);
  2. the user_trades keys of --ranges ranges' trades read three ways: several users' keys of one
     symbol per request (the sample's reads), one request per partition, one request per key;
  3. a scan of settled_trades as the backfill and the verification read it.
Asserts nothing about time.
"""
from __future__ import annotations

import argparse
import logging
import resource
import time
from collections import defaultdict

from backfill_bench import node_cpu, per_million

from trade_migration.core import tokens
from trade_migration.core.config import Config
from trade_migration.core.convert import Reject, convert
from trade_migration.core.prepared import prepared
from trade_migration.core.reads import chunked, pages, rows_of
from trade_migration.core.session import connect
from trade_migration.core.symbols import load_symbol_ids
from trade_migration.statements.settled_trades import decode_scanned_trade, scan_settled
from trade_migration.statements.user_trades import select_user_trade_timed, select_user_trades_by_keys
from trade_migration.verify import parity
from trade_migration.verify.parity_run import Scope
from trade_migration.verify.row_parity import IN_KEYS, reads_of


def own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measured(name: str, units, what: str, fn):
    """Run fn; print its wall time, rate and CPU per unit (`units`: a number, or a function of fn's
    result) of the client and of the node; fn's result."""
    node, cpu, began = node_cpu(), own_cpu(), time.monotonic()
    out = fn()
    units = units(out) if callable(units) else units
    took, cpu, node = time.monotonic() - began, own_cpu() - cpu, node_cpu() - node if node is not None else None
    print(f"{name}: {took:,.1f} s, {units:,} {what}, {units / took:,.0f}/s; CPU per one: client"
          f" {per_million(cpu, units)} µs, node {per_million(node, units)} µs", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--keyspace", default="bench_verify")
    p.add_argument("--share", type=float, default=0.05)
    p.add_argument("--ranges", type=int, default=3, help="of 100 ranges, whose trades' keys part 2 reads")
    args = p.parse_args()
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    config = Config(keyspace=args.keyspace)
    session = connect(config, request_timeout=120)
    ks = config.keyspace

    # 1. the sample's parts
    run = parity.plan_run(session, config, run_id=f"sample_cost_{time.time_ns()}", mode="sampled",
                          sample_share=args.share, seed=1, recent_hours=0)
    scope = parity.narrow(run, [])
    measured(f"sample: counts of its {len(run.chosen)} ranges", len(run.chosen), "ranges",
             lambda: parity.survey(session, config, run, list(run.chosen)))
    for part, sc in (("forward alone", Scope(forward=scope.forward)), ("reverse alone", Scope(reverse=scope.reverse))):
        measured(f"sample: {part}", lambda out: sum(v["source_rows"] + v["target_rows"]
                                                    for v in out["tallies"].values()),
                 "rows checked", lambda sc=sc: parity.inspect(session, config, run, sc, list(sc.indexes)))

    # 2. the same keys read three ways; 3. the scan they came from
    symbol_ids = load_symbol_ids(session, ks)
    scan = prepared(session, scan_settled(ks), fetch_size=1000)
    keys, trades = [], 0

    def read_trades():
        nonlocal trades
        for rng in tokens.split_ring([tokens.MIN_TOKEN], 100)[:args.ranges]:
            for page in pages(session, scan, (rng.start, rng.end)):
                for row in page:
                    trades += 1
                    out = convert(decode_scanned_trade(row).trade, symbol_ids)
                    if not isinstance(out, Reject):
                        keys.extend(u.key for u in out)
    node, began = node_cpu(), time.monotonic()
    read_trades()
    print(f"scan of settled_trades (with conversion): {trades:,} trades in {time.monotonic() - began:,.1f} s;"
          f" node CPU per trade {per_million(node_cpu() - node if node is not None else None, trades)} µs",
          flush=True)
    by_keys = prepared(session, select_user_trades_by_keys(ks))
    by_partition: dict[tuple, list] = defaultdict(list)
    for user_id, symbol_id, *clustering in keys:
        by_partition[(user_id, symbol_id)].append(tuple(clustering))
    per_partition = [([u], s, c) for (u, s), cs in by_partition.items() for c in chunked(cs, IN_KEYS)]
    one_key = prepared(session, select_user_trade_timed(ks))
    for name, stmt, params, in_flight in (
            ("several users' keys of one symbol per request (the sample's reads)", by_keys, reads_of(keys), 10),
            (f"one request per partition ({len(per_partition):,} requests)", by_keys, per_partition, 32),
            ("one request per key", one_key, keys, 128)):
        measured(f"{len(keys):,} keys, {name}", len(keys), "keys",
                 lambda stmt=stmt, params=params, n=in_flight: sum(1 for _ in rows_of(session, stmt, params,
                                                                                       concurrency=n)))
    session.cluster.shutdown()


if __name__ == "__main__":
    main()
