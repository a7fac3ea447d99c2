"""`python -m trade_migration.backfill_cli`: the backfill without Airflow (on-call and tests).

Same ledger as the DAG: a run with the same --backfill-id resumes exactly where the last stopped.
"""
from __future__ import annotations

import argparse
import json
import logging

from trade_migration.backfill import copier, plan
from trade_migration.backfill.summary import backfill_summary, format_backfill
from trade_migration.core.config import Config
from trade_migration.core.session import connect, is_scylla
from trade_migration.state.ledger import Ledger


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--backfill-id", default="main")
    p.add_argument("--splits", type=int)
    p.add_argument("--ranges", nargs="*", default=[], help="labels '(start, end]' or start tokens")
    p.add_argument("--fetch-size", type=int, default=1000)
    p.add_argument("--max-in-flight", type=int, default=128)
    p.add_argument("--rows-per-second", type=float, default=0)
    p.add_argument("--page-timeout", type=float, default=60)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = Config.from_env()
    session = connect(config)
    try:
        ledger = Ledger(session, config, args.backfill_id)
        work = plan.select(plan.ensure_ledger(session, config, ledger, args.splits), ledger, args.ranges)
        options = copier.Options(fetch_size=args.fetch_size, max_in_flight=args.max_in_flight,
                                   rows_per_second=args.rows_per_second, page_timeout=args.page_timeout,
                                   progress_every=5, bypass_cache=is_scylla(session))
        result = copier.run_batch(session, config, args.backfill_id, [w.token_range for w in work], options)
        report = backfill_summary(ledger.load())
        print(format_backfill(report))
        print(json.dumps(result))
        return result
    finally:
        session.cluster.shutdown()


if __name__ == "__main__":
    main()
