"""A verification run of user_trades against settled_trades, stage by stage.

plan -> heal (dual writes that failed, finished) -> survey (per batch: counts, and in a full run
digests) -> narrow (where rows must be looked at one by one) -> inspect (per batch: row parity both
ways, recheck, repair) -> resolve (confirmed orphans deleted) -> conclude (totals, status) ->
record (the parity_runs row). Every stage takes and returns JSON-ready
values, so the DAG maps them over token-range batches and run_all() chains them in one process.

A full run compares digests first and looks rows up only where they differ: a key lookup costs
ten to thirty times a scanned row, and looking up every row would make verification several
times slower than the backfill it checks. A sampled run does the same over a seeded slice of
history holding about sample_share of the trades, plus every trade settled in the run's last
recent_hours (24 unless told; 0: none): both tables' rows settled in those windows, which the
node picks out of each range (verify/windows.py).
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cassandra.cluster import Session

from trade_migration.core import clock
from trade_migration.core.config import Config
from trade_migration.core.errors import ConfigError
from trade_migration.core.prepared import prepared
from trade_migration.core.settings import COUNTS_IN_FLIGHT, FETCH_SIZE, IN_FLIGHT, PAGE_TIMEOUT_S
from trade_migration.core.splits import labelled_batches, ring_ranges
from trade_migration.dual_write import healer
from trade_migration.state.flags import DUAL_WRITE, NEW_ONLY, RETIRED, Flags
from trade_migration.statements.parity_runs import parity_insert
from trade_migration.verify.counts import whole_table_counts
from trade_migration.verify.diffs import KINDS, ORPHAN
from trade_migration.verify.digests import Digest, buckets_of
from trade_migration.verify.parity_run import (
    ALL,
    CELLS,
    FULL,
    MAX_RECENT_HOURS,
    MAX_RESOLVED,
    MODES,
    RECENT_HOURS,
    Run,
    Scope,
    Tally,
    derive_seed,
    merge_tallies,
)
from trade_migration.verify.rejects import TRADE_ID
from trade_migration.verify.repair import AT_RUN_START, AT_SOURCE_TIME
from trade_migration.verify.resolve import NOT_RESOLVED, identity
from trade_migration.verify.resolve import resolve as resolve_orphans
from trade_migration.verify.row_parity import inspect as inspect_rows
from trade_migration.verify.survey import ACTUAL_SOURCE, ACTUAL_TARGET, EXPECTED_SOURCE, EXPECTED_TARGET
from trade_migration.verify.survey import survey as survey_ranges
from trade_migration.verify.windows import sample_windows

log = logging.getLogger(__name__)
CLEAN, BROKEN, REPAIRED = "clean", "broken", "repaired"
HEALED = ("pending", "healed", "left")   # the healer's counts a run keeps (records of failed dual writes)


@dataclass(frozen=True)
class Options:
    """How hard a task works the cluster; the run's facts live in Run."""
    fetch_size: int = FETCH_SIZE
    max_in_flight: int = IN_FLIGHT     # lookups in flight
    count_concurrency: int = COUNTS_IN_FLIGHT
    scan_threads: int = 4              # ranges scanned at once by one task
    page_timeout: float = PAGE_TIMEOUT_S


# --- plan ---------------------------------------------------------------------------------------
def plan_run(session: Session, config: Config, *, run_id: str, mode: str, seed: int | None = None,
             sample_share: float = 0.05, recent_hours: float = RECENT_HOURS, splits: int | None = None,
             repair: bool = False, resolve_orphans: bool = False, resolve_limit: int = MAX_RESOLVED,
             narrow: bool = True, report_cap: int = 10_000, recheck_delay: float = 2.0,
             started_at: datetime | None = None) -> Run:
    """Fix the run's ranges, sample and start time; nothing is read from the tables yet."""
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
    if not 0 <= recent_hours <= MAX_RECENT_HOURS:
        raise ConfigError(f"recent_hours must be between 0 and {MAX_RECENT_HOURS:g}, got {recent_hours}")
    if not 0 < sample_share <= 1:
        raise ConfigError(f"sample_share must be in (0, 1], got {sample_share}")
    ranges = tuple(ring_ranges(session, config.keyspace, splits))
    seed = derive_seed(run_id) if seed is None else int(seed)
    started = started_at or clock.now()
    windows = () if mode == FULL else sample_windows(
        session, config, share=sample_share, seed=seed,
        recent_from=started - timedelta(hours=recent_hours) if recent_hours else None)
    return Run(run_id=run_id, started_us=clock.micros(started), mode=mode, seed=seed,
               sample_share=sample_share, recent_hours=recent_hours, ranges=ranges, windows=windows, repair=repair,
               resolve_orphans=resolve_orphans, resolve_limit=resolve_limit, narrow=narrow,
               report_cap=report_cap, recheck_delay=recheck_delay, **writer_since(session, config))


def writer_since(session: Session, config: Config) -> dict[str, int]:
    """When the dual_write flag took its value, as the Run keeps it. While it is on,
    dual_write_since_us: a difference in a trade written later points at the settlement service's
    dual write, an older one at the backfill. While it is new_only (or retired), new_only_since_us:
    a user_trades row written since may have no settled trade, as settled_trades is no longer written."""
    flag = Flags(session, config).get(DUAL_WRITE)
    if flag.changed_at is None:
        return {}
    if flag.value == "on":
        return {"dual_write_since_us": clock.micros(flag.changed_at)}
    if flag.value in (NEW_ONLY, RETIRED):
        return {"new_only_since_us": clock.micros(flag.changed_at)}
    return {}


def survey_indexes(run: Run) -> list[int]:
    """Every range: a full run surveys the whole ring, a sampled one its windows in every range."""
    return list(range(len(run.ranges)))


def batches(run: Run, indexes: list[int], count: int) -> list[dict]:
    """JSON-ready batches of range indexes for mapped tasks, labelled by their token span."""
    by_range = {run.ranges[i]: i for i in indexes}
    return labelled_batches(list(by_range), count, seed=str(run.seed), encode=by_range.__getitem__)


# --- heal / survey / narrow / inspect / resolve --------------------------------------------------
def heal(session: Session, config: Config, run: Run) -> dict | None:
    """Before the survey, in a run that repairs: the dual writes that failed and were recorded,
    finished by the healer (dual_write/healer.py), so the survey finds them in place; its
    summary, or None when the run does not repair."""
    return healer.heal(session, config) if run.repair else None


def survey(session: Session, config: Config, run: Run, indexes: list[int], options: Options = Options()) -> dict:
    return survey_ranges(session, config, run, indexes, fetch_size=options.fetch_size,
                         count_concurrency=options.count_concurrency, scan_threads=options.scan_threads,
                         page_timeout=options.page_timeout)


def narrow(run: Run, surveys: list[dict]) -> Scope:
    """Which ranges the row-by-row check reads, and how (in a sampled run, only rows in its windows)."""
    if not run.narrow:
        every = {i: ALL for i in range(len(run.ranges))}
        return Scope(forward=every, reverse=dict(every))
    d = {k: Digest() for k in (EXPECTED_TARGET, EXPECTED_SOURCE, ACTUAL_TARGET, ACTUAL_SOURCE)}
    for s in surveys:
        for k, data in (s.get("digests") or {}).items():
            d[k].merge(Digest.from_json(data))
    dirty_source = d[EXPECTED_SOURCE].differing(d[ACTUAL_SOURCE])
    dirty_target = d[EXPECTED_TARGET].differing(d[ACTUAL_TARGET])
    if not dirty_source and not dirty_target:
        return Scope()
    scope = Scope()
    every = frozenset(range(scope.buckets))
    # A difference always shows on both sides; should one side agree by a hash coincidence,
    # search all of it rather than miss the difference.
    dirty_source, dirty_target = frozenset(dirty_source or every), frozenset(dirty_target or every)
    forward = {i: CELLS for i, r in enumerate(run.ranges) if any(b in dirty_source for b in buckets_of(r))}
    reverse = {i: CELLS for i, r in enumerate(run.ranges) if any(b in dirty_target for b in buckets_of(r))}
    log.info("digests differ in %d source and %d target buckets: %d + %d ranges to look at row by row",
             len(dirty_source), len(dirty_target), len(forward), len(reverse))
    return Scope(forward, reverse, dirty_source, dirty_target)


def inspect(session: Session, config: Config, run: Run, scope: Scope, indexes: list[int],
            options: Options = Options()) -> dict:
    checker = inspect_rows(session, config, run, scope, indexes, scan_threads=options.scan_threads,
                           fetch_size=options.fetch_size, concurrency=options.max_in_flight,
                           page_timeout=options.page_timeout)
    return {
        "tallies": {str(i): t.to_json() for i, t in checker.tallies.items()},
        "diffs": [d.to_json() for d in checker.diffs[:run.report_cap]],
        "rejects": checker.rejects.sorted(),
        "rejected_by_reason": dict(checker.rejects.by_reason),
        # what the resolve deletes: all of them, unless more than it may delete in the whole run
        "orphans": [d.to_json() for d in checker.diffs if d.kind == ORPHAN][:run.resolve_limit]
        if run.resolve_orphans else [],
    }


def resolve(session: Session, config: Config, run: Run, inspections: list[dict], *, actor: str) -> dict | None:
    """After every inspection, in a run that resolves orphans: the confirmed orphans of the whole
    run deleted (verify/resolve.py), or none when there are more than its limit."""
    if not run.resolve_orphans:
        return None
    counted = sum(t["orphans"] for p in inspections for t in p["tallies"].values())
    return resolve_orphans(session, config, run, [d for p in inspections for d in p["orphans"]], counted,
                           actor=actor)


# --- conclude / record --------------------------------------------------------------------------
@dataclass
class Outcome:
    status: str
    tallies: dict[int, Tally]
    total: Tally
    diffs: list[dict]              # capped at the run's report_cap, ordered
    rejects: list                  # [trade_id, range, reason] of the report_cap lowest trade ids (verify/rejects.py)
    rejected_by_reason: dict
    counts: dict | None            # whole-table counts (full runs)
    duration_s: float
    repaired_how: dict = field(default_factory=dict)
    resolved_how: dict = field(default_factory=dict)
    resolve_refused: str = ""
    healing: dict | None = None    # the healer's summary (None: the run did not heal)

    @property
    def rows_checked(self) -> int:
        return self.total.source_rows + self.total.target_rows

    @property
    def healed(self) -> dict:
        """The healer's counts a run keeps, each None when the run did not heal."""
        return {k: (self.healing or {}).get(k) for k in HEALED}

    def fixed_anything(self) -> bool:
        return bool(self.healed["healed"] or self.total.repaired or self.total.resolved)

    def summary(self) -> dict:
        t, h = self.total, self.healed
        return {"status": self.status, "rows_checked": self.rows_checked, "source_rows": t.source_rows,
                "target_rows": t.target_rows, "missing": t.missing, "mismatched": t.mismatched,
                "orphans": t.orphans, "new_only": t.new_only, "rejected": t.rejected, "repaired": t.repaired,
                "resolved": t.resolved,
                "healed": h["healed"], "heal_pending": h["pending"], "heal_left": h["left"], "late": t.late,
                "rejected_by_reason": self.rejected_by_reason, "counts": self.counts,
                "repaired_how": self.repaired_how, "resolved_how": self.resolved_how,
                "resolve_refused": self.resolve_refused, "healing": self.healing,
                "duration_s": round(self.duration_s, 3)}


def status_of(total: Tally, repair: bool) -> str:
    """clean: nothing differs; repaired: every missing and mismatched row was rewritten (the run
    repairs) and every orphan resolved; broken: anything else."""
    if total.missing == total.mismatched == total.orphans == 0:
        return CLEAN
    rewritten = total.missing + total.mismatched == (total.repaired if repair else 0)
    return REPAIRED if rewritten and total.resolved == total.orphans else BROKEN


def conclude(run: Run, surveys: list[dict], inspections: list[dict], resolved: dict | None = None,
             healing: dict | None = None, *, finished_at: datetime | None = None) -> Outcome:
    """The run's totals, status and report lines from every stage's JSON."""
    resolved = resolved or {"tallies": {}, "outcomes": [], "refused": ""}
    parts = [*surveys, *inspections]
    tallies = merge_tallies([p["tallies"] for p in parts] + [resolved["tallies"]])
    total = Tally()
    for t in tallies.values():
        total.add(t)
    order = {k: n for n, k in enumerate(KINDS)}
    diffs = sorted((d for p in inspections for d in p["diffs"]),
                   key=lambda d: (order[d["kind"]], d["trade_id"], str(d["user_id"]), str(d["side"])))
    how = {tuple(o[:-1]): o[-1] for o in resolved["outcomes"]}
    for d in diffs:
        if d["kind"] == ORPHAN and run.resolve_orphans:
            d["repair"] = how.get(identity(d), NOT_RESOLVED)
    reasons: Counter = Counter()
    for p in parts:
        reasons.update(p["rejected_by_reason"])
    finished = clock.micros(finished_at or clock.now())
    return Outcome(
        status=status_of(total, run.repair), tallies=tallies, total=total, diffs=diffs[:run.report_cap],
        rejects=sorted((r for p in parts for r in p["rejects"]), key=lambda r: r[TRADE_ID])[:run.report_cap],
        rejected_by_reason=dict(sorted(reasons.items())),
        counts=whole_table_counts(run, total),
        duration_s=max(0.0, (finished - run.started_us) / 1e6),
        repaired_how=dict(Counter(d["repair"] for d in diffs if d["repair"] in (AT_SOURCE_TIME, AT_RUN_START))),
        resolved_how=dict(sorted(Counter(how.values()).items())), resolve_refused=resolved["refused"],
        healing=healing,
    )


def record(session: Session, config: Config, run: Run, outcome: Outcome, report_path: str | None) -> None:
    """The run's parity_runs row: what the cleanup gate reads."""
    t, h = outcome.total, outcome.healed
    stmt = prepared(session, parity_insert(config.keyspace), consistency=config.write_cl)
    session.execute(stmt, (run.started_at, run.run_id, run.mode, run.seed, len(run.ranges),
                           len(run.ranges), outcome.rows_checked, t.missing, t.mismatched, t.orphans,
                           t.rejected, t.repaired, outcome.status, outcome.duration_s, report_path,
                           t.resolved, h["pending"], h["healed"], h["left"]))


def run_all(session: Session, config: Config, run: Run, *, batch_count: int = 1, options: Options = Options(),
            actor: str = "verify") -> Outcome:
    """Every stage in this process, batch after batch (tests, benchmarks, the command line)."""
    healing = heal(session, config, run)
    surveys = [survey(session, config, run, b["ranges"], options)
               for b in batches(run, survey_indexes(run), batch_count)]
    scope = narrow(run, surveys)
    inspections = [inspect(session, config, run, scope, b["ranges"], options)
                   for b in batches(run, scope.indexes, batch_count)]
    return conclude(run, surveys, inspections, resolve(session, config, run, inspections, actor=actor), healing)
