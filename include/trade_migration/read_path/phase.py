"""Phase 3, read_path: compare and time both read paths, then move the gateway's reads.

The phase's rules live here: the order guard; a rollback to settled_trades needs no comparison;
user_trades needs a clean shadow comparison or an audited override; what each flag value means
for the phase. Comparison and timing are kept in the audit log.
"""
from __future__ import annotations

from cassandra.cluster import Session

from trade_migration.core.config import Config
from trade_migration.read_path import latency, shadow
from trade_migration.read_path.paths import ReadPaths, sample_pairs
from trade_migration.state import phases
from trade_migration.state.flags import DEFAULTS, PHASE_STATUS, READ_PATH, Flags

SHADOW_COMPARE, LATENCY_BENCHMARK, SHADOW_OVERRIDE = "shadow_compare", "latency_benchmark", "shadow_override"


def start(session: Session, config: Config, value: str) -> bool:
    """The order guard; True if the switch needs the comparison first (anything but a rollback)."""
    phases.State(session, config).require(phases.READ_PATH)
    return value != DEFAULTS[READ_PATH]


def _sample(session: Session, config: Config, sample_users: int, seed: int) -> tuple[ReadPaths, list]:
    paths = ReadPaths(session, config)
    return paths, sample_pairs(session, config, sample_users, seed=seed, symbols=paths.symbol_ids)


def compare(session: Session, config: Config, *, actor: str, reason: str, sample_users: int, page_size: int,
            seed: int) -> tuple[dict, str]:
    """Both paths for the same seeded users, audited; (summary, the printable report)."""
    paths, pairs = _sample(session, config, sample_users, seed)
    report = shadow.shadow_compare(paths, pairs, limit=page_size)
    summary = report.summary()
    phases.State(session, config).audit(phases.READ_PATH, SHADOW_COMPARE, actor=actor, reason=reason,
                                        details={"seed": seed, **summary})
    return summary, report.text()


def benchmark(session: Session, config: Config, *, actor: str, reason: str, sample_users: int, page_size: int,
              seed: int) -> tuple[dict, str]:
    """p50/p99 of both paths, cold and warm, audited; (report, the printable table)."""
    paths, pairs = _sample(session, config, sample_users, seed)
    report = latency.benchmark(paths, pairs, limit=page_size)
    phases.State(session, config).audit(phases.READ_PATH, LATENCY_BENCHMARK, actor=actor, reason=reason,
                                        details=report)
    return report, latency.format_benchmark(report)


def switch(session: Session, config: Config, value: str, *, compared: dict | None, override_reason: str,
           run_id: str, actor: str, reason: str) -> dict:
    """Compare-and-set read_path to `value` and record what it means for the phase.

    `compared` is this run's shadow summary (None when none ran); user_trades needs it clean,
    or an override_reason, which is audited."""
    state = phases.State(session, config)
    override = override_reason.strip()
    if value == "user_trades":
        shadow.require_clean(compared, override_reason=override)
        if override:
            state.audit(phases.READ_PATH, SHADOW_OVERRIDE, actor=actor, reason=override)
    flag = Flags(session, config).set(READ_PATH, value, actor=actor, reason=reason)
    state.mark(phases.READ_PATH, PHASE_STATUS[(READ_PATH, value)], run_id=run_id, actor=actor, reason=reason,
               details={"read_path": value, "flag_version": flag.version})
    return {"read_path": flag.value, "version": flag.version}
