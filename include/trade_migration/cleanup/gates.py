"""Phase 6: the gates before settled_trades may be dropped (the drop itself is cleanup.drop).

Dropping the legacy table is the one step of the migration that cannot be undone. Every
precondition is therefore read from the database (flags, parity runs, the backfill ledger, the
rejects), reported with its numbers, and checked again right before the archive and the drop.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from cassandra.cluster import Session

from trade_migration.backfill.summary import backfill_summary
from trade_migration.core import clock
from trade_migration.core.config import LEGACY_TABLE, Config, identifier
from trade_migration.core.errors import ConfigError, GatesFailed
from trade_migration.core.prepared import prepared
from trade_migration.state import phases
from trade_migration.state.flags import DUAL_WRITE, NEW_ONLY, READ_PATH, RETIRED, Flag, Flags
from trade_migration.state.ledger import Ledger, RangeState
from trade_migration.statements.parity_runs import parity_select_recent
from trade_migration.statements.rejected_trades import rejects_select_ids

REQUIRED_DAYS = 30                      # reads on user_trades before the drop, unless overridden
MAX_PARITY_AGE = timedelta(hours=36)    # the newest parity run may be at most this old
GOOD_PARITY = ("clean", "repaired")
ORDER, READS, WRITER, PARITY, BACKFILL, REJECTS = (
    "order", "read_path", "writer", "parity", "backfill", "rejects")
# audit_log actions of the gates
ACK_REJECTS, READ_OVERRIDE = "rejects acknowledged", "read_path override"
AUDIT_SCAN = 100_000                    # audit entries searched for the last acknowledgement


# --- options -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GateOptions:
    min_days: int = REQUIRED_DAYS
    override_reason: str = ""           # required when min_days < REQUIRED_DAYS
    parity_runs: int = 7
    backfill_id: str = "main"
    acknowledge_rejects: str = ""       # a reason; needed only while rejected_trades is not empty

    def __post_init__(self) -> None:
        identifier(self.backfill_id, what="backfill_id")
        if not isinstance(self.min_days, int) or self.min_days < 0:
            raise ConfigError(f"min_days must be a non-negative integer (got {self.min_days!r})")
        if self.min_days < REQUIRED_DAYS and not self.override_reason.strip():
            raise ConfigError(f"min_days {self.min_days} is below {REQUIRED_DAYS}: give override_reason"
                              " (why fewer days of reads on user_trades are enough; it is audited)")
        if not isinstance(self.parity_runs, int) or self.parity_runs < 1:
            raise ConfigError(f"parity_runs must be at least 1 (got {self.parity_runs!r})")


# --- gates ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    detail: str                           # one line, with the numbers
    numbers: dict = field(default_factory=dict)
    passes_at: datetime | None = None     # when a gate that only needs time will pass

    def line(self) -> str:
        return f"[{'pass' if self.passed else 'FAIL'}] {self.name}: {self.detail}"


@dataclass(frozen=True)
class GateReport:
    keyspace: str
    checked_at: datetime
    gates: tuple[Gate, ...]

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def failed(self) -> list[Gate]:
        return [g for g in self.gates if not g.passed]

    def gate(self, name: str) -> Gate:
        return next(g for g in self.gates if g.name == name)

    def text(self) -> str:
        head = (f"cleanup gates for {self.keyspace}.{LEGACY_TABLE} at {self.checked_at:%Y-%m-%d %H:%M} UTC: "
                + ("all pass" if self.passed else
                   f"{len(self.failed)} of {len(self.gates)} failed ({', '.join(g.name for g in self.failed)})"))
        return "\n".join([head] + ["  " + g.line() for g in self.gates])

    def raise_if_failed(self) -> None:
        if self.passed:
            return
        when = [f"{g.name} passes on {g.passes_at:%Y-%m-%d %H:%M} UTC" for g in self.failed if g.passes_at]
        raise GatesFailed(f"cleanup gate(s) failed: {', '.join(g.name for g in self.failed)}; nothing was dropped"
                          + (f" ({'; '.join(when)})" if when else "") + "\n" + self.text())

    def to_dict(self) -> dict:
        return json.loads(json.dumps({"keyspace": self.keyspace, "checked_at": self.checked_at,
                                      "passed": self.passed, "gates": [asdict(g) for g in self.gates]},
                                     default=_iso))


def _iso(value):
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _age(at: datetime, when: datetime) -> str:
    hours = (when - at).total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} h"


def order_gate(phase: phases.Phase | None) -> Gate:
    """The order guard: cleanup comes after a completed verification phase."""
    status = phase.status if phase else None
    return Gate(ORDER, status == phases.COMPLETED,
                f"phase verify is {status or 'not started'}" + ("" if status == phases.COMPLETED else
                                                                 " (run user_trades_verify first)"),
                {"verify": status})


def read_path_gate(flag: Flag, opts: GateOptions, at: datetime) -> Gate:
    need = timedelta(days=opts.min_days)
    override = (f"; {opts.min_days} days instead of {REQUIRED_DAYS} by override: {opts.override_reason.strip()}"
                if opts.min_days < REQUIRED_DAYS else "")
    numbers = {"value": flag.value, "changed_at": flag.changed_at, "min_days": opts.min_days}
    if flag.value != "user_trades" or flag.changed_at is None:
        return Gate(READS, False, f"read_path is {flag.value!r}, not 'user_trades': switch the reads first;"
                                  f" the {opts.min_days} days count from the switch{override}", numbers)
    passes_at = flag.changed_at + need
    days = (at - flag.changed_at).total_seconds() / 86400
    numbers["days"] = round(days, 2)
    detail = (f"reads on user_trades since {flag.changed_at:%Y-%m-%d %H:%M} UTC ({days:.1f} days;"
              f" needs {opts.min_days})")
    if at >= passes_at:
        return Gate(READS, True, detail + override, numbers)
    return Gate(READS, False, detail + f"; passes on {passes_at:%Y-%m-%d %H:%M} UTC" + override, numbers, passes_at)


def writer_gate(flag: Flag) -> Gate:
    numbers = {"value": flag.value, "version": flag.version, "changed_at": flag.changed_at}
    if flag.value in (NEW_ONLY, RETIRED):
        return Gate(WRITER, True, f"dual_write is {flag.value!r} since {flag.changed_at:%Y-%m-%d %H:%M} UTC"
                                  f" (set by {flag.changed_by}): the settlement service writes user_trades only",
                    numbers)
    return Gate(WRITER, False, f"dual_write is {flag.value!r}: the settlement service still writes"
                               f" {LEGACY_TABLE}; set dual_write to {NEW_ONLY!r} first", numbers)


def parity_gate(runs: list, opts: GateOptions, at: datetime) -> Gate:
    """The newest `parity_runs` runs (newest first) are all clean or repaired, the newest recent."""
    want = opts.parity_runs
    history = [{"started_at": clock.utc(r.started_at), "run_id": r.run_id, "mode": r.mode, "status": r.status,
                "rows_checked": r.rows_checked, "missing": r.missing, "mismatched": r.mismatched,
                "orphans": r.orphans, "repaired": r.repaired, "ranges_checked": r.ranges_checked,
                "ranges_total": r.ranges_total} for r in runs[:want]]
    good = [h for h in history if h["status"] in GOOD_PARITY]
    numbers = {"runs": len(history), "wanted": want, "good": len(good), "history": history}
    problems = []
    if len(history) < want:
        problems.append(f"only {len(history)} parity runs, {want} needed")
    bad = [f"{h['run_id']} {h['status']}" for h in history if h["status"] not in GOOD_PARITY]
    if bad:
        problems.append(f"not clean: {', '.join(bad)}")
    newest = history[0]["started_at"] if history else None
    if newest is not None and at - newest > MAX_PARITY_AGE:
        problems.append(f"the newest run is {_age(newest, at)} old"
                        f" (at most {MAX_PARITY_AGE.total_seconds() / 3600:.0f} h)")
    summary = (f"{len(good)} of the last {len(history)} runs clean or repaired"
               + (f", newest {newest:%Y-%m-%d %H:%M} UTC ({_age(newest, at)} ago)" if newest else ""))
    return Gate(PARITY, not problems, summary + ("; " + "; ".join(problems) if problems else ""), numbers)


def backfill_gate(backfill_id: str, states: list) -> Gate:
    if not states:
        return Gate(BACKFILL, False, f"no ledger for backfill {backfill_id!r}", {"backfill_id": backfill_id})
    try:
        report = backfill_summary(states)
    except ValueError as exc:    # complete, but the ranges do not cover the ring exactly once
        return Gate(BACKFILL, False, f"backfill {backfill_id!r}: every range done but {exc}",
                    {"backfill_id": backfill_id})
    numbers = {"backfill_id": backfill_id, **{k: report[k] for k in (
        "ranges", "by_status", "complete", "rows_read", "rows_written", "rows_rejected")}}
    counts = (f"rows read {report['rows_read']:,}, written {report['rows_written']:,},"
              f" rejected {report['rows_rejected']:,}")
    if report["complete"]:
        return Gate(BACKFILL, True, f"backfill {backfill_id!r}: all {report['ranges']} ranges done; {counts}", numbers)
    return Gate(BACKFILL, False, f"backfill {backfill_id!r} incomplete: {report['by_status']}; {counts}", numbers)


def rejects_digest(trade_ids) -> str:
    """Names one exact set of rejected trades: an acknowledgement covers that set and no other."""
    return hashlib.sha256(",".join(str(t) for t in sorted(trade_ids)).encode()).hexdigest()[:32]


def rejects_gate(rejects: list, opts: GateOptions, acknowledged: dict | None) -> Gate:
    """Rejected trades never reach user_trades; dropping settled_trades needs someone to accept that."""
    by_reason = dict(sorted(Counter(str(r.reason).split(":", 1)[0] for r in rejects).items()))   # by code
    digest = rejects_digest(r.trade_id for r in rejects)
    numbers = {"count": len(rejects), "by_reason": by_reason, "digest": digest}
    found = f"{len(rejects)} rejected trades {by_reason}"
    if not rejects:
        return Gate(REJECTS, True, "no rejected trades", numbers)
    if opts.acknowledge_rejects.strip():
        return Gate(REJECTS, True, f"{found} acknowledged by this run: {opts.acknowledge_rejects.strip()}",
                    numbers)
    if acknowledged and acknowledged.get("digest") == digest:
        return Gate(REJECTS, True, f"{found} acknowledged by {acknowledged['actor']} at {acknowledged['at']}:"
                                   f" {acknowledged['reason']}", numbers)
    before = (f" (the acknowledgement by {acknowledged['actor']} at {acknowledged['at']} covered"
              f" {acknowledged.get('count')} other rejects)" if acknowledged else "")
    return Gate(REJECTS, False, f"{found} not acknowledged{before}: they are in no user_trades row, and after"
                                " the drop only rejected_trades and the archive hold them; give"
                                " acknowledge_rejects (why that is acceptable)", numbers)


# --- reading the state ---------------------------------------------------------------------------
def evaluate(session: Session, config: Config, opts: GateOptions, *, at: datetime | None = None) -> GateReport:
    """Every gate, read from the database now (or at `at`, for the date a gate will pass)."""
    flags = Flags(session, config)
    return gate_report(session, config, opts, at=at or clock.now(),
                       verify=phases.State(session, config).phase(phases.VERIFY),
                       read_path=flags.get(READ_PATH, serial=True), dual_write=flags.get(DUAL_WRITE, serial=True),
                       ledger=Ledger(session, config, opts.backfill_id).load())


def gate_report(session: Session, config: Config, opts: GateOptions, *, at: datetime,
                verify: phases.Phase | None, read_path: Flag, dual_write: Flag, ledger: list[RangeState]) -> GateReport:
    """Every gate, from the phase, flags and ledger the caller read (the status page reads them once
    for its own figures too) and the parity runs and rejects read here."""
    ks, cl = config.keyspace, config.read_cl
    runs = list(session.execute(prepared(session, parity_select_recent(ks), consistency=cl),
                                (opts.parity_runs,)))
    rejects = list(session.execute(prepared(session, rejects_select_ids(ks), consistency=cl)))
    return GateReport(ks, at, (
        order_gate(verify),
        read_path_gate(read_path, opts, at),
        writer_gate(dual_write),
        parity_gate(runs, opts, at),
        backfill_gate(opts.backfill_id, ledger),
        rejects_gate(rejects, opts, last_acknowledgement(session, config) if rejects else None),
    ))


def last_acknowledgement(session: Session, config: Config) -> dict | None:
    """The newest 'rejects acknowledged' audit entry, so scheduled runs see a manual run's answer."""
    for row in phases.State(session, config).audit_log(AUDIT_SCAN):
        if row.phase == phases.CLEANUP and row.action == ACK_REJECTS:
            details = json.loads(row.details or "{}")
            return {**details, "actor": row.actor, "reason": row.reason, "at": f"{row.at:%Y-%m-%d %H:%M} UTC"}
    return None


def record_overrides(session: Session, config: Config, report: GateReport, opts: GateOptions, *,
                     actor: str, run_id: str) -> None:
    """Audit what a person asserted to get past a gate: fewer days, accepted rejects."""
    state = phases.State(session, config)
    if opts.min_days < REQUIRED_DAYS:
        state.audit(phases.CLEANUP, READ_OVERRIDE, actor=actor, reason=opts.override_reason.strip(),
                    details={"run_id": run_id, "min_days": opts.min_days, "required": REQUIRED_DAYS,
                             "gate": report.gate(READS).detail})
    rejects = report.gate(REJECTS).numbers
    if opts.acknowledge_rejects.strip() and rejects["count"]:
        state.audit(phases.CLEANUP, ACK_REJECTS, actor=actor, reason=opts.acknowledge_rejects.strip(),
                    details={"run_id": run_id, **rejects})
