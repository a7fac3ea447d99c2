"""The person's part of the cleanup: what they read before deciding, and what their answer means.

The answer comes from Airflow's ApprovalOperator as a plain dict (chosen_options,
responded_by_user, responded_at, timedout); only an Approve given by a named person lets the
archive and the drop run. A Reject, the timeout default, or an approval task marked successful
by hand (no answer at all) all stop them, and every answer is audited with who and when.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from cassandra.cluster import Session

from trade_migration.core import alerts, notify
from trade_migration.core.clock import now, utc
from trade_migration.core.config import LEGACY_TABLE, TARGET_TABLE, Config
from trade_migration.core.errors import NotApproved
from trade_migration.core.settings import APPROVAL_ALERT_AFTER_S
from trade_migration.state import phases

APPROVE, REJECT = "Approve", "Reject"   # the ApprovalOperator's fixed options
APPROVED, REJECTED, REJECTED_BY_DEFAULT = "approved", "rejected", "rejected by default"


@dataclass(frozen=True)
class Decision:
    choice: str | None        # Approve / Reject; None when the approval task never answered
    user: str | None          # who answered; None when the timeout default chose
    user_id: str | None
    at: datetime | None
    timed_out: bool = False

    @classmethod
    def from_response(cls, response: Mapping | None) -> Decision:
        if not response:
            return cls(None, None, None, None)
        chosen = list(response.get("chosen_options") or [])
        by = response.get("responded_by_user") or {}
        at = response.get("responded_at")
        at = utc(datetime.fromisoformat(at) if isinstance(at, str) else at)
        return cls(chosen[0] if len(chosen) == 1 else None, by.get("name"), by.get("id"), at,
                   bool(response.get("timedout")) or not by)

    @property
    def approved(self) -> bool:
        return self.choice == APPROVE and bool(self.user) and not self.timed_out

    @property
    def action(self) -> str:
        return APPROVED if self.approved else REJECTED_BY_DEFAULT if self.timed_out else REJECTED

    def line(self) -> str:
        if self.choice is None:
            return "no answer recorded by the approval task"
        who = f"by {self.user}" if self.user and not self.timed_out else "by default (no answer before the timeout)"
        return f"{self.choice} {who}" + (f" at {self.at:%Y-%m-%d %H:%M:%S} UTC" if self.at else "")


def subject(config: Config) -> str:
    """The approval's title names the table it would drop: several keyspaces may wait at once."""
    return f"Drop {config.keyspace}.{LEGACY_TABLE}? Every cleanup gate passes"


# The approval task's states once it no longer waits for a person.
ANSWERED_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
STOP, ALERT, WAIT = "stop", "alert", "wait"


def watch_verdict(approve_state: str | None, waited_s: float, alert_after_s: float) -> str:
    """One look of the approval watch: stop once the approval is answered (or gone), alert once it
    has waited alert_after_s unanswered (then stop: one alert per run), else wait."""
    if approve_state in ANSWERED_STATES:
        return STOP
    return ALERT if waited_s >= alert_after_s else WAIT


def watch(approve_state: str | None, summary: Mapping, *, dag_id: str, run_id: str, response_timeout: timedelta,
          at: datetime | None = None) -> bool:
    """The approval watch's look (summary: what summarize returned); True once it has nothing left to do."""
    asked_at = datetime.fromisoformat(summary["asked_at"])
    waited = ((at or now()) - asked_at).total_seconds()
    verdict = watch_verdict(approve_state, waited, APPROVAL_ALERT_AFTER_S.get())
    if verdict == ALERT:
        notify.send(alerts.approval_waiting(table=summary["table"], waited_s=waited, run_id=run_id, dag_id=dag_id,
                                            answer_by=f"{asked_at + response_timeout:%Y-%m-%d %H:%M} UTC"))
    return verdict != WAIT


def record_decision(session: Session, config: Config, decision: Decision, *, run_id: str) -> None:
    """Audit who decided and when, Approve or Reject, from the task that received the answer."""
    phases.State(session, config).audit(
        phases.CLEANUP, decision.action, actor=decision.user or "airflow (timeout)", reason=decision.line(),
        details={"run_id": run_id, "choice": decision.choice, "user_id": decision.user_id,
                 "responded_at": decision.at, "timed_out": decision.timed_out})


def require_approval(response: Mapping | None) -> Decision:
    """The decision if a person chose Approve; else NotApproved."""
    decision = Decision.from_response(response)
    if not decision.approved:
        raise NotApproved(f"dropping {LEGACY_TABLE} needs a person's Approve in the approval task;"
                          f" found: {decision.line()}. Nothing was archived or dropped.")
    return decision


# --- what the approver reads ---------------------------------------------------------------------
def _cell(value) -> str:
    return str("" if value is None else value).replace("|", "\\|").replace("\n", " ")


def _n(value) -> str:
    return f"{value:,}" if isinstance(value, int) else _cell(value)


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    return (f"{seconds // 3600} h" if seconds % 3600 == 0
            else f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s")


def _share(share: float) -> str:
    return "every range" if share >= 1 else f"a seeded {share:.0%} of the ranges"


def body(report: dict, counts: dict, *, archive_url: str | None, skip_archive_reason: str = "",
         run_id: str, response_timeout: timedelta, sample_share: float = 1.0) -> str:
    """The Markdown shown in the approval task: gates, row counts, parity history, the archive."""
    ks = report["keyspace"]
    lines = [f"## Drop `{ks}.{LEGACY_TABLE}`?", "",
             f"Every cleanup gate passes (checked {report['checked_at'][:16].replace('T', ' ')} UTC)."
             f" **Approve** archives the table and then drops it; this cannot be undone."
             f" **Reject** leaves everything as it is, and is chosen by default after {_duration(response_timeout)}"
             f" without an answer.", "", "### Gates", "", "| gate | result | numbers |", "|---|---|---|"]
    lines += [f"| {g['name']} | {'pass' if g['passed'] else '**FAIL**'} | {_cell(g['detail'])} |"
              for g in report["gates"]]
    rejects = next(g for g in report["gates"] if g["name"] == "rejects")["numbers"]["count"]
    settled, target = counts[LEGACY_TABLE], counts[TARGET_TABLE]
    lines += ["", f"### Row counts ({counts['ranges']} token ranges, counted in parallel)", "",
              "| table | rows |", "|---|---|",
              f"| {LEGACY_TABLE} | {_n(settled)} |", f"| {TARGET_TABLE} | {_n(target)} |",
              f"| rejected_trades | {_n(rejects)} |", "",
              f"{_n(settled)} settled trades less {_n(rejects)} rejected make {_n(2 * (settled - rejects))}"
              f" {TARGET_TABLE} rows (one per side); {TARGET_TABLE} also holds the trades settled since"
              f" dual_write became new_only."]
    history = next(g for g in report["gates"] if g["name"] == "parity")["numbers"]["history"]
    lines += ["", "### Parity history (newest first)", "",
              "| started (UTC) | run | mode | status | ranges | rows checked"
              " | missing | mismatched | orphans | repaired |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {_cell(h['started_at'])[:16].replace('T', ' ')} | {_cell(h['run_id'])} | {_cell(h['mode'])}"
              f" | {_cell(h['status'])} | {_cell(h['ranges_checked'])}/{_cell(h['ranges_total'])}"
              f" | {_n(h['rows_checked'])} | {_n(h['missing'])} | {_n(h['mismatched'])} | {_n(h['orphans'])}"
              f" | {_n(h['repaired'])} |" for h in history]
    lines += ["", "### Archive", ""]
    if skip_archive_reason.strip():
        lines.append(f"**No archive**: the run opted out because: {_cell(skip_archive_reason.strip())}")
    else:
        lines.append(f"Before the drop, `{ks}.{LEGACY_TABLE}` is written to Parquet under `{archive_url}`"
                     f" (one object per token range, each object's row count checked against the table;"
                     f" manifest.json lists them with their sha256). Then every object is read back and checked"
                     f" against the manifest, and {_share(sample_share)} compared row by row with the table"
                     f" (write times included). The drop runs only if all of it matches;"
                     f" `python -m trade_migration.restore --archive {archive_url} --into KEYSPACE.TABLE`"
                     f" writes it back.")
    lines += ["", f"Run `{run_id}`."]
    return "\n".join(lines)
