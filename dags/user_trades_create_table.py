"""Phase 1: create user_trades (idempotent) and prove the live table is the contract's table.

Reading order: apply_schema (every CREATE ... IF NOT EXISTS in schema/, then schema agreement)
-> verify_table (columns, types, partition key and clustering order against the contract; on
drift the phase is recorded as failed and the run fails with the readable diff) -> record_phase.
"""
from __future__ import annotations

import logging

from airflow.sdk import get_current_context, task
from migration_common import actor, cassandra, phase_dag, text_params, who_and_why

from trade_migration.create_table import schema
from trade_migration.state import phases

log = logging.getLogger(__name__)


@phase_dag(
    "user_trades_create_table",
    doc=__doc__,
    params=who_and_why(),
)
def user_trades_create_table():
    @task
    def apply_schema() -> int:
        with cassandra() as (session, config):
            count = schema.apply(session, config)
        log.info("applied %d schema statements to %s; schema agreement reached", count, config.keyspace)
        return count

    @task
    def verify_table() -> dict:
        ctx = get_current_context()
        with cassandra() as (session, config):
            try:
                live = schema.verify_user_trades(session, config)
            except schema.SchemaDriftError as exc:
                phases.State(session, config).mark(phases.CREATE_TABLE, phases.FAILED, run_id=ctx["run_id"],
                                                   actor=actor(ctx), reason=text_params(ctx["params"])["reason"],
                                                   details={"drift": str(exc)})
                raise
        return {"columns": len(live.columns), "partition_key": list(live.partition_key),
                "clustering": [f"{c} {d}" for c, d in live.clustering]}

    @task
    def record_phase(shape: dict) -> None:
        ctx = get_current_context()
        with cassandra() as (session, config):
            phases.State(session, config).mark(phases.CREATE_TABLE, phases.COMPLETED, run_id=ctx["run_id"],
                                               actor=actor(ctx), reason=text_params(ctx["params"])["reason"],
                                               details=shape)
        log.info("%s.user_trades verified: %s", config.keyspace, shape)

    record_phase(apply_schema() >> verify_table())


user_trades_create_table()
