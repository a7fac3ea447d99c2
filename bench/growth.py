"""How the backfill and a full verification grow with the table: rows/s and peak memory per size.

    bin/airflow-env python bench/growth.py --sizes 100000 1000000 5000000 [--rounds 3]

Each size has a keyspace of its own (growth_<trades>), generated when it does not hold exactly that
many trades and kept for the next run. At each size, --rounds times: the backfill command as one
process from an empty user_trades, then a full verification (counts and digests of both tables) in
one process; each starts once the node runs no compaction and runs in a child process whose peak
RSS (VmHWM) it reports at its end. A size's rate is the median of its rounds (one round's rate
moved by up to a third from run to run at 100k trades), its peak RSS the highest. Prints every
round, a row per size and the spread of the rates across sizes; asserts nothing about time.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from testkit import generator
from testkit.statements import sstable_tasks

from trade_migration.core import tokens
from trade_migration.core.config import Config
from trade_migration.core.session import connect
from trade_migration.create_table import schema
from trade_migration.state import phases
from trade_migration.verify import counts

# Run in a child: prints RESULT, a JSON result, and the child's peak RSS in kB (VmHWM).
PEAK = "re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1]"
BACKFILL = ("import json, re, sys; from trade_migration import backfill_cli; r = backfill_cli.main(sys.argv[1:]);"
            f" print('RESULT', json.dumps(r), {PEAK})")
VERIFY = ("import json, re, time; from trade_migration.core.config import Config;"
          " from trade_migration.core.session import connect; from trade_migration.verify import parity;"
          " s = connect(Config.from_env(), request_timeout=120);"
          " run = parity.plan_run(s, Config.from_env(), run_id=f'growth_{time.time_ns()}', mode='full');"
          " o = parity.run_all(s, Config.from_env(), run);"
          " print('RESULT', json.dumps({'status': o.status, 'source_rows': o.total.source_rows,"
          " 'target_rows': o.total.target_rows}), " + PEAK + "); s.cluster.shutdown()")


def child(code: str, keyspace: str, *args: str) -> tuple[dict, float, float]:
    """(its result, wall seconds, peak RSS MB) of `code` run in a child process on `keyspace`."""
    began = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code, *args], env={**os.environ, "TM_KEYSPACE": keyspace},
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    took = time.monotonic() - began
    payload, rss_kb = next(ln for ln in out.splitlines() if ln.startswith("RESULT ")).split(" ", 1)[1].rsplit(" ", 1)
    return json.loads(payload), took, int(rss_kb) / 1024


def ensure(session, config: Config, n: int) -> None:
    schema.apply(session, config)
    ranges = tokens.split_ring(tokens.ring_tokens(session), 64)
    have = sum(s for s, _ in counts.range_counts(session, config, ranges))
    if have != n:
        print(f"{config.keyspace}: {have:,} trades, {n:,} wanted: generating ...", flush=True)
        session.execute(f"TRUNCATE {config.keyspace}.settled_trades", timeout=300)
        generator.write_symbols(session, config.keyspace)
        began = time.monotonic()
        generator.write_trades(session, config.keyspace, n, seed=7)
        print(f"  {n / (time.monotonic() - began):,.0f} trades/s", flush=True)
    for table in ("user_trades", "backfill_ranges", "rejected_trades", "parity_runs"):
        session.execute(f"TRUNCATE {config.keyspace}.{table}", timeout=300)
    state = phases.State(session, config)   # the backfill command's order guard wants these done
    for name in (phases.CREATE_TABLE, phases.DUAL_WRITE):
        state.mark(name, phases.COMPLETED, run_id="growth", actor="bench", reason="benchmark of growth")


def settle(session, limit_s: float = 900) -> float:
    """Wait until the node runs no compaction (its writes of one step are not the next one's cost);
    the seconds waited."""
    began = time.monotonic()
    while list(session.execute(sstable_tasks())) and time.monotonic() - began < limit_s:
        time.sleep(2)
    return time.monotonic() - began


def one_round(session, config: Config, n: int) -> tuple:
    """(backfill rows/s, its peak MB, verification rows/s or None when it failed, its peak MB)."""
    ensure(session, config, n)
    waited = settle(session)
    copied, copy_s, copy_mb = child(BACKFILL, config.keyspace, "--backfill-id", "growth")
    copy_rate = copied["rows_written"] / copy_s
    print(f"{n:>10,} trades: backfill {copied['rows_written']:,} rows in {copy_s:,.1f} s ="
          f" {copy_rate:,.0f} output rows/s, peak RSS {copy_mb:,.0f} MB", flush=True)
    waited += settle(session)
    try:
        checked, check_s, check_mb = child(VERIFY, config.keyspace)
    except subprocess.CalledProcessError:   # a failure is a finding: its traceback is above
        print(f"{n:>10,} trades: the full verification failed", flush=True)
        return copy_rate, copy_mb, None, None
    both = checked["source_rows"] + checked["target_rows"]
    print(f"{n:>10,} trades: full verification {both:,} rows of both tables in {check_s:,.1f} s ="
          f" {both / check_s:,.0f} rows/s ({checked['status']}), peak RSS {check_mb:,.0f} MB ({waited:,.0f} s"
          " waited for the node's compactions first)", flush=True)
    return copy_rate, copy_mb, both / check_s, check_mb


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 5_000_000])
    p.add_argument("--rounds", type=int, default=3, help="backfill + verification rounds per size (median rate)")
    args = p.parse_args()
    session = connect(Config(), request_timeout=300)
    rows = []
    for n in args.sizes:
        config = Config(keyspace=f"growth_{n}")
        rounds = [one_round(session, config, n) for _ in range(args.rounds)]
        checks = [r for r in rounds if r[2] is not None]
        rows.append((n, statistics.median(r[0] for r in rounds), max(r[1] for r in rounds),
                     statistics.median(r[2] for r in checks) if checks else None,
                     max(r[3] for r in checks) if checks else None))
    session.cluster.shutdown()
    print("\n| trades | backfill rows/s | backfill peak RSS | full verification rows/s | verification peak RSS |")
    print("|---|---|---|---|---|")
    for n, copy_rate, copy_mb, check_rate, check_mb in rows:
        check = "failed | —" if check_rate is None else f"{check_rate:,.0f} | {check_mb:,.0f} MB"
        print(f"| {n:,} | {copy_rate:,.0f} | {copy_mb:,.0f} MB | {check} |")
    for name, col in (("backfill rows/s", 1), ("verification rows/s", 3), ("backfill RSS", 2),
                      ("verification RSS", 4)):
        values = [r[col] for r in rows if r[col] is not None]
        if values:
            print(f"{name}: smallest / largest across sizes {min(values) / max(values):.2f}"
                  f" (within 10%: {min(values) / max(values) >= 0.9})")

if __name__ == "__main__":
    main()
