"""Verification speed against the backfill's, and parallel range counts against one COUNT(*).

    bin/airflow-env .venv/bin/python bench/verify_speed.py --trades 100000

On keyspace bench_verify (generated only when it does not already hold exactly --trades trades;
generation ran at ~11k trades/s on the local node), in one process each:
  1. the backfill over the whole ring (user_trades emptied first): source rows/s (not with --reuse);
  2. a full verification (counts + digests, row lookups only where digests differ): rows/s;
  3. a sampled verification per --seeds (the trades settled in a seeded window holding --share of
     them, both tables, by digests), then the first seed's sample with the last day (recent_hours,
     the nightly default); their times against the full one's (ratios);
  4. COUNT(*) per token range, many at once, against one SELECT COUNT(*) per table.
Steps 2 and 3 print the local node's CPU seconds as well. Prints figures; asserts nothing about time.
"""
from __future__ import annotations

import argparse
import time

from backfill_bench import node_cpu
from testkit import generator
from testkit.statements import count_all

from trade_migration.backfill import copier, plan
from trade_migration.core import tokens
from trade_migration.core.config import Config
from trade_migration.core.session import connect
from trade_migration.create_table import schema
from trade_migration.state.ledger import Ledger
from trade_migration.verify import counts, parity, report
from trade_migration.verify.parity_run import RECENT_HOURS

RING = [tokens.TokenRange(tokens.MIN_TOKEN, tokens.MAX_TOKEN)]


def timed(fn, *args, **kwargs):
    began = time.monotonic()
    out = fn(*args, **kwargs)
    return out, time.monotonic() - began


def node_timed(fn, *args, **kwargs):
    """(fn's result, wall seconds, the local node's CPU seconds or None)."""
    before = node_cpu()
    out, took = timed(fn, *args, **kwargs)
    after = node_cpu()
    return out, took, None if before is None or after is None else after - before


def cpu_text(seconds: float | None) -> str:
    return "node CPU n/a" if seconds is None else f"node CPU {seconds:.1f} s"


def ensure_trades(session, config: Config, n: int, seed: int, ranges) -> None:
    have = sum(s for s, _ in counts.range_counts(session, config, ranges))
    if have == n:
        print(f"settled_trades: {n:,} trades already present")
        return
    for table in ("settled_trades", "symbols"):
        session.execute(f"TRUNCATE {config.keyspace}.{table}", timeout=300)
    print(f"settled_trades: {have:,} trades present, {n:,} wanted: generating ...", flush=True)
    generator.write_symbols(session, config.keyspace)
    _, took = timed(generator.write_trades, session, config.keyspace, n, seed)
    print(f"  generated {n:,} trades in {took:,.0f} s ({n / took:,.0f} trades/s)")


def backfill(session, config: Config, splits: int) -> tuple[dict, float]:
    """1. the backfill, from an empty user_trades: what it copied, and in how long."""
    for table in ("user_trades", "backfill_ranges", "rejected_trades", "parity_runs"):
        session.execute(f"TRUNCATE {config.keyspace}.{table}", timeout=300)
    plan.ensure_ledger(session, config, Ledger(session, config, "bench"), splits)
    return timed(copier.run_batch, session, config, "bench", RING)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trades", type=int, default=1_000_000)
    parser.add_argument("--keyspace", default="bench_verify")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--splits", type=int, default=None, help="token ranges (default: from the size estimate)")
    parser.add_argument("--share", type=float, default=0.05, help="sample share of the sampled run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1], help="a sampled run per seed")
    parser.add_argument("--reuse", action="store_true",
                        help="keep user_trades as the last run's backfill left it (no step 1: compare the"
                             " verifications again without copying again)")
    args = parser.parse_args(argv)

    config = Config.from_env(keyspace=args.keyspace)
    session = connect(config, request_timeout=120)
    schema.apply(session, config)
    ring = tokens.ring_tokens(session)
    splits = args.splits or tokens.default_splits(args.trades, len(tokens.cluster_ranges(ring)))
    ranges = tokens.split_ring(ring, splits)
    ensure_trades(session, config, args.trades, args.seed, ranges)

    copied, backfill_s = backfill(session, config, splits) if not args.reuse else (None, None)

    # 2. full verification; 3. sampled verification
    full_run = parity.plan_run(session, config, run_id=f"bench_full_{int(time.time())}", mode="full", splits=splits)
    full, full_s, full_cpu = node_timed(parity.run_all, session, config, full_run)

    def sample(seed: int, hours: float):
        """A sampled run, plan included: (its run, outcome, seconds, node CPU seconds)."""
        def plan_and_run():
            run = parity.plan_run(session, config, run_id=f"bench_sampled_{time.time_ns()}", mode="sampled",
                                  sample_share=args.share, seed=seed, recent_hours=hours)
            return run, parity.run_all(session, config, run)
        (run, out), took, cpu = node_timed(plan_and_run)
        return run, out, took, cpu

    samples = [sample(seed, 0) for seed in args.seeds]   # the sample alone
    _, swept, swept_s, swept_cpu = sample(args.seeds[0], RECENT_HOURS)   # the nightly default

    # 4. counts
    per_range, ranges_s = timed(counts.range_counts, session, config, ranges, concurrency=8)
    single = {}
    for table in ("settled_trades", "user_trades"):
        try:
            cql = count_all(config.keyspace, table)
            single[table] = timed(lambda cql=cql: session.execute(cql, timeout=1800).one()[0])
        except Exception as exc:  # noqa: BLE001 - a timeout is a finding worth printing
            single[table] = (f"failed: {type(exc).__name__}", float("nan"))
    settled_total, target_total = sum(s for s, _ in per_range), sum(t for _, t in per_range)

    t = full.total
    print(f"\n{args.trades:,} trades, {splits} token ranges, keyspace {config.keyspace}")
    if copied is not None:
        print(f"backfill               {copied['rows_read']:>10,} source rows in {backfill_s:7.1f} s"
              f" = {copied['rows_read'] / backfill_s:>9,.0f} rows/s ({copied['rows_written']:,} rows written)")
    print(f"verify, full           {t.source_rows:>10,} source rows in {full_s:7.1f} s"
          f" = {t.source_rows / full_s:>9,.0f} rows/s ({(t.source_rows + t.target_rows) / full_s:,.0f}"
          f" rows/s of both tables; {cpu_text(full_cpu)}; {full.status})")
    if copied is not None:
        print(f"  full / backfill      {t.source_rows / full_s / (copied['rows_read'] / backfill_s):10.2f} x")
    for seed, (sampled_run, sampled, sampled_s, sampled_cpu) in zip(args.seeds, samples, strict=True):
        s = sampled.total
        print(f"verify, sampled {args.share:.0%}, seed {seed}: {s.source_rows:,} source rows in {sampled_s:.1f} s"
              f" ({s.source_rows / max(1, t.source_rows):.1%} of the trades, {s.target_rows:,} user_trades rows:"
              f" {report.checked_rows(sampled_run)}; {cpu_text(sampled_cpu)}; {sampled.status});"
              f" ratio to full {sampled_s / full_s:.2f}")
    first_s = samples[0][2]
    print(f"  + every trade settled in the last {RECENT_HOURS:g} h (recent_hours, the nightly default), seed"
          f" {args.seeds[0]}: {swept.total.source_rows:,} source rows in {swept_s:.1f} s ({cpu_text(swept_cpu)};"
          f" {swept.status})")
    print(f"sample {args.share:.0%}: {first_s:.1f} s, full: {full_s:.1f} s, ratio {first_s / full_s:.2f};"
          f" with the last {RECENT_HOURS:g} h: {swept_s:.1f} s, ratio {swept_s / full_s:.2f}")
    print(f"counts, {len(ranges)} ranges x2   {settled_total:>10,} + {target_total:,} rows in {ranges_s:7.2f} s")
    for table, (value, secs) in single.items():
        print(f"COUNT(*) {table:<14} {value!s:>10} rows in {secs:7.2f} s")
    one = sum(secs for _, secs in single.values())
    print(f"  single / per range   {one / ranges_s:10.2f} x (both tables)")
    session.cluster.shutdown()


if __name__ == "__main__":
    main()
