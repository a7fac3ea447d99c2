"""The migration's phases in order, with one trigger: create_table -> dual_write (on) ->
backfill -> verify.

Each step triggers the phase's own DAG and waits for it (deferred: the wait holds no worker
slot), so every phase keeps its own runs, logs and retries, and can still be triggered alone.
phase_confs hands each phase run who and why and, to the backfill, its size and speed Params;
values travel as data, never rendered as templates. Each phase DAG checks on its own that the
phase before it completed. The read-path switch is not in here: it waits on an operator's
judgement of the shadow comparison.
"""
from __future__ import annotations

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import chain, task
from migration_common import DEFAULT_ARGS, actor, backfill_tuning, phase_dag, who_and_why

PHASE_DAGS = ["user_trades_create_table", "user_trades_dual_write", "user_trades_backfill", "user_trades_verify"]
BACKFILL_PARAMS = tuple(backfill_tuning())


def confs_for(params, dag_run=None) -> dict[str, dict]:
    """Each phase DAG's conf: who and why for all, "on" for the dual write, the backfill's tuning."""
    who = {"actor": actor({"params": params, "dag_run": dag_run}), "reason": params["reason"]}
    extra = {"user_trades_dual_write": {"value": "on"},
             "user_trades_backfill": {name: params[name] for name in BACKFILL_PARAMS}}
    return {dag_id: {**who, **extra.get(dag_id, {})} for dag_id in PHASE_DAGS}


@phase_dag(
    "user_trades_migration",
    doc=__doc__,
    default_args={**DEFAULT_ARGS, "retries": 0},   # a failed phase is rerun by hand, after a look
    params={**who_and_why(required=True), **backfill_tuning()},
)
def user_trades_migration():
    @task(multiple_outputs=True)
    def phase_confs(params=None, dag_run=None) -> dict[str, dict]:
        return confs_for(params, dag_run)

    confs = phase_confs()
    chain(confs, *[
        TriggerDagRunOperator(
            task_id=dag_id.removeprefix("user_trades_"),
            trigger_dag_id=dag_id,
            conf=confs[dag_id],
            wait_for_completion=True,
            deferrable=True,
            poke_interval=10,
            allowed_states=["success"],
            failed_states=["failed"],
        )
        for dag_id in PHASE_DAGS
    ])


user_trades_migration()
