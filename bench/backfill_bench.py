"""Backfill throughput against baselines measured in the same run, and a task's peak memory.

    bin/airflow-env python bench/backfill_bench.py --trades 1000000

In each of --rounds rounds, one after another so they see the same load: the backfill as one
process (scan + convert + write + checkpoint), (c) cqlsh COPY FROM (PyPI cqlsh, its own venv) of
the same rows from CSV, and the backfill as --processes processes (mapped tasks; each one's rate
too). Each prints output rows/s and CPU seconds per million output rows of the client and of the
local node (scripts/cassandra's JVM). Then (a) the pure-write ceiling of the same driver (prepared
inserts of ready rows, same in-flight bound), (a') the backfill's own write path on ready rows,
(b) a naive one-row-at-a-time loop; the ratios round by round and their medians; and the peak RSS
of a backfill process over 10% and 100% of the trades, each copied in SPLITS ranges (so only the
size differs). `--also-from OTHER/include` runs another checkout's backfill in each round.
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
from statistics import median
from typing import NamedTuple

from testkit import generator

from trade_migration.backfill.copier import submit_batched
from trade_migration.core import tokens
from trade_migration.core.binding import Binder
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


class Run(NamedTuple):
    rows: dict        # summed result of every process
    took: float       # wall seconds, start-up included
    peak_mb: float    # peak RSS of the largest process
    cpu: float        # user + system seconds of every process
    node_cpu: float | None
    per_process: list[float]   # each process's output rows/s over its own copy
    steal: float      # the share of the CPUs the hypervisor took meanwhile


def run_backfill(config, backfill_id, batches, src=None, splits: int = SPLITS) -> Run:
    """One backfill process per batch of ranges, run together as mapped Airflow tasks are; `src`, another
    checkout's include/ folder, runs that code instead (a before/after in the same run)."""
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child would report this process's size
    code = ("import json, re, sys, time; from trade_migration import backfill_cli; t = time.monotonic();"
            " r = backfill_cli.main(sys.argv[1:]); r['took'] = time.monotonic() - t;"
            " print('RESULT', json.dumps(r), re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1])")
    env = {**os.environ, "TM_KEYSPACE": config.keyspace}
    if src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(Path(src).resolve()), env.get("PYTHONPATH"))))
    cpu, node, ticks, t = child_cpu(), node_cpu(), cpu_ticks(), time.monotonic()
    procs = [subprocess.Popen([sys.executable, "-c", code, "--backfill-id", backfill_id, "--splits", str(splits),
                               "--ranges", *[r.label for r in batch]], env=env, stdout=subprocess.PIPE, text=True)
             for batch in batches]
    outs = [p.communicate()[0] for p in procs]
    took, cpu, node = time.monotonic() - t, child_cpu() - cpu, node_cpu() - node if node is not None else None
    steal = steal_since(ticks)
    if any(p.returncode for p in procs):
        raise RuntimeError("a backfill process failed")
    total, peak, rates = {}, 0.0, []
    for out in outs:
        line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
        payload, rss_kb = line.split(" ", 1)[1].rsplit(" ", 1)
        result = json.loads(payload)
        rates.append(result["rows_written"] / result.pop("took"))
        for k, v in result.items():
            total[k] = total.get(k, 0) + v
        peak = max(peak, int(rss_kb) / 1024)
    return Run(total, took, peak, cpu, node, rates, steal)


def node_proc(name: str) -> str | None:
    """/proc/PID/`name` of the local node's JVM (scripts/cassandra), None when it is not ours."""
    try:
        pid = int((REPO / ".local" / "cassandra" / "node1" / "pid").read_text())
        return Path(f"/proc/{pid}/{name}").read_text()
    except (OSError, ValueError):
        return None


def node_cpu() -> float | None:
    """User + system CPU seconds of the local node's JVM, None when it is not ours."""
    stat = node_proc("stat")
    if stat is None:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def node_disk_reads() -> int | None:
    """Bytes the local node's JVM has read from the disk (the page cache's misses), None when it is
    not ours: a step whose tables are not all in memory pays for it in its rate."""
    io = node_proc("io")
    return None if io is None else int(next(ln for ln in io.splitlines() if ln.startswith("read_bytes:")).split()[1])


def cpu_ticks() -> tuple[int, int]:
    """(ticks the hypervisor took from this machine's CPUs, all ticks) so far, from /proc/stat."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[7], sum(fields[:8])


def steal_since(before: tuple[int, int]) -> float:
    """The share of the CPUs' time the hypervisor took since `before` (a shared VM's neighbours: it
    moves rates from run to run with nothing else running here)."""
    steal, total = cpu_ticks()
    return (steal - before[0]) / max(1, total - before[1])


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
    binder = Binder(stmt)
    writer, group = BoundedWriter(session, IN_FLIGHT), object()
    writer.open_group(group)
    t, cpu = time.monotonic(), own_cpu()
    for i in range(0, len(rows), page):
        by_partition = {}
        for urow, written in rows[i:i + page]:
            by_partition.setdefault((urow.user_id, urow.symbol_id), []).append((*urow, written))
        submit_batched(writer, binder, by_partition, group, metadata=session.cluster.metadata,
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
    t, cpu, node, ticks = time.monotonic(), child_cpu(), node_cpu(), cpu_ticks()
    out = subprocess.run([str(CQLSH_VENV / "bin" / "cqlsh"), "127.0.0.1", "-e", cmd],
                         capture_output=True, text=True)
    took, cpu, node = time.monotonic() - t, child_cpu() - cpu, node_cpu() - node if node is not None else None
    steal = steal_since(ticks)
    os.unlink(path)
    if out.returncode != 0 or "Failed to import" in out.stdout + out.stderr:
        raise RuntimeError(f"COPY FROM failed: {out.stdout[-2000:]} {out.stderr[-2000:]}")
    return len(rows) / took, cpu, node, steal


def per_million(cpu: float | None, rows: int) -> str:
    """CPU seconds per million output rows, as printed."""
    return "n/a" if cpu is None else f"{cpu / max(rows, 1) * 1e6:,.1f}"


def ratios(a: list[float], b: list[float]) -> str:
    """Round by round a/b, and their median."""
    each = [x / y for x, y in zip(a, b, strict=True)]
    return ", ".join(f"{r:.2f}x" for r in each) + f" -> {median(each):.2f}x"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--trades", type=int, default=1_000_000)
    p.add_argument("--keyspace", default="bench")
    p.add_argument("--baseline-rows", type=int, default=200_000, help="rows for the write baselines")
    p.add_argument("--naive-rows", type=int, default=20_000)
    p.add_argument("--processes", type=int, default=2, help="also run the backfill as N mapped tasks")
    p.add_argument("--rounds", type=int, default=3, help="rounds of backfill / COPY FROM / N processes; ratios are"
                   " medians over the rounds (the load of a shared machine moves between runs)")
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

    ring = tokens.ring_tokens(session)
    ranges = tokens.split_ring(ring, SPLITS)
    reset_target(session, config.keyspace)
    # a tenth of the ring, copied in as many ranges as the whole ring is: only the size differs
    part = run_backfill(config, "bench_part", [tokens.split_ring(ring, 10 * SPLITS)[:SPLITS]], splits=10 * SPLITS)
    rows = ready_rows(session, config.keyspace, args.baseline_rows)
    ones, copies, pars, old_rates, peaks = [], [], [], [], []
    for n in range(1, args.rounds + 1):
        reset_target(session, config.keyspace)
        one = run_backfill(config, f"bench_one_{n}", [ranges])
        w = one.rows["rows_written"]
        ones.append(w / one.took)
        peaks.append(one.peak_mb)
        print(f"round {n}: backfill, 1 process: {one.rows['rows_read']:,} trades -> {w:,} rows in {one.took:,.1f}s ="
              f" {ones[-1]:,.0f} output rows/s (start-up included); CPU s per million rows: client"
              f" {per_million(one.cpu, w)}, node {per_million(one.node_cpu, w)}; peak RSS {one.peak_mb:,.0f} MB;"
              f" hypervisor steal {one.steal:.0%}",
              flush=True)
        reset_target(session, config.keyspace)   # right after the backfill: adjacent runs see the same load
        copy, copy_cpu, copy_node, copy_steal = copy_from(config.keyspace, rows)
        copies.append(copy)
        print(f"round {n}: (c) cqlsh COPY FROM, {len(rows):,} of the same rows from CSV: {copy:,.0f} rows/s;"
              f" CPU s per million rows: client {per_million(copy_cpu, len(rows))} (its parent and worker"
              f" processes), node {per_million(copy_node, len(rows))}; hypervisor steal {copy_steal:.0%}", flush=True)
        if args.processes > 1:
            reset_target(session, config.keyspace)
            par = run_backfill(config, f"bench_par_{n}", tokens.batches(ranges, args.processes, seed="bench"))
            pw = par.rows["rows_written"]
            pars.append(pw / par.took)
            print(f"round {n}: backfill, {args.processes} processes (mapped tasks): {pw:,} rows in {par.took:,.1f}s ="
                  f" {pars[-1]:,.0f} output rows/s; per process "
                  + ", ".join(f"{r:,.0f}" for r in par.per_process)
                  + f" rows/s; CPU s per million rows: client {per_million(par.cpu, pw)},"
                    f" node {per_million(par.node_cpu, pw)}; hypervisor steal {par.steal:.0%}", flush=True)
        if args.also_from:
            reset_target(session, config.keyspace)
            old = run_backfill(config, f"bench_also_{n}", [ranges], src=args.also_from)
            old_rates.append(old.rows["rows_written"] / old.took)
            print(f"round {n}: backfill from {args.also_from}, 1 process: {old_rates[-1]:,.0f} output rows/s,"
                  f" CPU s per million rows: client {per_million(old.cpu, old.rows['rows_written'])}, node"
                  f" {per_million(old.node_cpu, old.rows['rows_written'])}; peak RSS {old.peak_mb:,.0f} MB",
                  flush=True)

    reset_target(session, config.keyspace)
    ceiling, ceiling_cpu = pure_writes(session, config.keyspace, rows)
    reset_target(session, config.keyspace)
    grouped, grouped_cpu = grouped_writes(session, config.keyspace, rows)
    reset_target(session, config.keyspace)
    naive = naive_writes(session, config.keyspace, rows[:args.naive_rows])
    print(f"(a) pure-write ceiling, {len(rows):,} ready rows, {IN_FLIGHT} in flight: {ceiling:,.0f} rows/s,"
          f" client CPU {per_million(ceiling_cpu, len(rows))} s per million rows")
    print(f"(a') write-path ceiling: the same rows batched as the backfill does: {grouped:,.0f} rows/s,"
          f" client CPU {per_million(grouped_cpu, len(rows))} s per million rows")
    print(f"(b) naive one-row-at-a-time loop, {args.naive_rows:,} rows: {naive:,.0f} rows/s")
    one_rate, copy = median(ones), median(copies)
    print(f"medians of {args.rounds} rounds: backfill 1 process {one_rate:,.0f} rows/s, COPY FROM {copy:,.0f} rows/s")
    print(f"ratios (each round's -> their median): backfill/COPY FROM {ratios(ones, copies)};"
          f" backfill/ceiling {one_rate / ceiling:.2f}x, backfill/write-path ceiling {one_rate / grouped:.2f}x,"
          f" backfill/naive {one_rate / naive:.1f}x")
    if pars:
        print(f"ratios with {args.processes} processes: {args.processes} processes / 1 process {ratios(pars, ones)};"
              f" {args.processes} processes / COPY FROM (a parent and a worker process) {ratios(pars, copies)}")
    if old_rates:
        print(f"this checkout / {args.also_from}: {ratios(ones, old_rates)}")
    print(f"peak RSS of a backfill process: {part.peak_mb:,.0f} MB at {part.rows['rows_read']:,} trades,"
          f" {max(peaks):,.0f} MB at {one.rows['rows_read']:,} trades (+{(max(peaks) / part.peak_mb - 1) * 100:.0f}%)")
    session.cluster.shutdown()


if __name__ == "__main__":
    main()
