"""Phase records, the order guard, and the audit log of who did what, when and why."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from cassandra.cluster import Session

from trade_migration.core import metrics
from trade_migration.core.clock import now
from trade_migration.core.config import Config
from trade_migration.core.errors import PhaseOrderError
from trade_migration.core.prepared import prepared
from trade_migration.statements.audit import audit_insert, audit_select
from trade_migration.statements.phases import phase_select, phase_upsert

CREATE_TABLE, DUAL_WRITE, READ_PATH, BACKFILL, VERIFY, CLEANUP = (
    "create_table", "dual_write", "read_path", "backfill", "verify", "cleanup")
# What each phase needs completed before it may start.
REQUIRES = {
    CREATE_TABLE: (),
    DUAL_WRITE: (CREATE_TABLE,),
    READ_PATH: (CREATE_TABLE,),
    BACKFILL: (CREATE_TABLE, DUAL_WRITE),
    VERIFY: (BACKFILL,),
    CLEANUP: (VERIFY,),
}
RUNNING, COMPLETED, FAILED = "running", "completed", "failed"


@dataclass
class Phase:
    phase: str
    status: str | None
    run_id: str | None
    actor: str | None
    started_at: datetime | None
    finished_at: datetime | None
    details: dict


class State:
    def __init__(self, session: Session, config: Config):
        self.session, self.ks, self.cl = session, config.keyspace, config.write_cl

    def _stmt(self, cql: str):
        return prepared(self.session, cql, consistency=self.cl)

    def phase(self, name: str) -> Phase | None:
        row = self.session.execute(self._stmt(phase_select(self.ks)), (name,)).one()
        return Phase(**row._asdict()) if row else None

    def phases(self) -> dict[str, Phase]:
        rows = self.session.execute(self._stmt(phase_select(self.ks, every=True)))
        return {r.phase: Phase(**{**r._asdict(), "details": dict(r.details or {})}) for r in rows}

    def require(self, name: str) -> None:
        """Raise PhaseOrderError naming every phase `name` still waits for."""
        done = {p for p, rec in self.phases().items() if rec.status == COMPLETED}
        missing = [p for p in REQUIRES[name] if p not in done]
        if missing:
            raise PhaseOrderError(f"phase {name!r} cannot start: {', '.join(missing)} not completed yet"
                                  f" (run user_trades_{missing[0]} first)")

    def mark(self, name: str, status: str, *, run_id: str, actor: str, reason: str = "",
             details: dict | None = None) -> None:
        """Record a phase transition and write it to the audit log."""
        prev = self.phase(name)
        started = now() if status == RUNNING or prev is None else prev.started_at
        finished = now() if status in (COMPLETED, FAILED) else None
        self.session.execute(self._stmt(phase_upsert(self.ks)),
                             (status, run_id, actor, started, finished,
                              {k: str(v) for k, v in (details or {}).items()}, name))
        self.audit(name, status, actor=actor, reason=reason, details={"run_id": run_id, **(details or {})})
        metrics.incr(f"phase.{name}.{status}")

    def fail_unfinished(self, name: str, *, run_id: str, actor: str) -> bool:
        """Record `name` failed if run `run_id` left it running (a task failed for good); True if so.

        Otherwise the migration state would show the phase running until the next attempt."""
        rec = self.phase(name)
        if rec is None or rec.status != RUNNING or rec.run_id != run_id:
            return False
        self.mark(name, FAILED, run_id=run_id, actor=actor, reason="a task of the run failed; see its log",
                  details=dict(rec.details or {}))
        return True

    def audit(self, phase: str, action: str, *, actor: str, reason: str = "", details: dict | None = None) -> None:
        stmt = prepared(self.session, audit_insert(self.ks), consistency=self.cl, idempotent=False)
        self.session.execute(stmt,
                             (phase, action, actor, reason, json.dumps(details or {}, default=str, sort_keys=True)))

    def audit_log(self, limit: int = 100) -> list:
        return list(self.session.execute(self._stmt(audit_select(self.ks)), (limit,)))


def fail_unfinished(session: Session, config: Config, name: str, *, run_id: str, actor: str) -> bool:
    """After a run that failed for good (the DAG's teardown, the command line's error path): record
    `name` failed if that run left it running; True if so."""
    return State(session, config).fail_unfinished(name, run_id=run_id, actor=actor)
