"""Airflow glue shared by the migration DAGs: the connection, the run's actor, retry rules.

Logic stays in include/trade_migration; this module only adapts Airflow to it.
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

from airflow.sdk import ExceptionRetryPolicy, Param, RetryAction, RetryRule, dag, get_current_context, teardown
from airflow.sdk.exceptions import AirflowNotFoundException
from migration_alerts import task_failed

from trade_migration.core import settings
from trade_migration.core.config import IDENTIFIER, config_from_connection
from trade_migration.core.errors import DRIVER_PERMANENT, Permanent
from trade_migration.core.session import hook_cluster_quietly, open_session
from trade_migration.state.phases import fail_unfinished

CONN_ID = settings.CONN_ID.get()
POOL = "cassandra_backfill"
TAGS = ["user_trades_migration"]
# For identifier Params; not '$', which in Python's re also matches before a final newline.
ID_PATTERN = rf"^{IDENTIFIER.pattern}(?![\s\S])"

# Errors a retry cannot fix (core.errors.Permanent, and the driver's own) fail at once; everything
# else (timeouts, unavailable nodes, a range that timed out) retries.
FAIL_FAST = ExceptionRetryPolicy(rules=[
    RetryRule(exception=[Permanent, *DRIVER_PERMANENT], action=RetryAction.FAIL,
              reason="a retry cannot fix this; fix the cause and rerun"),
    RetryRule(exception=[AirflowNotFoundException], action=RetryAction.FAIL,
              reason="an Airflow connection it names does not exist; create it (or fix the Param) and rerun"),
])

DEFAULT_ARGS = {
    "owner": "trading-platform",
    "retries": 3,
    "retry_delay": timedelta(seconds=10),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=2),     # a run in backoff blocks the next (max_active_runs=1)
    "retry_policy": FAIL_FAST,
    # Once a task has failed for good (never on a retry): the notifier hears of it (migration_alerts).
    "on_failure_callback": task_failed,
}


def phase_dag(dag_id: str, *, doc: str, schedule=None, default_args: dict | None = None, **kwargs):
    """@dag with what every migration DAG shares: one run at a time, no catchup, the retry rules."""
    return dag(dag_id=dag_id, schedule=schedule, catchup=False, tags=TAGS, max_active_runs=1, doc_md=doc,
               default_args=DEFAULT_ARGS if default_args is None else default_args, **kwargs)


def who_and_why(*, required: bool = False) -> dict:
    """Params every state-changing DAG takes: the operator's name and the reason.

    Optional text Params are nullable: the trigger form treats a plain string Param as required
    and keeps Trigger disabled while it is empty. Read them through text_params()."""
    reason = (Param(type="string", minLength=1, maxLength=2000, description="Why; kept in the audit log. Required.")
              if required else
              Param(None, type=["null", "string"], maxLength=2000, description="Why; kept in the audit log."))
    return {
        "actor": Param(None, type=["null", "string"], maxLength=128,
                       description="Who runs this (empty: the user who triggered the run)."),
        "reason": reason,
    }


MAX_PARALLEL = 16   # mapped tasks of one backfill or verification run


def backfill_tuning() -> dict:
    """The backfill's size and speed Params; the one-trigger migration takes and passes on the same."""
    return {
        "splits": Param(None, type=["null", "integer"], minimum=1, maximum=8192,
                        description="Token ranges for a new ledger (empty: from the size estimate)."),
        "parallelism": Param(4, type="integer", minimum=1, maximum=MAX_PARALLEL,
                             description="Mapped tasks (each a batch of ranges); also capped by the pool."),
        "rows_per_second": Param(0, type="integer", minimum=0,
                                 description="Source rows/s for the whole run (0: unlimited)."),
    }


OPTIONAL_TEXT = frozenset({"actor", "reason", "override_reason", "acknowledge_rejects", "archive_url",
                           "archive_conn_id", "skip_archive_reason"})


def text_params(params) -> dict:
    """The run's Params, optional text ones as '' when left empty (null)."""
    return {k: ("" if v is None and k in OPTIONAL_TEXT else v) for k, v in params.items()}


def every(outputs) -> list:
    """A mapped task's outputs as a list, read by index. Iterating Airflow's lazy sequence reads one
    past the end, which the API answers 404 and the task log shows as an error "XCom not found"."""
    return [] if outputs is None else [outputs[i] for i in range(len(outputs))]


def actor(context) -> str:
    name = context["params"].get("actor") or getattr(context["dag_run"], "triggering_user_name", None)
    return str(name or "airflow")[:128]


def run_by(context) -> dict:
    """run_id, actor and reason: what a phase record and the audit log name for this run."""
    return {"run_id": context["run_id"], "actor": actor(context), "reason": text_params(context["params"])["reason"]}


@contextmanager
def cassandra(conn_id: str = CONN_ID):
    """(session, config) from the Airflow connection; credentials and TLS never leave the hook."""
    from airflow.providers.apache.cassandra.hooks.cassandra import CassandraHook

    with hook_cluster_quietly():
        hook = CassandraHook(cassandra_conn_id=conn_id)
    config = config_from_connection(hook.get_connection(conn_id))
    session = open_session(hook.get_cluster())   # a refusal a retry cannot fix fails at once
    try:
        yield session, config
    finally:
        hook.shutdown_cluster()


def unfinished_phase_teardown(phase: str):
    """A teardown task: runs after everything else, even after a failure, and records `phase` as
    failed if this run left it running. Teardowns do not decide the run's state."""
    @teardown
    def record_unfinished() -> bool:
        ctx = get_current_context()
        with cassandra() as (session, config):
            return fail_unfinished(session, config, phase, run_id=ctx["run_id"], actor=actor(ctx))

    return record_unfinished()
