"""What pages a person, and what the page says: one Notice per alert, handed to the configured
notifier (core/notify.py: the log by default; dags/migration_alerts.py posts it to a webhook).

Every alert's details carry the same fields (FIELDS; None where one does not apply), so a chat
message, a PagerDuty event or an Alertmanager alert can be routed on them: which alert, the DAG,
its run, the phase, the task, the token range and the error.
"""
from __future__ import annotations

from trade_migration.core.notify import Notice

# The alert names (with notify.PARITY_FAILED and notify.PARITY_FIXED, the parity notices').
TASK_FAILED, RANGE_STALLED, DUAL_WRITE_FAILURES = "task_failed", "range_stalled", "dual_write_failures"
APPROVAL_WAITING = "approval_waiting"
FIELDS = ("alert", "dag_id", "run_id", "phase", "task", "range", "error")
ERROR_CHARS = 2000
_RANGE_NOTE = "token range "


def note_range(exc: BaseException, label: str) -> BaseException:
    """Name the token range an error happened in (a PEP 678 note: the traceback shows it too)."""
    exc.add_note(_RANGE_NOTE + label)
    return exc


def range_of(exc: BaseException | None) -> str | None:
    """The token range note_range() named on `exc`, if any."""
    notes = [n for n in getattr(exc, "__notes__", ()) if n.startswith(_RANGE_NOTE)]
    return notes[-1][len(_RANGE_NOTE):] if notes else None


def error_text(error: BaseException | str | None) -> str | None:
    if error is None or isinstance(error, str):
        return error[:ERROR_CHARS] if error else None
    return f"{type(error).__name__}: {error}"[:ERROR_CHARS]


def notice(alert: str, subject: str, body: str, *, dag_id: str | None = None, run_id: str | None = None,
           phase: str | None = None, task: str | None = None, range_label: str | None = None,
           error: BaseException | str | None = None, **extra) -> Notice:
    details = dict(zip(FIELDS, (alert, dag_id, run_id, phase, task, range_label, error_text(error)), strict=True))
    return Notice(subject, body, {**details, **extra})


def task_failed(*, dag_id: str, run_id: str, phase: str | None, task: str, range_label: str | None,
                error: BaseException | str | None, try_number: int | None = None) -> Notice:
    """A task that failed for good: after its retries, or at once for an error a retry cannot fix."""
    err = error_text(error) or "no error was passed (the task was failed from outside: killed, timed out, marked)"
    where = f"task {task}" + (f", range {range_label}" if range_label else "")
    body = "\n".join((f"{where} failed for good" + (f" after {try_number} tries" if try_number else ""),
                      f"error: {err}", f"run: {dag_id} / {run_id}"))
    return notice(TASK_FAILED, f"user_trades migration: {dag_id} failed ({where})", body, dag_id=dag_id,
                  run_id=run_id, phase=phase, task=task, range_label=range_label, error=err,
                  try_number=try_number)


def range_stalled(*, backfill_id: str, label: str, seconds: float, attempts: int, checkpoint: int | None,
                  run_id: str | None = None, dag_id: str | None = None) -> Notice:
    """A range the ledger shows running with no checkpoint for `seconds`."""
    body = (f"backfill {backfill_id}: range {label} is running (attempt {attempts}) and has written no checkpoint"
            f" for {seconds:,.0f} s (last checkpoint {checkpoint if checkpoint is not None else 'none'}).\n"
            "The copier is alive but stuck (a hung page, a frozen replica); its page timeout should end it."
            " If it does not, clear the task: the range resumes from its checkpoint.")
    return notice(RANGE_STALLED, f"user_trades backfill {backfill_id}: range {label} stalled", body,
                  dag_id=dag_id, run_id=run_id, phase="backfill", range_label=label,
                  error=f"no checkpoint for {seconds:.0f} s", backfill_id=backfill_id, stalled_s=round(seconds, 1))


def dual_write_failures(*, recorded: int, window_s: int, per_hour: float, limit: float, dag_id: str | None,
                        run_id: str | None) -> Notice:
    body = (f"{recorded} dual writes failed in the last {window_s / 3600:g} h ({per_hour:.1f} per hour, the alert"
            f" is above {limit:g} per hour). Each is recorded in dual_write_retries and healed by a repairing"
            " verification run; a rising rate means user_trades writes are failing in the settlement service.")
    return notice(DUAL_WRITE_FAILURES, f"user_trades dual writes failing: {per_hour:.1f} per hour", body,
                  dag_id=dag_id, run_id=run_id, phase="dual_write", error=f"{recorded} failed dual writes",
                  recorded=recorded, per_hour=round(per_hour, 3), window_s=window_s)



def approval_waiting(*, table: str, waited_s: float, run_id: str, dag_id: str, answer_by: str | None) -> Notice:
    """The cleanup's approval has waited unanswered for `waited_s`."""
    body = (f"The cleanup run {run_id} has asked for {waited_s / 3600:.1f} h whether to archive and drop {table};"
            " nobody has answered. Answer it in Airflow's Required Actions (Browse > Required Actions)."
            + (f" Without an answer it is rejected by default at {answer_by}." if answer_by else ""))
    return notice(APPROVAL_WAITING, f"user_trades cleanup: the drop of {table} waits for approval", body,
                  dag_id=dag_id, run_id=run_id, phase="cleanup", task="approve",
                  error=f"unanswered for {waited_s:.0f} s", waited_s=round(waited_s, 1))
