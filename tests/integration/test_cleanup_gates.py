"""The cleanup's gates, archive and drop against the real node.

Each gate is broken on its own and must fail with its numbers while settled_trades stays; the
archive is read back with pandas and compared with the table row for row; the drop happens only
through the dual_write compare-and-set.
"""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from cleanup_state import add_parity_run, prepare, set_flag, settled_rows, utcnow

from trade_migration.archive import layout, store, writer
from trade_migration.cleanup import drop, gates
from trade_migration.core import clock
from trade_migration.core.config import LEGACY_TABLE
from trade_migration.core.errors import ArchiveError, ArchiveMismatch, ConfigError, GatesFailed
from trade_migration.core.model import SETTLED_COLUMNS
from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN, TokenRange, divide
from trade_migration.create_table import schema
from trade_migration.state import phases
from trade_migration.state.flags import DUAL_WRITE, NEW_ONLY, READ_PATH, RETIRED, Flags
from trade_migration.state.ledger import FAILED, Ledger
from trade_migration.statements.rejected_trades import reject_insert
from trade_migration.verify.counts import table_counts

GATES = ["order", "read_path", "writer", "parity", "backfill", "rejects"]


@pytest.fixture
def ready(db, cfg):
    """Every gate passes (rejects acknowledged by the options); returns the generator's plan."""
    return prepare(db, cfg)


ACK = gates.GateOptions(acknowledge_rejects="known bad rows from the 2026 matching-engine bug")


@pytest.fixture
def restore_schema(cluster_session, cfg):
    """Tests that drop settled_trades put the schema back for the next test."""
    yield
    schema.apply(cluster_session, cfg)


def legacy_exists(db, cfg) -> bool:
    return drop.table_exists(db, cfg.keyspace, LEGACY_TABLE)


def audit(db, cfg, action: str) -> list:
    return [r for r in phases.State(db, cfg).audit_log() if r.phase == phases.CLEANUP and r.action == action]


# --- the gates ------------------------------------------------------------------------------------
def test_every_gate_passes_with_its_numbers(db, cfg, ready):
    report = gates.evaluate(db, cfg, ACK)
    assert report.passed, report.text()
    assert [g.name for g in report.gates] == GATES
    rejects = sum(ready.rejects.values())
    assert report.gate("rejects").numbers["count"] == rejects == 8
    assert report.gate("rejects").numbers["by_reason"] == dict(sorted(ready.rejects.items()))
    backfilled = report.gate("backfill").numbers
    assert (backfilled["complete"], backfilled["ranges"], backfilled["rows_read"], backfilled["rows_rejected"]) == (
        True, 1, 2000, rejects)
    assert backfilled["rows_written"] == 2 * (2000 - rejects)
    parity = report.gate("parity").numbers
    assert (parity["runs"], parity["good"], parity["wanted"]) == (7, 7, 7)
    assert report.gate("read_path").numbers["min_days"] == 30
    assert report.gate("writer").detail.startswith("dual_write is 'new_only' since ")
    report.raise_if_failed()   # does not raise


def _not_switched(db, cfg):
    set_flag(db, cfg, READ_PATH, "shadow")


def _writer_still_dual(db, cfg):
    set_flag(db, cfg, DUAL_WRITE, "on")


def _broken_parity_run(db, cfg):
    add_parity_run(db, cfg, utcnow() - timedelta(hours=1), status="broken", run_id="manual__broken", missing=3)


def _stale_parity(db, cfg):
    db.execute(f"TRUNCATE {cfg.keyspace}.parity_runs")
    for night in range(7):
        add_parity_run(db, cfg, utcnow() - timedelta(days=night + 2))


def _too_few_parity_runs(db, cfg):
    db.execute(f"TRUNCATE {cfg.keyspace}.parity_runs")
    for night in range(6):
        add_parity_run(db, cfg, utcnow() - timedelta(days=night, hours=1))


def _range_failed(db, cfg):
    ledger = Ledger(db, cfg, "main")
    rs = ledger.load()[0]
    ledger.finish(rs, FAILED, error="timed out")


def _verify_not_done(db, cfg):
    phases.State(db, cfg).mark(phases.VERIFY, phases.RUNNING, run_id="t", actor="pytest")


BREAKS = {
    "order": (_verify_not_done, "phase verify is running (run user_trades_verify first)"),
    "read_path": (_not_switched, "read_path is 'shadow', not 'user_trades': switch the reads first;"),
    "writer": (_writer_still_dual, "dual_write is 'on': the settlement service still writes settled_trades;"
                                   " set dual_write to 'new_only' first"),
    "parity": (_broken_parity_run, "6 of the last 7 runs clean or repaired"),
    "backfill": (_range_failed, "backfill 'main' incomplete: {'failed': 1}; rows read 2,000, written 3,984,"
                                " rejected 8"),
}


@pytest.mark.parametrize("gate", sorted(BREAKS))
def test_one_broken_gate_fails_alone_names_itself_and_nothing_is_dropped(db, cfg, ready, gate):
    breaker, detail = BREAKS[gate]
    breaker(db, cfg)
    report = gates.evaluate(db, cfg, ACK)
    assert [g.name for g in report.failed] == [gate]
    assert detail in report.gate(gate).detail
    with pytest.raises(GatesFailed, match=f"^cleanup gate\\(s\\) failed: {gate}; nothing was dropped"):
        report.raise_if_failed()
    assert legacy_exists(db, cfg)


def test_parity_lists_every_problem_with_its_numbers(db, cfg, ready):
    _stale_parity(db, cfg)
    gate = gates.evaluate(db, cfg, ACK).gate("parity")
    assert not gate.passed
    assert gate.detail.endswith("; the newest run is 2.0 days old (at most 36 h)")
    _too_few_parity_runs(db, cfg)
    _broken_parity_run(db, cfg)
    gate = gates.evaluate(db, cfg, ACK).gate("parity")
    assert gate.numbers["runs"] == 7 and gate.numbers["good"] == 6
    assert gate.detail.startswith("6 of the last 7 runs clean or repaired, newest ")
    assert gate.detail.endswith("; not clean: manual__broken broken")
    db.execute(f"TRUNCATE {cfg.keyspace}.parity_runs")
    gate = gates.evaluate(db, cfg, ACK).gate("parity")
    assert gate.detail == "0 of the last 0 runs clean or repaired; only 0 parity runs, 7 needed"


def test_repaired_runs_count_as_clean_and_the_run_count_is_a_param(db, cfg, ready):
    add_parity_run(db, cfg, utcnow() - timedelta(minutes=30), status="repaired", repaired=4)
    opts = gates.GateOptions(parity_runs=3, acknowledge_rejects="ok")
    gate = gates.evaluate(db, cfg, opts).gate("parity")
    assert gate.passed and [h["status"] for h in gate.numbers["history"]] == ["repaired", "clean", "clean"]


def test_a_missing_ledger_fails_the_backfill_gate(db, cfg, ready):
    opts = gates.GateOptions(backfill_id="other", acknowledge_rejects="ok")
    gate = gates.evaluate(db, cfg, opts).gate("backfill")
    assert (gate.passed, gate.detail) == (False, "no ledger for backfill 'other'")


def test_a_ledger_with_a_gap_fails_even_when_every_range_is_done(db, cfg, ready):
    ledger = Ledger(db, cfg, "gappy")
    halves = divide(TokenRange(MIN_TOKEN, MAX_TOKEN), 2)
    ledger.plan([halves[0]])
    rs = ledger.load()[0]
    ledger.finish(rs, "done")
    opts = gates.GateOptions(backfill_id="gappy", acknowledge_rejects="ok")
    gate = gates.evaluate(db, cfg, opts).gate("backfill")
    assert not gate.passed
    assert gate.detail == f"backfill 'gappy': every range done but ring not covered past {halves[0].end}"


# --- the 30 days ----------------------------------------------------------------------------------
def test_reads_for_too_few_days_fail_with_the_date_they_pass(db, cfg, ready):
    switched = utcnow() - timedelta(days=12, hours=3)
    set_flag(db, cfg, READ_PATH, "user_trades", at=switched)
    report = gates.evaluate(db, cfg, ACK)
    gate = report.gate("read_path")
    passes = switched + timedelta(days=30)
    assert (gate.passed, gate.passes_at) == (False, passes)
    assert gate.detail == (f"reads on user_trades since {switched:%Y-%m-%d %H:%M} UTC (12.1 days; needs 30);"
                           f" passes on {passes:%Y-%m-%d %H:%M} UTC")
    with pytest.raises(GatesFailed) as err:
        report.raise_if_failed()
    assert str(err.value).splitlines()[0] == (
        f"cleanup gate(s) failed: read_path; nothing was dropped (read_path passes on {passes:%Y-%m-%d %H:%M} UTC)")
    # the same state, looked at on that date: it passes to the millisecond, and not one before
    assert gates.evaluate(db, cfg, ACK, at=passes).gate("read_path").passed
    assert not gates.evaluate(db, cfg, ACK, at=passes - timedelta(milliseconds=1)).gate("read_path").passed
    assert legacy_exists(db, cfg)


def test_fewer_days_need_an_override_reason_which_is_audited(db, cfg, ready):
    set_flag(db, cfg, READ_PATH, "user_trades", at=utcnow() - timedelta(days=12))
    with pytest.raises(ConfigError, match="min_days 10 is below 30: give override_reason"):
        gates.GateOptions(min_days=10)
    opts = gates.GateOptions(min_days=10, override_reason="regulator deadline; 12 clean nights",
                               acknowledge_rejects="ok")
    report = gates.evaluate(db, cfg, opts)
    assert report.passed, report.text()
    assert report.gate("read_path").detail.endswith(
        "; 10 days instead of 30 by override: regulator deadline; 12 clean nights")
    gates.record_overrides(db, cfg, report, opts, actor="alice", run_id="manual__1")
    [entry] = audit(db, cfg, gates.READ_OVERRIDE)
    assert (entry.actor, entry.reason) == ("alice", "regulator deadline; 12 clean nights")
    assert json.loads(entry.details)["min_days"] == 10


# --- the rejects ----------------------------------------------------------------------------------
def test_rejects_need_an_acknowledgement_that_later_runs_reuse_until_the_rejects_change(db, cfg, ready):
    gate = gates.evaluate(db, cfg, gates.GateOptions()).gate("rejects")
    assert not gate.passed
    assert gate.detail.startswith("8 rejected trades {")
    assert gate.detail.endswith("not acknowledged: they are in no user_trades row, and after the drop only"
                                " rejected_trades and the archive hold them; give acknowledge_rejects (why"
                                " that is acceptable)")

    opts = gates.GateOptions(acknowledge_rejects="all eight are test orders")
    report = gates.evaluate(db, cfg, opts)
    assert report.passed
    gates.record_overrides(db, cfg, report, opts, actor="bob", run_id="manual__2")
    [entry] = audit(db, cfg, gates.ACK_REJECTS)
    assert (entry.actor, entry.reason, json.loads(entry.details)["count"]) == ("bob", "all eight are test orders", 8)

    # a scheduled run (no Param) sees bob's acknowledgement ...
    gate = gates.evaluate(db, cfg, gates.GateOptions()).gate("rejects")
    assert gate.passed and " acknowledged by bob at " in gate.detail

    # ... until a new reject appears
    db.execute(db.prepare(reject_insert(cfg.keyspace)),
               (123, 0, "unknown_symbol", {"symbol": "X"}, "writer", utcnow()))
    gate = gates.evaluate(db, cfg, gates.GateOptions()).gate("rejects")
    assert not gate.passed
    assert "9 rejected trades" in gate.detail and "(the acknowledgement by bob at " in gate.detail
    assert "covered 8 other rejects)" in gate.detail


def test_no_rejects_need_no_acknowledgement(db, cfg, ready):
    db.execute(f"TRUNCATE {cfg.keyspace}.rejected_trades")
    gate = gates.evaluate(db, cfg, gates.GateOptions()).gate("rejects")
    assert (gate.passed, gate.detail, gate.numbers["count"]) == (True, "no rejected trades", 0)


# --- the archive ----------------------------------------------------------------------------------
def test_the_archive_holds_exactly_the_table(db, cfg, ready, tmp_path):
    where = store.open_store(store.run_url(store.archive_url(str(tmp_path)), "manual__2026-11-24T10:00:00+00:00"))
    assert where.path == str(tmp_path / "manual__2026-11-24T10_00_00_00_00")
    ranges = divide(TokenRange(MIN_TOKEN, MAX_TOKEN), 16)
    manifest = writer.write_archive(db, cfg, where, run_id="manual__x", ranges=ranges,
                                    options=writer.ArchiveOptions(parallelism=4, fetch_size=100, batch_rows=50))
    assert (manifest["rows"], manifest["counted"], len(manifest["ranges"])) == (2000, 2000, 16)
    assert [p["rows"] for p in manifest["ranges"]] == [p["count"] for p in manifest["ranges"]]
    files = sorted(p.name for p in Path(where.path).glob("*.parquet"))
    assert files == sorted(p["object"] for p in manifest["ranges"] if p["object"]) and manifest["objects"] == len(files)
    assert layout.read_manifest(where) == manifest

    frame = pd.concat([pd.read_parquet(Path(where.path) / f) for f in files], ignore_index=True)
    assert list(frame.columns) == [*SETTLED_COLUMNS, "write_time", "expires_at"]
    assert len(frame) == 2000 and frame["trade_id"].is_unique and frame["expires_at"].isna().all()

    def value(v):
        if v is None or v is pd.NaT or (isinstance(v, float) and v != v):
            return None
        if isinstance(v, pd.Timestamp):
            return v.tz_convert("UTC").tz_localize(None).to_pydatetime()
        return int(v) if isinstance(v, float) else v

    archived = {tuple(value(v) for v in row[:-1]) for row in frame.astype(object).itertuples(index=False)}
    assert archived == settled_rows(db, cfg)


def test_the_archive_refuses_rows_written_after_the_writer_stopped(db, cfg, ready, tmp_path):
    newest = max(r[-1] for r in settled_rows(db, cfg))
    stopped = clock.from_micros(newest - 1_000_000)
    where = store.open_store(store.archive_url(str(tmp_path / "run")))
    with pytest.raises(ArchiveError, match="it still writes settled_trades; nothing may be dropped"):
        writer.write_archive(db, cfg, where, run_id="r", written_before=stopped)
    assert not (tmp_path / "run" / layout.MANIFEST).exists()       # objects without a manifest: incomplete
    with pytest.raises(ArchiveMismatch, match="has no manifest.json: it is incomplete"):
        layout.read_manifest(where)
    writer.write_archive(db, cfg, where, run_id="r", written_before=clock.from_micros(newest))
    assert layout.read_manifest(where)["rows"] == 2000


def test_table_counts_count_both_tables_by_range(db, cfg, ready):
    counts = table_counts(db, cfg)
    assert (counts["settled_trades"], counts["user_trades"]) == (2000, 2 * (2000 - 8))
    assert counts["ranges"] >= 1


# --- the drop -------------------------------------------------------------------------------------
def test_the_drop_retires_dual_write_then_drops_and_is_audited(db, cfg, ready, restore_schema):
    before = Flags(db, cfg).get(DUAL_WRITE)
    out = drop.drop_legacy(db, cfg, actor="carol", run_id="manual__9", details={"archive": "x"})
    assert out == {"table": f"{cfg.keyspace}.settled_trades", "existed": True, "dual_write": RETIRED,
                   "flag_version": before.version + 1}
    assert not legacy_exists(db, cfg)
    flag = Flags(db, cfg).get(DUAL_WRITE)
    assert (flag.value, flag.changed_by, flag.reason) == (
        RETIRED, "carol", "settled_trades dropped by cleanup run manual__9")
    [entry] = audit(db, cfg, drop.DROPPED)
    assert (entry.actor, json.loads(entry.details)["run_id"]) == ("carol", "manual__9")
    assert db.execute(f"SELECT count(*) FROM {cfg.keyspace}.user_trades").one()[0] == 2 * (2000 - 8)

    again = drop.drop_legacy(db, cfg, actor="carol", run_id="manual__9", details={})   # a retry: harmless
    assert (again["existed"], again["flag_version"]) == (False, before.version + 1)

    phases.State(db, cfg).mark(phases.CLEANUP, phases.COMPLETED, run_id="manual__9", actor="carol")
    assert drop.finished(db, cfg).run_id == "manual__9"


def test_the_drop_refuses_when_dual_write_moved_back(db, cfg, ready):
    set_flag(db, cfg, DUAL_WRITE, "on")
    with pytest.raises(GatesFailed,
                       match="dual_write is 'on' .* writes settled_trades again; nothing was dropped"):
        drop.drop_legacy(db, cfg, actor="carol", run_id="r", details={})
    assert legacy_exists(db, cfg)
    assert Flags(db, cfg).get(DUAL_WRITE).value == "on"
    assert audit(db, cfg, drop.DROPPED) == []
    assert drop.finished(db, cfg) is None


def test_the_writer_gate_takes_new_only_or_retired(db, cfg, ready):
    assert Flags(db, cfg).get(DUAL_WRITE).value == NEW_ONLY
    set_flag(db, cfg, DUAL_WRITE, RETIRED)
    assert gates.evaluate(db, cfg, ACK).gate("writer").passed
    set_flag(db, cfg, DUAL_WRITE, "off")
    gate = gates.evaluate(db, cfg, ACK).gate("writer")
    assert not gate.passed and gate.detail.startswith("dual_write is 'off'")
