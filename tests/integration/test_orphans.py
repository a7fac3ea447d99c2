"""Orphans resolved against the real node: a bust and key-changing corrections leave user_trades rows
no trade explains; a run that resolves orphans deletes exactly those, each after a last look, and
keeps any whose trade came back or that was written again; the report, the parity_runs row, the
audit log and the notifier say what was done; and the nightly policy, run after a bust, leaves
the cleanup's parity gate passing.

The faults are made the way they happen: by the reference settlement writer of a service that has
not picked up dual_write=on yet (it busts and corrects settled_trades only), and by one whose
user_trades write fails (recorded for the healer).
"""
from __future__ import annotations

import csv
import itertools
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import load_trades, mark_done
from testkit.statements import delete_user_trade
from testkit.traffic import live_trades, stamped

from trade_migration.backfill import copier, plan
from trade_migration.cleanup import gates
from trade_migration.core import clock
from trade_migration.core.convert import Reject, convert
from trade_migration.core.notify import Notice
from trade_migration.core.prepared import prepared
from trade_migration.core.settings import PARITY_NOTIFIER
from trade_migration.core.symbols import load_symbol_ids
from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN, TokenRange
from trade_migration.dual_write.writer import SettlementWriter, WriterOptions
from trade_migration.state import phases
from trade_migration.state.flags import DUAL_WRITE, NEW_ONLY, READ_PATH, Flags, check_writer_switch
from trade_migration.state.ledger import Ledger
from trade_migration.statements.parity_runs import parity_select_recent
from trade_migration.statements.settled_trades import decode_scanned_trade, scan_settled
from trade_migration.statements.user_trades import insert_user_trade, insert_values, select_user_trade_timed
from trade_migration.verify import parity, phase, report
from trade_migration.verify.diffs import MISMATCHED, MISSING, ORPHAN
from trade_migration.verify.parity_run import Run, Scope
from trade_migration.verify.repair import AT_SOURCE_TIME
from trade_migration.verify.resolve import (
    DELETED,
    KEPT_EXPLAINED,
    KEPT_NEWER,
    KEPT_SYMBOL,
    NOT_RESOLVED,
    RESOLVED,
)

N, SEED, SPLITS = 600, 31, 8
LIVE_FIRST = 700_000_000   # trades settled by the reference writer (the generator's ids are far below)
_runs = itertools.count()
NOTICES: list[Notice] = []


def recording_notifier(notice: Notice) -> None:
    """TM_PARITY_NOTIFIER for these tests."""
    NOTICES.append(notice)


# --- helpers ------------------------------------------------------------------------------------
def backfilled(db, cfg) -> None:
    load_trades(db, cfg, N, SEED)
    plan.ensure_ledger(db, cfg, Ledger(db, cfg, "orphans"), SPLITS)
    copier.run_batch(db, cfg, "orphans", [TokenRange(MIN_TOKEN, MAX_TOKEN)])


def convertible(db, cfg) -> list:
    """The settled trades that convert, by trade id."""
    ids = load_symbol_ids(db, cfg.keyspace)
    trades = (decode_scanned_trade(r).trade for r in db.execute(prepared(db, scan_settled(cfg.keyspace)),
                                                                 (MIN_TOKEN, MAX_TOKEN)))
    return sorted((t for t in trades if not isinstance(convert(t, ids), Reject)), key=lambda t: t.trade_id)


def rows_of(db, cfg, trade) -> tuple:
    return convert(trade, load_symbol_ids(db, cfg.keyspace))


def stale_writer(db, cfg) -> SettlementWriter:
    """A settlement service that read dual_write=off and will not look again for an hour."""
    writer = SettlementWriter(db, cfg, WriterOptions(flag_refresh_s=3600))
    assert writer.mode() == "off"
    return writer


def row_at(db, cfg, key: tuple):
    return db.execute(prepared(db, select_user_trade_timed(cfg.keyspace)), key).one()


def verify(db, cfg, mode: str = "full", **kw):
    kw.setdefault("recheck_delay", 0.1)
    run = parity.plan_run(db, cfg, run_id=f"orphans_{next(_runs)}", mode=mode, splits=SPLITS, **kw)
    return run, parity.run_all(db, cfg, run, batch_count=3, actor="alice")


def found(outcome) -> set:
    return {(d["kind"], d["trade_id"], d["user_id"], d["side"], d["repair"]) for d in outcome.diffs}


def resolutions(db, cfg) -> list[dict]:
    """The audit log's orphan deletions, oldest first."""
    entries = [e for e in phases.State(db, cfg).audit_log(1000) if e.action == RESOLVED]
    return [{"actor": e.actor, "reason": e.reason, **json.loads(e.details)} for e in reversed(entries)]


def key_json(row) -> dict:
    return {"user_id": row.user_id, "symbol_id": row.symbol_id, "settled_at": row.settled_at.isoformat(),
            "trade_id": row.trade_id, "side": row.side}


# --- resolve ------------------------------------------------------------------------------------
def test_a_bust_and_key_changing_corrections_leave_orphans_the_resolve_deletes_exactly_them(db, cfg, tmp_path):
    backfilled(db, cfg)
    ok = convertible(db, cfg)
    a, b, c = ok[0], ok[1], ok[2]
    a_rows, b_rows, c_rows = rows_of(db, cfg, a), rows_of(db, cfg, b), rows_of(db, cfg, c)
    writer = stale_writer(db, cfg)
    writer.bust(a)                                              # A is gone: both rows orphans
    b_new = b._replace(buyer_user_id=b.buyer_user_id + 1_000_000)
    writer.correct(b, b_new)                                    # B's buyer moved: a new key
    c_new = c._replace(price=0)
    writer.correct(c, c_new)                                    # C became a reject
    b_new_rows = rows_of(db, cfg, b_new)
    orphans = {(ORPHAN, a.trade_id, a_rows[0].user_id, "BUY"), (ORPHAN, a.trade_id, a_rows[1].user_id, "SELL"),
               (ORPHAN, b.trade_id, b_rows[0].user_id, "BUY"),
               (ORPHAN, c.trade_id, c_rows[0].user_id, "BUY"), (ORPHAN, c.trade_id, c_rows[1].user_id, "SELL")}
    others = {(MISSING, b.trade_id, b_new_rows[0].user_id, "BUY"), (MISMATCHED, b.trade_id, b_rows[1].user_id, "SELL")}

    # a run that only reports: every orphan listed, none resolved, nothing deleted
    _, looked = verify(db, cfg)
    assert found(looked) == {(*d, "") for d in orphans | others}
    t = looked.total
    assert (t.missing, t.mismatched, t.orphans, t.repaired, t.resolved, looked.status) == (1, 1, 5, 0, 0, "broken")
    assert all(row_at(db, cfg, r.key) is not None for r in (*a_rows, b_rows[0], *c_rows))

    # a run that repairs and resolves: exactly the five orphans deleted, the rest rewritten
    run, fixed = verify(db, cfg, repair=True, resolve_orphans=True)
    assert found(fixed) == {(*d, DELETED) for d in orphans} | {(*d, AT_SOURCE_TIME) for d in others}
    t = fixed.total
    assert (t.missing, t.mismatched, t.orphans, t.repaired, t.resolved, fixed.status) == (
        1, 1, 5, 2, 5, parity.REPAIRED)
    assert (fixed.resolved_how, fixed.resolve_refused) == ({DELETED: 5}, "")
    assert fixed.healed == {"pending": 0, "healed": 0, "left": 0}   # the healer ran, and found nothing to do
    assert all(row_at(db, cfg, r.key) is None for r in (*a_rows, b_rows[0], *c_rows))
    assert tuple(row_at(db, cfg, b_new_rows[0].key)[1:14]) == b_new_rows[0]
    assert tuple(row_at(db, cfg, b_new_rows[1].key)[1:14]) == b_new_rows[1]
    assert sum(1 for _ in db.execute(f"SELECT trade_id FROM {cfg.keyspace}.user_trades")) == 2 * (len(ok) - 2)

    # each deletion audited: who, the run, the key, the tombstone's time (the row's write time + 1)
    audited = resolutions(db, cfg)
    deleted = [a_rows[0], a_rows[1], b_rows[0], c_rows[0], c_rows[1]]
    assert sorted((e["actor"], e["run_id"], json.dumps(e["key"], sort_keys=True)) for e in audited) == sorted(
        ("alice", run.run_id, json.dumps(key_json(r), sort_keys=True)) for r in deleted)
    assert all(e["deleted_at_us"] == e["row_written_us"] + 1 for e in audited)
    assert {e["reason"].split(" (")[0].split(":")[0] for e in audited} == {
        f"no settled trade {a.trade_id}", "its trade converts to other rows", "its trade is rejected"}

    # the report says how each was fixed; the parity_runs row counts it
    paths = report.write(run, fixed, tmp_path)
    with paths["differences"].open() as f:
        listed = {(r["kind"], int(r["trade_id"]), r["side"], r["repair"]) for r in csv.DictReader(f)}
    assert listed == {(k, tid, side, DELETED) for k, tid, _, side in orphans} | {
        (k, tid, side, AT_SOURCE_TIME) for k, tid, _, side in others}
    summary = json.loads(paths["summary"].read_text())
    assert {k: summary[k] for k in ("status", "repaired", "resolved", "healed", "heal_pending", "heal_left",
                                    "resolved_how", "resolve_refused")} == {
        "status": "repaired", "repaired": 2, "resolved": 5, "healed": 0, "heal_pending": 0, "heal_left": 0,
        "resolved_how": {DELETED: 5}, "resolve_refused": ""}
    assert "resolved" in paths["chart"].read_text()
    parity.record(db, cfg, run, fixed, str(tmp_path))
    row = db.execute(prepared(db, parity_select_recent(cfg.keyspace)), (1,)).one()
    assert (row.run_id, row.status, row.missing, row.mismatched, row.orphans, row.repaired, row.resolved,
            row.heal_pending, row.healed, row.heal_left) == (run.run_id, "repaired", 1, 1, 5, 2, 5, 0, 0, 0)

    # the next run finds nothing; a newer write of a deleted key still lands (the tombstone is old)
    _, after = verify(db, cfg, repair=True, resolve_orphans=True)
    assert (after.status, after.total.resolved, after.total.repaired) == (parity.CLEAN, 0, 0)
    db.execute(prepared(db, insert_user_trade(cfg.keyspace)), insert_values(a_rows[0], int(time.time() * 1e6)))
    assert tuple(row_at(db, cfg, a_rows[0].key)[1:14]) == a_rows[0]


def test_an_orphan_whose_trade_comes_back_or_that_is_written_again_is_kept(db, cfg):
    """Between the recheck and the resolve, busted trade A is settled again and one row of busted
    trade E is written again: only E's other row is deleted."""
    backfilled(db, cfg)
    ok = convertible(db, cfg)
    a, e = ok[0], ok[1]
    a_rows, e_rows = rows_of(db, cfg, a), rows_of(db, cfg, e)
    writer = stale_writer(db, cfg)
    writer.bust(a)
    writer.bust(e)
    run = parity.plan_run(db, cfg, run_id="comes_back", mode="full", splits=SPLITS, resolve_orphans=True,
                          recheck_delay=0.1)
    surveys = [parity.survey(db, cfg, run, b["ranges"]) for b in parity.batches(run, parity.survey_indexes(run), 2)]
    scope = parity.narrow(run, surveys)
    inspections = [parity.inspect(db, cfg, run, scope, b["ranges"]) for b in parity.batches(run, scope.indexes, 2)]
    assert sorted((d["trade_id"], d["side"]) for p in inspections for d in p["orphans"]) == [
        (a.trade_id, "BUY"), (a.trade_id, "SELL"), (e.trade_id, "BUY"), (e.trade_id, "SELL")]

    writer.settle(a)                                       # A comes back
    db.execute(prepared(db, insert_user_trade(cfg.keyspace)), insert_values(e_rows[0], int(time.time() * 1e6)))
    resolved = parity.resolve(db, cfg, run, inspections, actor="alice")
    out = parity.conclude(run, surveys, inspections, resolved)
    assert found(out) == {(ORPHAN, a.trade_id, a_rows[0].user_id, "BUY", KEPT_EXPLAINED),
                          (ORPHAN, a.trade_id, a_rows[1].user_id, "SELL", KEPT_EXPLAINED),
                          (ORPHAN, e.trade_id, e_rows[0].user_id, "BUY", KEPT_NEWER),
                          (ORPHAN, e.trade_id, e_rows[1].user_id, "SELL", DELETED)}
    assert (out.total.orphans, out.total.resolved, out.status) == (4, 1, parity.BROKEN)
    assert out.resolved_how == {DELETED: 1, KEPT_EXPLAINED: 2, KEPT_NEWER: 1}
    assert [row_at(db, cfg, r.key) is not None for r in (*a_rows, *e_rows)] == [True, True, True, False]
    assert [(x["run_id"], x["key"]) for x in resolutions(db, cfg)] == [("comes_back", key_json(e_rows[1]))]
    _, after = verify(db, cfg)   # A is whole again; E's rewritten row is still an orphan
    assert found(after) == {(ORPHAN, e.trade_id, e_rows[0].user_id, "BUY", "")}


def test_the_resolve_refuses_an_unknown_symbol_too_many_orphans_and_a_writer_that_left_settled_trades(db, cfg):
    backfilled(db, cfg)
    ok = convertible(db, cfg)
    a = ok[0]
    a_rows = rows_of(db, cfg, a)
    gone = next(t for t in ok[1:] if t.symbol != a.symbol)
    gone_rows = {r.key for t in ok if t.symbol == gone.symbol for r in rows_of(db, cfg, t)}
    db.execute(f"DELETE FROM {cfg.keyspace}.symbols WHERE symbol = %s", (gone.symbol,))
    stale_writer(db, cfg).bust(a)

    # the symbol's rows are kept (reference data gone, not trades); A's rows deleted
    run, out = verify(db, cfg, resolve_orphans=True)
    assert out.total.orphans == 2 + len(gone_rows) and out.total.resolved == 2
    assert out.resolved_how == {DELETED: 2, KEPT_SYMBOL: len(gone_rows)} and out.status == parity.BROKEN
    assert all(row_at(db, cfg, k) is not None for k in gone_rows)
    assert all(row_at(db, cfg, r.key) is None for r in a_rows)

    # more orphans than the limit: none deleted, each listed as not resolved, and why
    _, capped = verify(db, cfg, resolve_orphans=True, resolve_limit=len(gone_rows) - 1)
    assert capped.resolve_refused == (
        f"{len(gone_rows)} orphans confirmed, more than the limit of {len(gone_rows) - 1}: a lost settled_trades"
        " looks like this; check it, then resolve by hand or rerun with a higher resolve_limit")
    assert (capped.total.resolved, capped.resolved_how) == (0, {})
    assert {d["repair"] for d in capped.diffs} == {NOT_RESOLVED}

    # settled_trades no longer written: a missing trade proves nothing
    Flags(db, cfg).set(DUAL_WRITE, "new_only", actor="pytest", reason="the writer left settled_trades")
    _, new_only = verify(db, cfg, resolve_orphans=True)
    assert new_only.resolve_refused == ("dual_write is new_only: settled_trades is no longer written, so a"
                                        " missing trade proves nothing")
    assert new_only.total.resolved == 0 and all(row_at(db, cfg, k) is not None for k in gone_rows)
    assert [r["run_id"] for r in resolutions(db, cfg)] == [run.run_id] * 2   # the first run's two deletes


# --- new_only: the writer has left settled_trades ---------------------------------------------
def test_rows_settled_in_new_only_mode_are_no_orphans_but_a_row_written_before_the_switch_is(db, cfg):
    backfilled(db, cfg)
    flags = Flags(db, cfg)
    flags.set(DUAL_WRITE, "on", actor="pytest", reason="dual writes on")
    writer = SettlementWriter(db, cfg, WriterOptions(flag_refresh_s=0))
    pool = list(itertools.islice(live_trades(LIVE_FIRST, 5), 400))   # one reject in each slice below
    outcomes = [writer.settle(stamped(t, time.time_ns())).outcome for t in pool[110:130]]
    assert (outcomes.count("dual_written"), outcomes.count("rejected")) == (19, 1)
    flags.set(READ_PATH, "user_trades", actor="pytest", reason="reads moved")
    check_writer_switch(NEW_ONLY, flags.all())
    since = clock.micros(flags.set(DUAL_WRITE, NEW_ONLY, actor="pytest", reason="the writer left settled_trades")
                         .changed_at)
    settled = [stamped(t, time.time_ns()) for t in pool[360:400]]
    outcomes = [writer.settle(t).outcome for t in settled]
    assert (outcomes.count("new_only"), outcomes.count("rejected")) == (39, 1)
    new_rows = [r for t, o in zip(settled, outcomes, strict=True) if o == "new_only" for r in rows_of(db, cfg, t)]
    assert all(row_at(db, cfg, r.key) is not None for r in new_rows)
    assert not any(db.execute(f"SELECT trade_id FROM {cfg.keyspace}.settled_trades WHERE trade_id = %s",
                              (t.trade_id,)).one() for t in settled)   # user_trades is their only table
    ok = convertible(db, cfg)   # the backfilled trades and the 20 dual-written ones

    # a full run (narrowed by digests: the new rows' buckets differ, so they are looked up) is clean
    run, full = verify(db, cfg)
    assert (run.new_only_since_us, run.dual_write_since_us) == (since, None)
    t = full.total
    assert (full.status, full.diffs, t.missing, t.mismatched, t.orphans, t.new_only) == (
        parity.CLEAN, [], 0, 0, 0, len(new_rows))
    assert (t.source_rows, t.target_rows) == (N + 20, 2 * len(ok) + len(new_rows))
    assert full.counts == {"settled_trades": N + 20, "rejected": N + 20 - len(ok),
                           "user_trades": 2 * len(ok) + len(new_rows), "expected_user_trades": 2 * len(ok),
                           "difference": len(new_rows), "explained_by_rows": True, "new_only": len(new_rows)}

    # so is a sampled one, which counts the new rows it reads: all of them, settled in its last day
    sample, sampled = verify(db, cfg, mode="sampled", sample_share=0.5, seed=SEED)
    assert len(sample.windows) == 2 and sampled.total.target_rows < t.target_rows
    assert (sampled.status, sampled.diffs, sampled.total.orphans, sampled.total.new_only) == (
        parity.CLEAN, [], 0, len(new_rows))

    # and the cleanup's parity gate passes alongside its writer gate
    parity.record(db, cfg, run, full, None)
    parity.record(db, cfg, sample, sampled, None)
    report_ = gates.evaluate(db, cfg, gates.GateOptions(parity_runs=2))
    assert report_.gate(gates.PARITY).passed and report_.gate(gates.WRITER).passed, report_.text()

    # a row no trade explains, written before the switch, is still an orphan (and kept: resolve
    # refuses while new_only); one written at the switch is a new_only row
    template = rows_of(db, cfg, ok[0])[0]
    before, at_switch = template._replace(trade_id=LIVE_FIRST - 1), template._replace(trade_id=LIVE_FIRST - 2)
    insert = prepared(db, insert_user_trade(cfg.keyspace))
    db.execute(insert, insert_values(before, since - 1))
    db.execute(insert, insert_values(at_switch, since))
    _, planted = verify(db, cfg, resolve_orphans=True)
    assert found(planted) == {(ORPHAN, before.trade_id, before.user_id, before.side, NOT_RESOLVED)}
    assert [d["detail"] for d in planted.diffs] == [f"no settled trade {before.trade_id}"]
    assert (planted.status, planted.total.orphans, planted.total.new_only, planted.total.resolved) == (
        parity.BROKEN, 1, len(new_rows) + 1, 0)
    assert planted.resolve_refused == ("dual_write is new_only: settled_trades is no longer written, so a"
                                       " missing trade proves nothing")
    assert (planted.counts["difference"], planted.counts["new_only"], planted.counts["explained_by_rows"]) == (
        len(new_rows) + 2, len(new_rows) + 1, True)
    assert row_at(db, cfg, before.key) is not None
    _, every = verify(db, cfg, mode="sampled", sample_share=1.0)
    assert found(every) == {(ORPHAN, before.trade_id, before.user_id, before.side, "")}
    assert (every.total.orphans, every.total.new_only) == (1, len(new_rows) + 1)


# --- the nightly policy, end to end -------------------------------------------------------------
def nightly(db, cfg, run_type: str = "scheduled", **params) -> dict:
    """One run through the phase's stages as the DAG wires them (its Params left empty)."""
    kw = {"repair": None, "resolve_orphans": None, **params}
    run, survey_batches = phase.start(db, cfg, run_id=f"scheduled__{next(_runs)}", actor="airflow", reason="",
                                      mode="full", run_type=run_type, parallelism=2, splits=SPLITS,
                                      recheck_delay_s=0.1, **kw)
    r = Run.from_json(run)
    healing = parity.heal(db, cfg, r)
    surveys = [parity.survey(db, cfg, r, b["ranges"]) for b in survey_batches]
    scope = Scope.from_json(parity.narrow(r, surveys).to_json())
    inspections = [parity.inspect(db, cfg, r, scope, b["ranges"]) for b in parity.batches(r, scope.indexes, 2)]
    resolved = parity.resolve(db, cfg, r, inspections, actor="airflow")
    return phase.finish(db, cfg, run, surveys, inspections, resolved, healing, actor="airflow", reason="")


@pytest.fixture
def nightly_env(db, cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("TM_REPORT_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv(PARITY_NOTIFIER.name, f"{__name__}:recording_notifier")
    NOTICES.clear()
    backfilled(db, cfg)
    mark_done(db, cfg, phases.CREATE_TABLE, phases.DUAL_WRITE, phases.BACKFILL)
    return tmp_path


def test_after_a_bust_one_nightly_run_heals_repairs_resolves_and_the_parity_gate_passes(db, cfg, nightly_env):
    opts = gates.GateOptions(parity_runs=3, acknowledge_rejects="generated rejects")
    for _ in range(2):
        assert nightly(db, cfg)["status"] == "clean"
    assert NOTICES == []   # nothing fixed, nothing told
    ok = convertible(db, cfg)
    a, lost = ok[0], rows_of(db, cfg, ok[1])[1]
    stale = stale_writer(db, cfg)
    Flags(db, cfg).set(DUAL_WRITE, "on", actor="pytest", reason="dual writes on")
    stale.bust(a)                                                           # two orphans
    db.execute(prepared(db, delete_user_trade(cfg.keyspace)), lost.key)     # one missing row
    failing = SettlementWriter(db, cfg, WriterOptions(flag_refresh_s=0, user_trades_failure_share=1.0))
    fresh = ok[2]._replace(trade_id=900_000_001)
    assert failing.settle(fresh).outcome == "dual_write_failed"              # one record for the healer

    # one nightly run heals the failed dual write, rewrites the lost row, deletes the two orphans
    summary = nightly(db, cfg)
    assert {k: summary[k] for k in ("status", "missing", "mismatched", "orphans", "repaired", "resolved",
                                    "heal_pending", "healed", "heal_left")} == {
        "status": "repaired", "missing": 1, "mismatched": 0, "orphans": 2, "repaired": 1, "resolved": 2,
        "heal_pending": 1, "healed": 1, "heal_left": 0}
    assert all(row_at(db, cfg, r.key) is None for r in rows_of(db, cfg, a))
    assert all(row_at(db, cfg, r.key) is not None for r in (lost, *rows_of(db, cfg, fresh)))
    row = db.execute(prepared(db, parity_select_recent(cfg.keyspace)), (1,)).one()
    assert (row.status, row.repaired, row.resolved, row.heal_pending, row.healed, row.heal_left) == (
        "repaired", 1, 2, 1, 1, 0)
    (notice,) = NOTICES
    assert notice.subject == f"user_trades parity repaired: run {row.run_id} healed 1, repaired 1, resolved 2"
    assert notice.body == (f"figures: missing 1, mismatched 0, orphans 2, rejected {summary['rejected']},"
                           f" repaired 1, resolved 2, healed 1\nreport: {Path(row.report_path)}")
    assert (notice.details["run_id"], notice.details["resolved"]) == (row.run_id, 2)

    # the cleanup's parity gate: the last three runs clean, clean, repaired
    parity_gate = gates.evaluate(db, cfg, opts).gate(gates.PARITY)
    assert parity_gate.passed, parity_gate.detail
    assert [h["status"] for h in parity_gate.numbers["history"]] == ["repaired", "clean", "clean"]
    assert datetime.now(UTC) - parity_gate.numbers["history"][0]["started_at"] < gates.MAX_PARITY_AGE

    # the next night finds nothing to do and tells nobody
    assert nightly(db, cfg)["status"] == "clean" and len(NOTICES) == 1
