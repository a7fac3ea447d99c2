"""Phase 1, create_table: apply the schema, prove the live table is the contract's, record the phase.

The same steps for every caller (the DAG's tasks); each returns what a task hands on, JSON-ready.
"""
from __future__ import annotations

import logging

from cassandra.cluster import Session

from trade_migration.core.config import Config
from trade_migration.core.errors import SchemaDriftError
from trade_migration.create_table import schema
from trade_migration.state import phases

log = logging.getLogger(__name__)


def apply(session: Session, config: Config) -> int:
    """Every CREATE ... IF NOT EXISTS in schema/, then schema agreement; the number of statements."""
    count = schema.apply(session, config)
    log.info("applied %d schema statements to %s; schema agreement reached", count, config.keyspace)
    return count


def verify(session: Session, config: Config, *, run_id: str, actor: str, reason: str) -> dict:
    """The live user_trades' shape; on drift the phase is recorded failed (with the readable
    diff) before SchemaDriftError goes on, so the migration state says why phase 1 stopped."""
    try:
        live = schema.verify_user_trades(session, config)
    except SchemaDriftError as exc:
        phases.State(session, config).mark(phases.CREATE_TABLE, phases.FAILED, run_id=run_id, actor=actor,
                                           reason=reason, details={"drift": str(exc)})
        raise
    return {"columns": len(live.columns), "partition_key": list(live.partition_key),
            "clustering": [f"{c} {d}" for c, d in live.clustering]}


def finish(session: Session, config: Config, shape: dict, *, run_id: str, actor: str, reason: str) -> None:
    """Record phase 1 completed, with the verified shape."""
    phases.State(session, config).mark(phases.CREATE_TABLE, phases.COMPLETED, run_id=run_id, actor=actor,
                                       reason=reason, details=shape)
    log.info("%s.user_trades verified: %s", config.keyspace, shape)
