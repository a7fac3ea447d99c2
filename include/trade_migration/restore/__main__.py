"""`python -m trade_migration.restore --archive URL --into KEYSPACE.TABLE`: an archive back into a table.

The cluster from the TM_* settings (TM_CONTACT_POINTS, TM_KEYSPACE for the restore's progress
table); the object store's credentials from its own environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, ... for s3://), never from the command line.
"""
from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys

from trade_migration.archive.store import archive_url, open_store
from trade_migration.core.config import Config
from trade_migration.core.errors import Permanent
from trade_migration.core.session import connect
from trade_migration.core.settings import IN_FLIGHT
from trade_migration.restore.run import Target, restore_archive


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m trade_migration.restore", description=__doc__)
    p.add_argument("--archive", required=True, help="the archive's folder: the run folder that holds manifest.json")
    p.add_argument("--into", required=True, help="KEYSPACE.TABLE; created with settled_trades' columns if missing")
    p.add_argument("--ranges", nargs="*", default=[], help="only these: labels '(start, end]' or start tokens")
    p.add_argument("--allow-non-empty", action="store_true", help="write into a table that already has rows")
    p.add_argument("--endpoint-url", default=None, help="an S3-compatible endpoint (else AWS_ENDPOINT_URL, else AWS)")
    p.add_argument("--max-in-flight", type=int, default=IN_FLIGHT)
    p.add_argument("--actor", default=getpass.getuser(), help="who restores (the audit log; default: the OS user)")
    p.add_argument("--reason", default="", help="why (the audit log)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    url = archive_url(args.archive)
    target = Target.parse(args.into)
    options = {"client_kwargs": {"endpoint_url": args.endpoint_url}} if args.endpoint_url else {}
    store = open_store(url, options)
    config = Config.from_env()
    session = connect(config)
    try:
        result = restore_archive(session, config, store, target, ranges=args.ranges,
                                 allow_non_empty=args.allow_non_empty, max_in_flight=args.max_in_flight,
                                 actor=args.actor[:128], reason=args.reason[:2000])
    finally:
        session.cluster.shutdown()
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    try:
        main()
    except Permanent as exc:   # the operator's to fix: the message, not a traceback
        sys.exit(f"{type(exc).__name__}: {exc}")
