"""Where the migration stands, in one dict: what the operators' "Trade migration" page shows.

Everything is read from the state tables through the modules that own them (phases, flags,
ledger, cleanup), each table once: the ledger, thousands of rows on a large cluster, is loaded
a single time and serves both the progress figures and the backfill gate. The gates are
gates.gate_report, fed what was read here (gates.evaluate would load the ledger again);
tests/integration/test_status.py checks they agree with gates.evaluate.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from cassandra.cluster import Session

from trade_migration.backfill.summary import backfill_summary
from trade_migration.cleanup import gates
from trade_migration.cleanup.drop import table_exists
from trade_migration.core.clock import now, utc
from trade_migration.core.config import LEGACY_TABLE, Config, identifier
from trade_migration.core.settings import STALL_AFTER_S
from trade_migration.core.tokens import TokenRange
from trade_migration.state import phases
from trade_migration.state.flags import DUAL_WRITE, READ_PATH, Flags
from trade_migration.state.ledger import DONE, FAILED, Ledger, RangeState, ledger_ids
from trade_migration.ui import progress

PHASE_ORDER = tuple(phases.REQUIRES)
SLOWEST = 10          # slowest done ranges listed
FAILED_LISTED = 20    # failed ranges listed (all are counted)
AUDIT_SHOWN = 10      # newest audit entries shown


def phase_rows(records: dict[str, phases.Phase]) -> list[dict]:
    """Every phase in running order, 'not started' ones included."""
    out = []
    for name in PHASE_ORDER:
        rec = records.get(name)
        out.append({"phase": name, "status": rec.status if rec else None,
                    "run_id": rec.run_id if rec else None, "actor": rec.actor if rec else None,
                    "started_at": utc(rec.started_at) if rec else None,
                    "finished_at": utc(rec.finished_at) if rec else None})
    return out


def backfill_progress(backfill_id: str, states: list, *, at: datetime | None = None, stall_after_s: float = 900.0,
                      slowest: int = SLOWEST, failed: int = FAILED_LISTED) -> dict:
    """summary.backfill_summary with the failed list capped (a bad night can fail thousands), each
    failed range with its parent's label if it was cut from one; the rate, ETA and stalled ranges."""
    at = at or now()
    live = {**progress.rate_and_eta(states, at), "stalled": progress.stalled_ranges(states, at, stall_after_s)}
    return {**_summary(backfill_id, states, slowest=slowest, failed=failed), **live,
            "failed": _with_parents(states, failed)}


def _with_parents(states: list[RangeState], limit: int) -> list[dict]:
    """Failed ranges; one cut from a timed-out range names the label that range had before the cut
    (what an engineer may have copied; backfill.plan.select takes it for all its pieces)."""
    ends: dict[int, int] = {}
    for s in states:
        if s.parent_start is not None:
            ends[s.parent_start] = max(ends.get(s.parent_start, s.range_end), s.range_end)
    parent = {p: TokenRange(p, end).label for p, end in ends.items()}
    return [{"range": s.label, "error": s.last_error, "attempts": s.attempts,
             "parent": parent.get(s.parent_start if s.parent_start is not None else s.range_start)}
            for s in states if s.status == FAILED][:limit]


def _summary(backfill_id: str, states: list, *, slowest: int, failed: int) -> dict:
    try:
        report = backfill_summary(states, slowest=slowest)
    except ValueError as exc:        # every range done, yet the ranges do not cover the ring once
        return {"backfill_id": backfill_id, "ranges": len(states), "by_status": {DONE: len(states)},
                "complete": False, "rows_read": sum(s.rows_read for s in states),
                "rows_written": sum(s.rows_written for s in states),
                "rows_rejected": sum(s.rows_rejected for s in states),
                "attempts": sum(s.attempts for s in states), "slowest": [], "failed": [],
                "done_share": 1.0, "failed_total": 0, "coverage_error": str(exc)}
    done = report["by_status"].get(DONE, 0)
    return {"backfill_id": backfill_id, **report,
            "by_status": dict(sorted(report["by_status"].items())),
            "done_share": round(done / len(states), 4) if states else 0.0,
            "failed": report["failed"][:failed], "failed_total": len(report["failed"]),
            "coverage_error": None}


def parity_history(gate: gates.Gate) -> list[dict]:
    """The runs the parity gate judged, oldest first (for the chart)."""
    return list(reversed(gate.numbers.get("history", [])))


def days_remaining(gate: gates.Gate, at: datetime) -> float | None:
    """Days until the read_path gate passes by time alone; 0 once it has, None if reads not switched."""
    if gate.passed:
        return 0.0
    if gate.numbers.get("value") != "user_trades" or gate.passes_at is None:
        return None
    return round(max(timedelta(0), gate.passes_at - at).total_seconds() / 86400, 1)


def chosen_ledger(records: dict[str, phases.Phase], ledgers: list[str], asked: str | None) -> str:
    """The ledger asked for; else the one the latest backfill run worked on; else main."""
    if asked is not None:
        return identifier(asked, what="backfill_id")
    rec = records.get(phases.BACKFILL)
    latest = (rec.details or {}).get("backfill_id") if rec else None
    return latest if latest in ledgers else ("main" if "main" in ledgers or not ledgers else ledgers[0])


def migration_status(session: Session, config: Config, *, backfill_id: str | None = None,
                     options: gates.GateOptions | None = None, at: datetime | None = None,
                     audit_entries: int = AUDIT_SHOWN) -> dict:
    """The page's data: phases, flags, every ledger's id and one ledger's progress, parity runs,
    cleanup gates, the last audit entries."""
    at = at or now()
    ks = config.keyspace
    state = phases.State(session, config)
    records = state.phases()
    ledgers = ledger_ids(session, config)
    chosen = chosen_ledger(records, ledgers, options.backfill_id if options else backfill_id)
    opts = options or gates.GateOptions(backfill_id=chosen)
    flags = Flags(session, config).all()
    states = Ledger(session, config, opts.backfill_id).load()
    stall_after_s = float(STALL_AFTER_S.get())
    report = gates.gate_report(session, config, opts, at=at, verify=records.get(phases.VERIFY),
                               read_path=flags[READ_PATH], dual_write=flags[DUAL_WRITE], ledger=states)
    done = records.get(phases.CLEANUP)
    legacy_exists = table_exists(session, ks, LEGACY_TABLE)
    reads = report.gate(gates.READS)
    return {
        "keyspace": ks,
        "checked_at": at,
        "phases": phase_rows(records),
        "flags": {name: {"value": f.value, "version": f.version, "changed_at": f.changed_at,
                         "changed_by": f.changed_by, "reason": f.reason} for name, f in flags.items()},
        "ledgers": ledgers,
        "stall_after_s": stall_after_s,
        "backfill": backfill_progress(opts.backfill_id, states, at=at, stall_after_s=stall_after_s),
        "audit": [{"at": utc(r.at), "phase": r.phase, "action": r.action, "actor": r.actor, "reason": r.reason}
                  for r in state.audit_log(audit_entries)],
        "parity": parity_history(report.gate(gates.PARITY)),
        "cleanup": {
            "passed": report.passed,
            "finished": bool(done and done.status == phases.COMPLETED and not legacy_exists),
            "legacy_table_exists": legacy_exists,
            "gates": [{"name": g.name, "passed": g.passed, "detail": g.detail} for g in report.gates],
            "min_days": opts.min_days,
            "days_remaining": days_remaining(reads, at),
            "passes_at": reads.passes_at,
        },
    }
