"""How long planning a backfill's ledger takes at thousands of ranges (plan.ensure_ledger).

    bin/airflow-env .venv/bin/python bench/ledger_plan.py --ranges 8192

On keyspace bench_ledger_plan (its backfill_ranges emptied first): ensure_ledger plans --ranges
ranges into a new ledger, then is called again on the planned ledger (what every later run does).
Prints both times and the ranges in the ledger; asserts nothing about time. bench/cluster_backfill.py
measures the same on its three-node ring.
"""
from __future__ import annotations

import argparse
import time

from trade_migration.backfill import plan
from trade_migration.core.config import Config
from trade_migration.core.session import connect
from trade_migration.create_table import schema
from trade_migration.state.ledger import Ledger


def measure(session, config: Config, ranges: int) -> str:
    """Plans `ranges` ranges into an empty ledger on config's keyspace, then reuses it: the figures."""
    schema.apply(session, config)
    session.execute(f"TRUNCATE {config.keyspace}.backfill_ranges", timeout=120)
    ledger = Ledger(session, config, "bench")
    began = time.monotonic()
    states = plan.ensure_ledger(session, config, ledger, ranges)
    planned = time.monotonic() - began
    began = time.monotonic()
    plan.ensure_ledger(session, config, ledger, ranges)
    reused = time.monotonic() - began
    return (f"ledger plan of {ranges:,} ranges: {planned:.1f} s ({len(states):,} ranges in the ledger);"
            f" planned ledger reused in {reused:.2f} s")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranges", type=int, default=8192)
    ap.add_argument("--keyspace", default="bench_ledger_plan")
    args = ap.parse_args(argv)
    config = Config.from_env(keyspace=args.keyspace)
    session = connect(config)
    print(measure(session, config, args.ranges))
    session.cluster.shutdown()


if __name__ == "__main__":
    main()
