"""How long the "Trade migration" page takes to render on a ledger of thousands of ranges.

    bin/airflow-env .venv/bin/python bench/status_page.py --ranges 5000

On keyspace bench_status: a ledger of --ranges ranges in known states (synthetic_ledger), then
--renders renders of the page as the plugin does them (status.migration_status, one read of each
state table, plus status_page.render), on one warm session. Prints ms per render (median, best,
worst) and how much of it is the ledger read; asserts nothing about time.
"""
from __future__ import annotations

import argparse
import statistics
import time

from testkit import synthetic_ledger

from trade_migration.core.clock import now
from trade_migration.core.config import Config
from trade_migration.core.session import connect
from trade_migration.create_table import schema
from trade_migration.state.ledger import Ledger
from trade_migration.ui import status, status_page


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranges", type=int, default=5000)
    ap.add_argument("--renders", type=int, default=20)
    ap.add_argument("--keyspace", default="bench_status")
    args = ap.parse_args(argv)

    config = Config(keyspace=args.keyspace)
    session = connect(config)
    schema.apply(session, config)
    session.execute(f"TRUNCATE {config.keyspace}.backfill_ranges")
    began = time.monotonic()
    synthetic_ledger.plant(session, config, "main", args.ranges, at=now())
    print(f"planted {args.ranges:,} ledger ranges in {time.monotonic() - began:.1f}s")

    status_page.render(status.migration_status(session, config))     # warm: prepared statements
    renders, ledger_reads, size = [], [], 0
    for _ in range(args.renders):
        began = time.perf_counter()
        size = len(status_page.render(status.migration_status(session, config)))
        renders.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        Ledger(session, config, "main").load()
        ledger_reads.append((time.perf_counter() - began) * 1000)
    print(f"status page at {args.ranges:,} ranges: {statistics.median(renders):.0f} ms per render (median of"
          f" {args.renders}; best {min(renders):.0f}, worst {max(renders):.0f}); the ledger read alone"
          f" {statistics.median(ledger_reads):.0f} ms; page {size / 1024:.0f} KiB")
    session.cluster.shutdown()


if __name__ == "__main__":
    main()
