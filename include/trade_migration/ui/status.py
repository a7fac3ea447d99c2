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
from trade_migration.state import phases
from trade_migration.state.flags import DUAL_WRITE, READ_PATH, Flags
from trade_migration.state.ledger import DONE, Ledger

PHASE_ORDER = tuple(phases.REQUIRES)
SLOWEST = 10          # slowest done ranges listed
FAILED_LISTED = 20    # failed ranges listed (all are counted)


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


def backfill_progress(backfill_id: str, states: list, *, slowest: int = SLOWEST,
                      failed: int = FAILED_LISTED) -> dict:
    """summary.backfill_summary, with the failed list capped (a bad night can fail thousands)."""
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


def migration_status(session: Session, config: Config, *, backfill_id: str = "main",
                     options: gates.GateOptions | None = None, at: datetime | None = None) -> dict:
    """The page's data: phases, flags, backfill progress, parity runs, cleanup gates."""
    at = at or now()
    opts = options or gates.GateOptions(backfill_id=identifier(backfill_id, what="backfill_id"))
    ks = config.keyspace
    records = phases.State(session, config).phases()
    flags = Flags(session, config).all()
    states = Ledger(session, config, opts.backfill_id).load()
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
        "backfill": backfill_progress(opts.backfill_id, states),
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
