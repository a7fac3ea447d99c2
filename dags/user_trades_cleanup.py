"""Phase 6: archive and drop settled_trades, once every gate passes and a person approved.

Reading order: check_gates (read path on user_trades for 30 days, the writer off settled_trades,
the last nightly parity runs clean, the backfill complete, the rejects acknowledged; while a gate
is not met the run ends skipped, not failed — the daily run is no alarm — and its log names the gate
and, for the 30 days, the date it will pass) -> summarize
(row counts of both tables, the Markdown the approver reads) -> approve (Approve / Reject;
Reject after 24 h without an answer; the answer is audited with who and when) -> archive_table
(Parquet by token range to archive_url, counts checked, manifest last; gates checked again) ->
verify_archive (every object's sha256 and rows against the manifest, a seeded sample of ranges
read back against the table; any difference notifies and fails the run) -> drop_table (dual_write retired
by compare-and-set, then config.LEGACY_TABLE dropped, if it still exists) -> record (phase cleanup
completed: the end of the migration). Scheduled daily, so it asks for approval on the first day
all gates pass; once the migration is over every run skips.
"""
from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException
from archive_storage import ARCHIVE_PARAMS_HELP, CONN_ID_PATTERN, run_store
from migration_common import (
    ID_PATTERN,
    actor,
    cassandra,
    phase_dag,
    text_params,
    unfinished_phase_teardown,
    who_and_why,
)

from trade_migration.archive.check import CheckOptions
from trade_migration.archive.store import probe
from trade_migration.cleanup import approval, gates, phase
from trade_migration.core.errors import GatesFailed
from trade_migration.core.settings import APPROVAL_TIMEOUT_S, APPROVAL_WATCH_EVERY_S
from trade_migration.state.phases import CLEANUP

# How long the approval waits before Reject is taken by default: the deployment may change it
# (TM_APPROVAL_TIMEOUT_S; the end-to-end test uses seconds), a run's Params may not.
RESPONSE_TIMEOUT = timedelta(seconds=APPROVAL_TIMEOUT_S.get())
APPROVE_TASK = "approve"


def gate_options(params) -> gates.GateOptions:
    params = text_params(params)
    return gates.GateOptions(min_days=params["min_days"], override_reason=params["override_reason"],
                               parity_runs=params["parity_runs"], backfill_id=params["backfill_id"],
                               acknowledge_rejects=params["acknowledge_rejects"])


def approved(ctx) -> approval.Decision:
    """Only a person's Approve lets the archive and the drop run (not a task marked by hand)."""
    return approval.require_approval(ctx["ti"].xcom_pull(task_ids=APPROVE_TASK))


class CleanupApproval(ApprovalOperator):
    """The approval; its answer (or the timeout default) is audited by this same task, before the
    operator acts on it (on Reject, skipping the downstream tasks ends the task at once)."""

    def execute_complete(self, context, event):
        if "error" not in event:
            self.validate_chosen_options(event["chosen_options"])
            with cassandra() as (session, config):
                approval.record_decision(session, config, approval.Decision.from_response(event),
                                         run_id=context["run_id"])
        return super().execute_complete(context, event)


@phase_dag(
    "user_trades_cleanup",
    doc=__doc__,
    schedule="@daily",
    params={
        "min_days": Param(gates.REQUIRED_DAYS, type="integer", minimum=0, maximum=3650,
                          description="Days the gateway must have read user_trades (fewer needs override_reason)."),
        "override_reason": Param(None, type=["null", "string"], maxLength=2000,
                                 description="Why fewer than 30 days are enough. Audited."),
        "parity_runs": Param(7, type="integer", minimum=1, maximum=365,
                             description="The newest parity runs that must all be clean or repaired."),
        "backfill_id": Param("main", type="string", pattern=ID_PATTERN,
                             description="The backfill ledger that must be complete."),
        "acknowledge_rejects": Param(None, type=["null", "string"], maxLength=2000,
                                     description="Why the rejected trades (never in user_trades) may go with the"
                                                 " table; needed while rejected_trades is not empty. Audited;"
                                                 " later runs reuse it while the rejects stay the same."),
        "archive_url": Param(None, type=["null", "string"], maxLength=1000,
                             description=ARCHIVE_PARAMS_HELP["archive_url"]),
        "archive_conn_id": Param(None, type=["null", "string"], pattern=CONN_ID_PATTERN,
                                 description=ARCHIVE_PARAMS_HELP["archive_conn_id"]),
        "verify_sample_share": Param(0.1, type="number", exclusiveMinimum=0, maximum=1,
                                     description="Share of token ranges read back from the archive and compared"
                                                 " row by row with settled_trades before the drop (1: all)."),
        "skip_archive_reason": Param(None, type=["null", "string"], maxLength=2000,
                                     description="Drop without an archive; why. Audited. Empty: archive first."),
        "archive_parallelism": Param(4, type="integer", minimum=1, maximum=32,
                                     description="Token ranges archived at once."),
        "refresh_bound_s": Param(30, type="integer", minimum=0, maximum=3600,
                                 description="How long the settlement services may take to see a flag change:"
                                             " rows written later than that after dual_write=new_only stop the drop."),
        **who_and_why(),
    },
)
def user_trades_cleanup():
    @task(retries=0)
    def check_gates() -> dict:
        ctx = get_current_context()
        p = text_params(ctx["params"])
        opts = gate_options(p)
        store = run_store(p, ctx["run_id"])          # a bad URL, endpoint, key or bucket fails here, not after
        if not p["skip_archive_reason"].strip():    # approval
            probe(store)
        with cassandra() as (session, config):
            over = phase.over(session, config)
            if over:
                raise AirflowSkipException(over)
            try:
                return phase.check_gates(session, config, opts, run_id=ctx["run_id"], actor=actor(ctx))
            except GatesFailed as exc:
                raise AirflowSkipException(f"not yet — {exc}") from exc

    @task
    def summarize(report: dict) -> dict:
        ctx = get_current_context()
        p = text_params(ctx["params"])
        with cassandra() as (session, config):
            return phase.summarize(session, config, report, archive_url=p["archive_url"], run_id=ctx["run_id"],
                                   skip_archive_reason=p["skip_archive_reason"], response_timeout=RESPONSE_TIMEOUT,
                                   sample_share=p["verify_sample_share"])

    @task.sensor(mode="reschedule", poke_interval=APPROVAL_WATCH_EVERY_S.get(), soft_fail=True, retries=0,
                 timeout=(RESPONSE_TIMEOUT + timedelta(hours=1)).total_seconds())
    def approval_watch(summary: dict) -> bool:
        """Beside the approval: tells the notifier once if nobody answers for TM_APPROVAL_ALERT_AFTER_S."""
        ctx = get_current_context()
        ti = ctx["ti"]
        states = ti.get_task_states(dag_id=ti.dag_id, task_ids=[APPROVE_TASK], run_ids=[ctx["run_id"]])
        return approval.watch(states.get(ctx["run_id"], {}).get(APPROVE_TASK), summary, dag_id=ti.dag_id,
                              run_id=ctx["run_id"], response_timeout=RESPONSE_TIMEOUT)

    approve = CleanupApproval(
        task_id=APPROVE_TASK,
        subject="{{ ti.xcom_pull(task_ids='summarize')['subject'] }}",     # names keyspace.table
        body="{{ ti.xcom_pull(task_ids='summarize')['body'] }}",
        defaults=approval.REJECT,
        response_timeout=RESPONSE_TIMEOUT,
        retries=0,
    )

    @task
    def archive_table(summary: dict) -> dict:
        ctx = get_current_context()
        p = text_params(ctx["params"])
        decision = approved(ctx)
        with cassandra() as (session, config):
            return phase.archive_table(session, config, gate_options(p), decision, run_id=ctx["run_id"],
                                       archive=run_store(p, ctx["run_id"]),
                                       skip_archive_reason=p["skip_archive_reason"],
                                       refresh_bound_s=p["refresh_bound_s"], parallelism=p["archive_parallelism"])

    @task
    def verify_archive(archived: dict) -> dict:
        ctx = get_current_context()
        p = text_params(ctx["params"])
        decision = approved(ctx)
        options = CheckOptions(sample_share=p["verify_sample_share"], seed=ctx["run_id"],
                               parallelism=p["archive_parallelism"])
        with cassandra() as (session, config):
            return phase.verify_archive(session, config, decision, archive=run_store(p, ctx["run_id"]),
                                        archived=archived, options=options, run_id=ctx["run_id"])

    @task
    def drop_table(archived: dict) -> dict:
        ctx = get_current_context()
        decision = approved(ctx)
        with cassandra() as (session, config):
            return phase.drop_table(session, config, gate_options(ctx["params"]), decision, archived=archived,
                                    run_id=ctx["run_id"])

    @task
    def record(archived: dict, dropped: dict) -> None:
        ctx = get_current_context()
        decision = approved(ctx)
        with cassandra() as (session, config):
            phase.finish(session, config, decision, archived=archived, dropped=dropped, run_id=ctx["run_id"])

    summary = summarize(check_gates())
    summary >> approve
    approval_watch(summary)
    archived = archive_table(summary)
    approve >> archived
    verified = verify_archive(archived)
    record(verified, drop_table(verified)) >> unfinished_phase_teardown(CLEANUP)


user_trades_cleanup()
