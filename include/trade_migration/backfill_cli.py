"""`python -m trade_migration.backfill_cli`: the backfill without Airflow (on-call and tests).

The same start and finish as the DAG (backfill.phase): the order guard (create_table and
dual_write completed), the phase recorded running, then completed once the ledger is complete;
a run that fails records it failed. Same ledger too: a run with the same --backfill-id resumes
exactly where the last stopped.
"""
from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys

from cassandra.cluster import Session

from trade_migration.backfill import phase
from trade_migration.backfill.summary import format_backfill
from trade_migration.backfill.ttl import REFUSE, TTL_POLICIES
from trade_migration.core.clock import now
from trade_migration.core.config import Config
from trade_migration.core.errors import Permanent
from trade_migration.core.session import connect
from trade_migration.core.settings import FETCH_SIZE, IN_FLIGHT, PAGE_TIMEOUT_S
from trade_migration.state.phases import BACKFILL, fail_unfinished

log = logging.getLogger(__name__)


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):   # no user name in the environment or in /etc/passwd
        return "unknown"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--backfill-id", default="main")
    p.add_argument("--splits", type=int)
    p.add_argument("--ranges", nargs="*", default=[], help="labels '(start, end]' or start tokens")
    p.add_argument("--fetch-size", type=int, default=FETCH_SIZE)
    p.add_argument("--max-in-flight", type=int, default=IN_FLIGHT)
    p.add_argument("--rows-per-second", type=float, default=0)
    p.add_argument("--page-timeout", type=float, default=PAGE_TIMEOUT_S)
    p.add_argument("--ttl-policy", choices=TTL_POLICIES, default=REFUSE,
                   help="a settled_trades row with a TTL: 'refuse' fails (at planning when the table has a default"
                        " TTL, else at the row's range) or 'preserve' gives its user_trades rows the seconds it has"
                        " left (default: refuse)")
    p.add_argument("--actor", default=os_user(), help="who runs this, for the phase record (default: the OS user)")
    p.add_argument("--reason", default="", help="why; kept in the audit log")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = Config.from_env()
    session = connect(config)
    run = {"run_id": f"cli__{now().isoformat()}_{os.getpid()}", "actor": args.actor[:128], "reason": args.reason}
    try:
        work = phase.start(session, config, args.backfill_id, splits=args.splits, ranges=args.ranges,
                           ttl_policy=args.ttl_policy, **run)
        try:
            result = phase.copy(session, config, args.backfill_id, [w.token_range for w in work],
                                fetch_size=args.fetch_size, max_in_flight=args.max_in_flight,
                                rows_per_second=args.rows_per_second, page_timeout=args.page_timeout,
                                ttl_policy=args.ttl_policy, progress_every=5, run_id=run["run_id"])
            report = phase.finish(session, config, args.backfill_id, require_complete=False, **run)
        except BaseException:
            record_failed(session, config, run)
            raise
        print(format_backfill(report))
        print(json.dumps(result))
        return result
    finally:
        session.cluster.shutdown()


def record_failed(session: Session, config: Config, run: dict) -> None:
    """As the DAG's teardown does; the run's own error stays the one reported."""
    try:
        fail_unfinished(session, config, BACKFILL, run_id=run["run_id"], actor=run["actor"])
    except Exception:  # noqa: BLE001 - the cluster may be what failed
        log.exception("phase %s could not be recorded failed", BACKFILL)


if __name__ == "__main__":
    try:
        main()
    except Permanent as exc:   # the operator's to fix (order, settings): the message, not a traceback
        sys.exit(f"{type(exc).__name__}: {exc}")
