"""The migration's phases in order, with one trigger: create_table -> dual_write (on) ->
backfill -> verify.

Each step triggers the phase's own DAG and waits for it, so every phase keeps its own runs,
logs and retries, and can still be triggered alone. The actor and the reason travel with each
run; each phase DAG checks on its own that the phase before it completed. The read-path switch
is not in here: it waits on an operator's judgement of the shadow comparison.
"""
from __future__ import annotations

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import chain
from migration_common import DEFAULT_ARGS, phase_dag, who_and_why

PHASE_DAGS = ["user_trades_create_table", "user_trades_dual_write", "user_trades_backfill", "user_trades_verify"]
WHO_AND_WHY = {"actor": "{{ params.actor or dag_run.triggering_user_name or 'airflow' }}",
               "reason": "{{ params.reason }}"}
EXTRA_CONF = {"user_trades_dual_write": {"value": "on"}}


@phase_dag(
    "user_trades_migration",
    doc=__doc__,
    default_args={**DEFAULT_ARGS, "retries": 0},   # a failed phase is rerun by hand, after a look
    params=who_and_why(required=True),
)
def user_trades_migration():
    chain(*[
        TriggerDagRunOperator(
            task_id=dag_id.removeprefix("user_trades_"),
            trigger_dag_id=dag_id,
            conf={**WHO_AND_WHY, **EXTRA_CONF.get(dag_id, {})},
            wait_for_completion=True,
            poke_interval=10,
            allowed_states=["success"],
            failed_states=["failed"],
        )
        for dag_id in PHASE_DAGS
    ])


user_trades_migration()
