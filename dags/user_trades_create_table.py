"""Phase 1: create user_trades (idempotent) and prove the live table is the contract's table.

Reading order: apply_schema (every CREATE ... IF NOT EXISTS in schema/, then schema agreement)
-> verify_table (columns, types, partition key and clustering order against the contract; on
drift the phase is recorded as failed and the run fails with the readable diff) -> record_phase.
"""
from __future__ import annotations

from airflow.sdk import get_current_context, task
from migration_common import cassandra, phase_dag, run_by, who_and_why

from trade_migration.create_table import phase


@phase_dag(
    "user_trades_create_table",
    doc=__doc__,
    params=who_and_why(),
)
def user_trades_create_table():
    @task
    def apply_schema() -> int:
        with cassandra() as (session, config):
            return phase.apply(session, config)

    @task
    def verify_table() -> dict:
        with cassandra() as (session, config):
            return phase.verify(session, config, **run_by(get_current_context()))

    @task
    def record_phase(shape: dict) -> None:
        with cassandra() as (session, config):
            phase.finish(session, config, shape, **run_by(get_current_context()))

    record_phase(apply_schema() >> verify_table())


user_trades_create_table()
