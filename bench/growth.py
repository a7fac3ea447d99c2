"""How the backfill and a full verification grow with the table: rows/s and peak memory per size.

    bin/airflow-env python bench/growth.py --sizes 100000 1000000 5000000 [--rounds 3]

Each size has a keyspace of its own (growth_<trades>), generated when it does not hold exactly that
many trades and kept for the next run. A round visits every size in turn (so a slow spell of the
node falls on all sizes, not on one size's rounds): the backfill command as one process from an
empty user_trades, then a full verification (counts and digests of both tables) in one process;
each starts with the local node's memtables flushed and no compaction running, and runs in a
child process whose peak RSS (VmHWM) it reports at its end. Each step also prints the CPU seconds
per million rows of the client (the child, from getrusage) and of the local node's JVM (/proc),
which tell the tool's cost per row from the node's. A size's figures are the medians of its rounds
(one round's rate moved by up to a third from run to run at 100k trades), its peak RSS the highest.
Prints every step, a row per size and the spread across sizes; asserts nothing about time.
`--steps verification` measures the verification alone, again, on what an earlier round's backfill
wrote (the backfill's rate is not in question when only the verification's is).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import NamedTuple

from backfill_bench import REPO, child_cpu, cpu_ticks, node_cpu, node_disk_reads, steal_since
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
VERIFY = ("import json, re, sys, time; from trade_migration.core.config import Config;"
          " from trade_migration.core.session import connect; from trade_migration.verify import parity;"
          " s = connect(Config.from_env(), request_timeout=120);"
          " run = parity.plan_run(s, Config.from_env(), run_id=f'growth_{time.time_ns()}', mode='full',"
          " report_cap=int(sys.argv[1]));"
          " o = parity.run_all(s, Config.from_env(), run);"
          " print('RESULT', json.dumps({'status': o.status, 'source_rows': o.total.source_rows,"
          " 'target_rows': o.total.target_rows}), " + PEAK + "); s.cluster.shutdown()")


BACKFILL_STEP, VERIFY_STEP = "backfill", "verification"


class Step(NamedTuple):
    result: dict
    took: float             # wall seconds, the child's start-up included
    peak_mb: float
    cpu: float              # the child's user + system seconds
    node_cpu: float | None  # the local node's, None when it is not ours
    steal: float            # the share of the CPUs the hypervisor took meanwhile
    disk_mb: float | None   # what the local node read from the disk meanwhile, None when it is not ours


def child(code: str, keyspace: str, *args: str) -> Step:
    """`code` run in a child process on `keyspace`, measured."""
    cpu, node, disk, ticks, began = child_cpu(), node_cpu(), node_disk_reads(), cpu_ticks(), time.monotonic()
    out = subprocess.run([sys.executable, "-c", code, *args], env={**os.environ, "TM_KEYSPACE": keyspace},
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    took, cpu, after, read = time.monotonic() - began, child_cpu() - cpu, node_cpu(), node_disk_reads()
    payload, rss_kb = next(ln for ln in out.splitlines() if ln.startswith("RESULT ")).split(" ", 1)[1].rsplit(" ", 1)
    return Step(json.loads(payload), took, int(rss_kb) / 1024, cpu,
                None if node is None or after is None else after - node, steal_since(ticks),
                None if disk is None or read is None else (read - disk) / 1e6)


def ensure(session, config: Config, n: int, *, backfill: bool = True) -> None:
    """`n` trades in the size's keyspace; user_trades emptied for the backfill, or, when the step
    runs no backfill, checked to hold what an earlier one wrote."""
    schema.apply(session, config)
    ranges = tokens.split_ring(tokens.ring_tokens(session), 64)
    tallies = counts.range_counts(session, config, ranges)
    have, target = sum(s for s, _ in tallies), sum(t for _, t in tallies)
    if not backfill:
        if have != n or not target:
            sys.exit(f"{config.keyspace}: {have:,} trades ({n:,} wanted), {target:,} user_trades rows; run a round"
                     " with the backfill step first")
        return
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
    """Flush the local node's memtables and wait until it runs no compaction, so every step starts
    from the same state (what one step wrote is not the next one's cost; a 100k backfill otherwise
    fits in memtables the 1M and 5M ones flush); the seconds it took."""
    began = time.monotonic()
    if node_cpu() is not None:   # the node is ours (scripts/cassandra): its nodetool
        subprocess.run([str(REPO / "scripts" / "cassandra" / "cassandra.sh"), "nodetool", "1", "flush"], check=True)
    while list(session.execute(sstable_tasks())) and time.monotonic() - began < limit_s:
        time.sleep(2)
    return time.monotonic() - began


class Figures(NamedTuple):
    """One step at one size: rows/s, peak MB, client and node CPU seconds per million rows."""
    rate: float
    peak_mb: float
    cpu: float
    node_cpu: float | None


def figures(step: Step, rows: int) -> Figures:
    return Figures(rows / step.took, step.peak_mb, step.cpu / rows * 1e6,
                   None if step.node_cpu is None else step.node_cpu / rows * 1e6)


def disk_text(step: Step) -> str:
    return "" if step.disk_mb is None else f"; the node read {step.disk_mb:,.0f} MB from the disk"


def cpu_text(f: Figures) -> str:
    node = "n/a" if f.node_cpu is None else f"{f.node_cpu:.1f}"
    return f"CPU s per million rows: client {f.cpu:.1f}, node {node}"


def one_step(session, config: Config, n: int, steps: list[str], report_cap: int
             ) -> tuple[Figures | None, Figures | None]:
    """(the backfill's figures, the verification's) at one size, each None when not run or failed."""
    ensure(session, config, n, backfill=BACKFILL_STEP in steps)
    waited, copy = settle(session), None
    if BACKFILL_STEP in steps:
        copied = child(BACKFILL, config.keyspace, "--backfill-id", "growth")
        rows = copied.result["rows_written"]
        copy = figures(copied, rows)
        print(f"{n:>10,} trades: backfill {rows:,} rows in {copied.took:,.1f} s = {copy.rate:,.0f} output rows/s,"
              f" peak RSS {copy.peak_mb:,.0f} MB; {cpu_text(copy)}; hypervisor steal {copied.steal:.0%}"
              f"{disk_text(copied)}", flush=True)
        waited += settle(session)
    if VERIFY_STEP not in steps:
        return copy, None
    try:
        checked = child(VERIFY, config.keyspace, str(report_cap))
    except subprocess.CalledProcessError:   # a failure is a finding: its traceback is above
        print(f"{n:>10,} trades: the full verification failed", flush=True)
        return copy, None
    both = checked.result["source_rows"] + checked.result["target_rows"]
    check = figures(checked, both)
    print(f"{n:>10,} trades: full verification {both:,} rows of both tables in {checked.took:,.1f} s ="
          f" {check.rate:,.0f} rows/s ({checked.result['status']}), peak RSS {check.peak_mb:,.0f} MB;"
          f" {cpu_text(check)}; hypervisor steal {checked.steal:.0%}{disk_text(checked)}"
          f" ({waited:,.0f} s of flushes and compactions before {'the two' if copy else 'it'})", flush=True)
    return copy, check


def summary(steps: list[Figures]) -> Figures | None:
    """Medians of a size's rounds, the highest peak RSS."""
    if not steps:
        return None
    nodes = [s.node_cpu for s in steps if s.node_cpu is not None]
    return Figures(statistics.median(s.rate for s in steps), max(s.peak_mb for s in steps),
                   statistics.median(s.cpu for s in steps), statistics.median(nodes) if nodes else None)


def cells(f: Figures | None, ran: bool) -> str:
    if f is None:
        return ("failed" if ran else "not run") + " | — | —"
    node = "n/a" if f.node_cpu is None else f"{f.node_cpu:.1f}"
    return f"{f.rate:,.0f} | {f.peak_mb:,.0f} MB | {f.cpu:.1f} / {node}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 5_000_000])
    p.add_argument("--rounds", type=int, default=3, help="rounds over every size (a size's median rate)")
    p.add_argument("--steps", nargs="+", choices=(BACKFILL_STEP, VERIFY_STEP), default=[BACKFILL_STEP, VERIFY_STEP],
                   help="what each round runs; the verification alone checks what an earlier backfill wrote")
    p.add_argument("--report-cap", type=int, default=10_000,
                   help="rejects (and differences) the verification lists: the report_cap Param, 10,000 by default")
    args = p.parse_args()
    if args.report_cap < 1:   # as the DAG's Param bounds it
        p.error("--report-cap must be at least 1")
    session = connect(Config(), request_timeout=300)
    steps: dict[int, list[tuple[Figures | None, Figures | None]]] = {n: [] for n in args.sizes}
    for r in range(args.rounds):
        print(f"round {r + 1} of {args.rounds}", flush=True)
        for n in args.sizes:
            steps[n].append(one_step(session, Config(keyspace=f"growth_{n}"), n, args.steps, args.report_cap))
    session.cluster.shutdown()
    rows = [(n, summary([c for c, _ in steps[n] if c is not None]), summary([v for _, v in steps[n] if v is not None]))
            for n in args.sizes]
    print("\n| trades | backfill output rows/s | backfill peak RSS | backfill CPU s/M rows, client / node"
          " | full verification rows/s | verification peak RSS | verification CPU s/M rows, client / node |")
    print("|---|---|---|---|---|---|---|")
    for n, copy, check in rows:
        print(f"| {n:,} | {cells(copy, BACKFILL_STEP in args.steps)} | {cells(check, VERIFY_STEP in args.steps)} |")
    for name, step, field in (("backfill rows/s", 1, "rate"), ("verification rows/s", 2, "rate"),
                              ("backfill RSS", 1, "peak_mb"), ("verification RSS", 2, "peak_mb"),
                              ("backfill client CPU per row", 1, "cpu"), ("verification client CPU per row", 2, "cpu")):
        values = [getattr(r[step], field) for r in rows if r[step] is not None]
        if values:
            print(f"{name}: smallest / largest across sizes {min(values) / max(values):.2f}"
                  f" (within 10%: {min(values) / max(values) >= 0.9})")


if __name__ == "__main__":
    main()
