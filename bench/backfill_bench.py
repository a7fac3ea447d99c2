"""Backfill throughput against baselines measured in the same run, and a task's peak memory.

    bin/airflow-env python bench/backfill_bench.py --trades 1000000

Prints output rows/s and client CPU seconds per million output rows of: the backfill (scan +
convert + write + checkpoint); (c) cqlsh COPY FROM (PyPI cqlsh, its own venv) of the same rows
from CSV, run right after it; (a) the pure-write ceiling of the same driver (prepared inserts of
ready rows, same in-flight bound); (a') the backfill's own write path on ready rows; (b) a naive
one-row-at-a-time loop; then ratios, and the peak RSS of a backfill process over ~10% and 100% of
the trades. `--also-from OTHER/include` runs another checkout's backfill in the same run.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testkit import generator

from trade_migration.backfill.copier import submit_batched
from trade_migration.core import tokens
from trade_migration.core.config import Config
from trade_migration.core.convert import Reject, convert
from trade_migration.core.model import USER_TRADE_COLUMNS
from trade_migration.core.prepared import prepared
from trade_migration.core.session import connect
from trade_migration.core.settings import FETCH_SIZE, IN_FLIGHT
from trade_migration.core.symbols import load_symbol_ids
from trade_migration.core.writes import BoundedWriter
from trade_migration.create_table import schema
from trade_migration.state import phases
from trade_migration.statements.settled_trades import count_settled_range, decode_scanned_trade, scan_settled
from trade_migration.statements.user_trades import insert_user_trade

REPO = Path(__file__).resolve().parents[1]
CQLSH_VENV = REPO / ".local" / "cqlsh-venv"


def ensure_data(session, config, n):
    count = prepared(session, count_settled_range(config.keyspace))
    have = sum(session.execute(count, r).one()[0] for r in tokens.split_ring([tokens.MIN_TOKEN], 32))
    if have != n:
        print(f"generating {n:,} trades into {config.keyspace} (have {have:,}) ...", flush=True)
        session.execute(f"TRUNCATE {config.keyspace}.settled_trades")
        generator.write_symbols(session, config.keyspace)
        t = time.monotonic()
        generator.write_trades(session, config.keyspace, n, seed=1)
        print(f"  generated at {n / (time.monotonic() - t):,.0f} trades/s", flush=True)


SPLITS = 16


def child_cpu() -> float:
    """User + system CPU seconds of every child process waited for so far (and of their own children:
    cqlsh's COPY FROM workers)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def own_cpu() -> float:
    """User + system CPU seconds of this process, all threads (the driver's event loop included)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_backfill(config, backfill_id, batches, src=None):
    """One backfill process per batch of ranges, run together as mapped Airflow tasks are; `src`, another
    checkout's include/ folder, runs that code instead (a before/after in the same run).

    Returns (summed result, wall seconds, peak RSS MB of the largest process, CPU seconds of all)."""
    code = ("import json, resource, sys; from trade_migration import backfill_cli;"
            " r = backfill_cli.main(sys.argv[1:]);"
            " print('RESULT', json.dumps(r), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    env = {**os.environ, "TM_KEYSPACE": config.keyspace}
    if src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(Path(src).resolve()), env.get("PYTHONPATH"))))
    cpu, t = child_cpu(), time.monotonic()
    procs = [subprocess.Popen([sys.executable, "-c", code, "--backfill-id", backfill_id, "--splits", str(SPLITS),
                               "--ranges", *[r.label for r in batch]], env=env, stdout=subprocess.PIPE, text=True)
             for batch in batches]
    outs = [p.communicate()[0] for p in procs]
    took, cpu = time.monotonic() - t, child_cpu() - cpu
    if any(p.returncode for p in procs):
        raise RuntimeError("a backfill process failed")
    total, peak = {}, 0.0
    for out in outs:
        line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
        payload, rss_kb = line.split(" ", 1)[1].rsplit(" ", 1)
        for k, v in json.loads(payload).items():
            total[k] = total.get(k, 0) + v
        peak = max(peak, int(rss_kb) / 1024)
    return total, took, peak, cpu


def reset_target(session, ks):
    for t in ("user_trades", "backfill_ranges", "rejected_trades"):
        session.execute(f"TRUNCATE {ks}.{t}", timeout=120)


def ready_rows(session, ks, limit):
    """The backfill's output rows (with their write times) for the first trades in scan order, converted
    up front, so the baselines write exactly what the backfill writes, in the same order."""
    symbol_ids = load_symbol_ids(session, ks)
    scan = prepared(session, scan_settled(ks), fetch_size=FETCH_SIZE)
    out = []
    for row in session.execute(scan, (tokens.MIN_TOKEN, tokens.MAX_TOKEN)):
        _, trade, written, _ = decode_scanned_trade(row)
        converted = convert(trade, symbol_ids)
        if not isinstance(converted, Reject):
            out += [(urow, written) for urow in converted]
        if len(out) >= limit:
            return out
    return out


def pure_writes(session, ks, rows):
    stmt = prepared(session, insert_user_trade(ks))
    params = [(*urow, written) for urow, written in rows]
    writer, group = BoundedWriter(session, IN_FLIGHT), object()
    writer.open_group(group)
    t = time.monotonic()
    cpu = own_cpu()
    for p in params:
        writer.submit(stmt, p, group)
    writer.close_group(group)
    writer.drain()
    return len(rows) / (time.monotonic() - t), own_cpu() - cpu


def grouped_writes(session, ks, rows, page=2000):
    """The ceiling of the backfill's own write path: ready rows, a page's rows grouped by partition, then
    sent as unlogged batches within one replica set."""
    stmt = prepared(session, insert_user_trade(ks))
    writer, group = BoundedWriter(session, IN_FLIGHT), object()
    writer.open_group(group)
    t, cpu = time.monotonic(), own_cpu()
    for i in range(0, len(rows), page):
        by_partition = {}
        for urow, written in rows[i:i + page]:
            by_partition.setdefault((urow.user_id, urow.symbol_id), []).append((*urow, written))
        submit_batched(writer, stmt, by_partition, group, metadata=session.cluster.metadata,
                       consistency=stmt.consistency_level)
    writer.close_group(group)
    writer.drain()
    return len(rows) / (time.monotonic() - t), own_cpu() - cpu


def naive_writes(session, ks, rows):
    stmt = prepared(session, insert_user_trade(ks))
    params = [(*urow, written) for urow, written in rows]
    t = time.monotonic()
    for p in params:
        session.execute(stmt, p)
    return len(rows) / (time.monotonic() - t)


def copy_from(ks, rows):
    if not (CQLSH_VENV / "bin" / "cqlsh").exists():
        subprocess.run([sys.executable, "-m", "venv", str(CQLSH_VENV)], check=True)
        subprocess.run([str(CQLSH_VENV / "bin" / "pip"), "install", "-q", "cqlsh==6.2.2"], check=True)
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, newline="") as f:
        w = csv.writer(f)
        for urow, _ in rows:
            w.writerow(["" if v is None else (v.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "+0000"
                                              if hasattr(v, "strftime") else v) for v in urow])
        path = f.name
    cols = ", ".join(USER_TRADE_COLUMNS)
    cmd = f"COPY {ks}.user_trades ({cols}) FROM '{path}' WITH HEADER=false AND CHUNKSIZE=5000"
    t, cpu = time.monotonic(), child_cpu()
    out = subprocess.run([str(CQLSH_VENV / "bin" / "cqlsh"), "127.0.0.1", "-e", cmd],
                         capture_output=True, text=True)
    took, cpu = time.monotonic() - t, child_cpu() - cpu
    os.unlink(path)
    if out.returncode != 0 or "Failed to import" in out.stdout + out.stderr:
        raise RuntimeError(f"COPY FROM failed: {out.stdout[-2000:]} {out.stderr[-2000:]}")
    return len(rows) / took, cpu


def per_million(cpu: float, rows: int) -> float:
    """Client CPU seconds per million output rows."""
    return cpu / max(rows, 1) * 1e6


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--trades", type=int, default=1_000_000)
    p.add_argument("--keyspace", default="bench")
    p.add_argument("--baseline-rows", type=int, default=200_000, help="rows for the write baselines")
    p.add_argument("--naive-rows", type=int, default=20_000)
    p.add_argument("--processes", type=int, default=2, help="also run the backfill as N mapped tasks")
    p.add_argument("--also-from", metavar="DIR", help="also run the one-process backfill from another checkout's"
                   " include/ folder (a before/after in the same run)")
    args = p.parse_args()
    config = Config(keyspace=args.keyspace)
    session = connect(config)
    schema.apply(session, config)
    ensure_data(session, config, args.trades)
    state = phases.State(session, config)   # the backfill command's order guard wants these done
    for name in (phases.CREATE_TABLE, phases.DUAL_WRITE):
        state.mark(name, phases.COMPLETED, run_id="bench", actor="bench", reason="benchmark of the backfill alone")

    ranges = tokens.split_ring(tokens.ring_tokens(session), SPLITS)
    reset_target(session, config.keyspace)
    part, _, mem_part, _ = run_backfill(config, "bench_part", [ranges[:max(1, SPLITS // 10)]])
    reset_target(session, config.keyspace)
    full, took, mem_full, cpu_full = run_backfill(config, "bench_full", [ranges])
    backfill_rate, backfill_cpu = full["rows_written"] / took, per_million(cpu_full, full["rows_written"])
    print(f"backfill, 1 process: {full['rows_read']:,} trades -> {full['rows_written']:,} rows in {took:,.1f}s"
          f" = {backfill_rate:,.0f} output rows/s ({full['rows_read'] / took:,.0f} trades/s, incl. start-up),"
          f" client CPU {backfill_cpu:,.1f} s per million rows, peak RSS {mem_full:,.0f} MB")
    rows = ready_rows(session, config.keyspace, args.baseline_rows)
    reset_target(session, config.keyspace)   # right after the backfill: adjacent runs see the same load
    copy, copy_cpu = copy_from(config.keyspace, rows)
    copy_cpu = per_million(copy_cpu, len(rows))
    print(f"(c) cqlsh COPY FROM, {len(rows):,} rows from CSV: {copy:,.0f} rows/s,"
          f" client CPU {copy_cpu:,.1f} s per million rows (its parent and worker processes)")
    if args.also_from:
        reset_target(session, config.keyspace)
        old, old_took, mem_old, cpu_old = run_backfill(config, "bench_also", [ranges], src=args.also_from)
        old_rate = old["rows_written"] / old_took
        print(f"backfill from {args.also_from}, 1 process: {old['rows_written']:,} rows in {old_took:,.1f}s"
              f" = {old_rate:,.0f} output rows/s, client CPU {per_million(cpu_old, old['rows_written']):,.1f} s"
              f" per million rows, peak RSS {mem_old:,.0f} MB; this checkout / that one:"
              f" {backfill_rate / old_rate:.2f}x rows/s; that one/COPY FROM {old_rate / copy:.2f}x")
    if args.processes > 1:
        reset_target(session, config.keyspace)
        par, par_took, _, _ = run_backfill(config, "bench_par", tokens.batches(ranges, args.processes, seed="bench"))
        par_rate = par["rows_written"] / par_took
        print(f"backfill, {args.processes} processes (mapped tasks): {par['rows_written']:,} rows in"
              f" {par_took:,.1f}s = {par_rate:,.0f} output rows/s")

    reset_target(session, config.keyspace)
    ceiling, ceiling_cpu = pure_writes(session, config.keyspace, rows)
    reset_target(session, config.keyspace)
    grouped, grouped_cpu = grouped_writes(session, config.keyspace, rows)
    reset_target(session, config.keyspace)
    naive = naive_writes(session, config.keyspace, rows[:args.naive_rows])
    print(f"(a) pure-write ceiling, {len(rows):,} ready rows, {IN_FLIGHT} in flight: {ceiling:,.0f} rows/s,"
          f" client CPU {per_million(ceiling_cpu, len(rows)):,.1f} s per million rows")
    print(f"(a') write-path ceiling: the same rows batched as the backfill does: {grouped:,.0f} rows/s,"
          f" client CPU {per_million(grouped_cpu, len(rows)):,.1f} s per million rows")
    print(f"(b) naive one-row-at-a-time loop, {args.naive_rows:,} rows: {naive:,.0f} rows/s")
    print(f"ratios: backfill/ceiling {backfill_rate / ceiling:.2f}x,"
          f" backfill/write-path ceiling {backfill_rate / grouped:.2f}x,"
          f" backfill/naive {backfill_rate / naive:.1f}x,"
          f" backfill/COPY FROM {backfill_rate / copy:.2f}x;"
          f" client CPU per row backfill/COPY FROM {backfill_cpu / copy_cpu:.2f}x")
    if args.processes > 1:
        print(f"ratios with {args.processes} processes (COPY FROM runs a parent and worker processes too):"
              f" backfill/COPY FROM {par_rate / copy:.2f}x, backfill/ceiling {par_rate / ceiling:.2f}x")
    print(f"peak RSS of a backfill process: {mem_part:,.0f} MB at {part['rows_read']:,} trades,"
          f" {mem_full:,.0f} MB at {full['rows_read']:,} trades (+{(mem_full / mem_part - 1) * 100:.0f}%)")
    session.cluster.shutdown()


if __name__ == "__main__":
    main()
