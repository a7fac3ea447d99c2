"""Verification against the real node: planted faults found and counted exactly, repaired when
asked, and no false alarm while the reference writer settles trades during a check.

Every test backfills generated trades with the backfill itself (one ledger over the whole ring),
then plants faults the way they happen: rows deleted or altered in user_trades, rows that no
trade explains, a symbol removed from trading.symbols, a dual write that failed.

A removed symbol is counted as rejected, not missing: the contract rejects a trade whose symbol
is not in trading.symbols, so its trades no longer have expected rows; the rows the backfill
wrote for them earlier become orphans (reported; a run that resolves orphans keeps these, see
test_orphans.py). Restoring the symbol makes them right again.
"""
from __future__ import annotations

import csv
import itertools
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from conftest import load_trades
from testkit import generator
from testkit.statements import delete_symbol, delete_user_trade, insert_symbol
from testkit.traffic import live_trades, live_traffic, stamped

from trade_migration.backfill import copier, plan
from trade_migration.core.convert import Reject, convert
from trade_migration.core.model import SettledTrade, UserTrade
from trade_migration.core.prepared import prepared
from trade_migration.core.symbols import load_symbol_ids
from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN, TokenRange, settled_token, user_trades_token
from trade_migration.state.flags import DUAL_WRITE, Flags
from trade_migration.state.ledger import Ledger
from trade_migration.statements.parity_runs import parity_select_recent
from trade_migration.statements.settled_trades import (
    decode_scanned_trade,
    insert_settled,
    scan_settled,
)
from trade_migration.statements.user_trades import insert_user_trade, select_user_trade_timed
from trade_migration.verify import parity, report, row_parity
from trade_migration.verify.diffs import MISMATCHED, MISSING, ORPHAN
from trade_migration.verify.digests import bucket, buckets_of
from trade_migration.verify.parity_run import ALL, SAMPLED, Scope
from trade_migration.verify.repair import AT_RUN_START
from trade_migration.verify.row_parity import Checker
from trade_migration.verify.windows import MAX_MS, MIN_MS

N, SEED, SPLITS = 2000, 77, 8
LIVE_FIRST = 700_000_000
_runs = itertools.count()


# --- helpers ------------------------------------------------------------------------------------
def backfilled(db, cfg, n: int = N):
    """n generated trades, copied by the backfill over the whole ring."""
    generated = load_trades(db, cfg, n, SEED)
    ledger = Ledger(db, cfg, "verify_test")
    plan.ensure_ledger(db, cfg, ledger, SPLITS)
    copier.run_batch(db, cfg, "verify_test", [TokenRange(MIN_TOKEN, MAX_TOKEN)])
    return generated


def new_run(db, cfg, mode: str = "full", **kw):
    kw.setdefault("recheck_delay", 0.2)
    return parity.plan_run(db, cfg, run_id=f"test_{next(_runs)}", mode=mode, splits=SPLITS, **kw)


def verify(db, cfg, mode: str = "full", **kw):
    run = new_run(db, cfg, mode, **kw)
    return run, parity.run_all(db, cfg, run, batch_count=3)


def sources(db, cfg) -> dict[int, tuple[SettledTrade, int]]:
    """trade_id -> (settled trade, write time), straight from the table."""
    out = {}
    for r in db.execute(prepared(db, scan_settled(cfg.keyspace)), (MIN_TOKEN, MAX_TOKEN)):
        _, trade, written, _ = decode_scanned_trade(r)
        out[trade.trade_id] = (trade, written)
    return out


def found(outcome) -> set:
    """(kind, trade_id, user_id, side, differing columns) of every difference reported."""
    return {(d["kind"], d["trade_id"], d["user_id"], d["side"], tuple(d["columns"])) for d in outcome.diffs}


def user_trade(db, cfg, key: tuple):
    return db.execute(prepared(db, select_user_trade_timed(cfg.keyspace)), key).one()


def insert_row(db, cfg, row: UserTrade) -> None:
    db.execute(prepared(db, insert_user_trade(cfg.keyspace)), (*row, int(time.time() * 1e6)))


def delete_row(db, cfg, row: UserTrade) -> None:
    db.execute(prepared(db, delete_user_trade(cfg.keyspace)), row.key)


# --- the ring, client-side -----------------------------------------------------------------------
def test_client_side_tokens_are_the_clusters(db, cfg):
    """Digest buckets are computed client-side; a wrong token would send the row-by-row look to
    the wrong ranges."""
    backfilled(db, cfg, 500)
    settled = list(db.execute(f"SELECT token(trade_id), trade_id FROM {cfg.keyspace}.settled_trades"))
    rows = list(db.execute(f"SELECT token(user_id, symbol_id), user_id, symbol_id FROM {cfg.keyspace}.user_trades"))
    assert len(settled) == 500 and len(rows) > 900
    assert [settled_token(t) for _, t in settled] == [tok for tok, _ in settled]
    assert [user_trades_token(u, s) for _, u, s in rows] == [tok for tok, _, _ in rows]
    run = new_run(db, cfg)
    for tok, *_ in rows:
        assert bucket(tok) in buckets_of(run.ranges[run.range_index(tok)])


# --- clean --------------------------------------------------------------------------------------
def test_a_clean_backfill_is_clean_in_every_mode(db, cfg):
    generated = backfilled(db, cfg)
    rejected = sum(generated.rejects.values())
    run, full = verify(db, cfg)
    assert full.status == parity.CLEAN and full.diffs == []
    t = full.total
    assert (t.source_rows, t.target_rows, t.rejected, t.late) == (N, 2 * generated.convertible, rejected, 0)
    assert full.rejected_by_reason == dict(sorted(generated.rejects.items()))
    assert full.counts == {"settled_trades": N, "rejected": rejected, "user_trades": 2 * generated.convertible,
                           "expected_user_trades": 2 * generated.convertible, "difference": 0,
                           "explained_by_rows": True}
    assert sorted(full.tallies) == list(range(len(run.ranges)))

    _, exhaustive = verify(db, cfg, narrow=False)
    assert exhaustive.status == parity.CLEAN
    assert (exhaustive.total.source_rows, exhaustive.total.target_rows) == (N, 2 * generated.convertible)

    run, sampled = verify(db, cfg, SAMPLED, sample_share=0.25, seed=5, recent_hours=0)
    assert sampled.status == parity.CLEAN and sampled.counts is None and len(run.windows) == 1
    (start, end), = run.window_bounds
    n_source = sum(start <= t.settled_at < end for t, _ in sources(db, cfg).values() if t.settled_at)
    n_target = sum(start <= at < end for at, in db.execute(f"SELECT settled_at FROM {cfg.keyspace}.user_trades"))
    assert 0.15 * N < n_source < 0.35 * N   # about the share asked for
    assert (sampled.total.source_rows, sampled.total.target_rows) == (n_source, n_target)
    assert (sampled.total.settled, sampled.total.user_trades) == (0, 0)   # no whole-table counts


# --- planted faults -----------------------------------------------------------------------------
@pytest.mark.slow
def test_planted_faults_are_found_counted_exactly_and_repaired(db, cfg, tmp_path):
    generated = backfilled(db, cfg)
    src = sources(db, cfg)
    symbol_ids = load_symbol_ids(db, cfg.keyspace)
    by_symbol: dict[str, list[int]] = {}
    for tid, (trade, _) in sorted(src.items()):
        if not isinstance(convert(trade, symbol_ids), Reject):
            by_symbol.setdefault(trade[2], []).append(tid)
    # the symbol to remove: the least traded one that has trades
    gone = min(by_symbol, key=lambda s: (len(by_symbol[s]), s))
    gone_trades = by_symbol[gone]
    others = [t for s, ts in sorted(by_symbol.items()) if s != gone for t in ts]
    t1, t2, t3, t4, t5, t6, t7, t8 = (others[:5] + [t for t in others[5:] if src[t][0][12] is not None][:1]
                                      + others[40:42])
    rows = {t: convert(src[t][0], symbol_ids) for t in (t1, t2, t3, t4, t5, t6, t7, t8)}
    reject_id = next(t for t, (trade, _) in sorted(src.items())
                     if isinstance(convert(trade, symbol_ids), Reject) and trade[13] is not None and trade[2] != gone)

    # deleted rows: 4 missing
    delete_row(db, cfg, rows[t1][0])
    delete_row(db, cfg, rows[t2][1])
    delete_row(db, cfg, rows[t3][0])
    delete_row(db, cfg, rows[t3][1])
    # altered values: 3 mismatched
    ks = cfg.keyspace
    k4, k5, k6 = rows[t4][0].key, rows[t5][1].key, rows[t6][0].key
    where = "WHERE user_id = %s AND symbol_id = %s AND settled_at = %s AND trade_id = %s AND side = %s"
    db.execute(f"UPDATE {ks}.user_trades SET price = %s {where}", (rows[t4][0][5] + 1, *k4))
    db.execute(f"UPDATE {ks}.user_trades SET fee = %s, is_taker = %s {where}",
               (123_456_789, not rows[t5][1][10], *k5))
    db.execute(f"UPDATE {ks}.user_trades SET matched_at = null {where}", k6)
    # orphans: no trade, a trade that converts to other keys, a rejected trade
    no_trade = rows[t7][0]._replace(trade_id=999_999_999)
    wrong_user = rows[t8][0]._replace(user_id=424_242)
    rejected_trade = src[reject_id][0]
    of_reject = UserTrade(1, 1, rejected_trade.settled_at, reject_id, "BUY", 1, 1, None, None, 2, True, None, 0)
    for row in (no_trade, wrong_user, of_reject):
        insert_row(db, cfg, row)
    # a symbol removed: its trades become rejects, their rows orphans
    db.execute(prepared(db, delete_symbol(ks)), (gone,))
    # a failed dual write, made by the reference writer with its user_trades write failing
    Flags(db, cfg).set(DUAL_WRITE, "on", actor="pytest", reason="dual writes before the failure")
    writer = live_traffic(db, cfg, trades_per_second=0, first_trade_id=LIVE_FIRST,
                          user_trades_table="user_trades_unreachable")
    now_ids = load_symbol_ids(db, ks)
    trade = next(stamped(t, time.time_ns()) for t in live_trades(LIVE_FIRST, 3)
                 if not isinstance(convert(t, now_ids), Reject))
    settled = writer.writer.settle(trade)
    assert settled.outcome == "dual_write_failed"
    dual = convert(sources(db, cfg)[trade[0]][0], now_ids)   # as read back (naive UTC times)

    expected = {
        (MISSING, t1, rows[t1][0][0], "BUY", ()), (MISSING, t2, rows[t2][1][0], "SELL", ()),
        (MISSING, t3, rows[t3][0][0], "BUY", ()), (MISSING, t3, rows[t3][1][0], "SELL", ()),
        (MISSING, trade[0], dual[0][0], "BUY", ()), (MISSING, trade[0], dual[1][0], "SELL", ()),
        (MISMATCHED, t4, k4[0], "BUY", ("price",)), (MISMATCHED, t5, k5[0], "SELL", ("fee", "is_taker")),
        (MISMATCHED, t6, k6[0], "BUY", ("matched_at",)),
        (ORPHAN, 999_999_999, no_trade[0], "BUY", ()), (ORPHAN, t8, 424_242, "BUY", ()),
        (ORPHAN, reject_id, 1, "BUY", ()),
        *{(ORPHAN, t, r[0], r[4], ()) for t in gone_trades for r in convert(src[t][0], symbol_ids)},
    }
    rejected = sum(generated.rejects.values()) + len(gone_trades)
    reject_ids = sorted(t for t, (tr, _) in sources(db, cfg).items() if isinstance(convert(tr, now_ids), Reject))

    # found, by all three ways of looking, and counted exactly
    run, out = verify(db, cfg)
    assert found(out) == expected
    t = out.total
    assert (t.missing, t.mismatched, t.orphans, t.rejected, t.repaired) == (6, 3, 3 + 2 * len(gone_trades), rejected, 0)
    assert out.status == parity.BROKEN
    assert out.rejected_by_reason["unknown_symbol"] == generated.rejects["unknown_symbol"] + len(gone_trades)
    assert out.counts["settled_trades"] == N + 1 and out.counts["explained_by_rows"] is True
    assert out.counts["difference"] == t.orphans - t.missing == 2 * len(gone_trades) - 3
    by_key = {(d["kind"], d["trade_id"], d["side"]): d for d in out.diffs}
    assert by_key[(MISMATCHED, t4, "BUY")]["expected"] == {"price": rows[t4][0][5]}
    assert by_key[(MISMATCHED, t4, "BUY")]["actual"] == {"price": rows[t4][0][5] + 1}
    assert by_key[(ORPHAN, 999_999_999, "BUY")]["detail"] == "no settled trade 999999999"
    assert by_key[(ORPHAN, reject_id, "BUY")]["detail"].startswith("its trade is rejected (")
    assert by_key[(ORPHAN, t8, "BUY")]["detail"].startswith("its trade converts to other rows: ")
    assert report.origin(run, by_key[(MISSING, trade[0], "BUY")]["source_written_us"]) == "dual_write"
    assert report.origin(run, by_key[(MISSING, t1, "BUY")]["source_written_us"]) == "backfill"
    assert found(verify(db, cfg, narrow=False)[1]) == expected
    _, every_range = verify(db, cfg, SAMPLED, sample_share=1.0, report_cap=4)
    assert (every_range.total.missing, every_range.total.mismatched, every_range.total.orphans) == (6, 3, t.orphans)
    assert len(every_range.diffs) == 4 and found(every_range) < expected
    # the rejects listed: all of them, or the report_cap lowest ids, whichever thread met them first
    assert len(reject_ids) == rejected and [trade_id for trade_id, _, _ in out.rejects] == reject_ids
    assert [trade_id for trade_id, _, _ in every_range.rejects] == reject_ids[:4]
    assert [trade_id for trade_id, _, _ in verify(db, cfg, report_cap=4)[1].rejects] == reject_ids[:4]

    # the report and the parity_runs row
    paths = report.write(run, out, tmp_path / "broken")
    with paths["differences"].open() as f:
        listed = list(csv.DictReader(f))
    assert len(listed) == len(expected)
    assert {(r["kind"], int(r["trade_id"]), r["side"], r["columns"]) for r in listed} == {
        (k, tid, side, ";".join(cols)) for k, tid, _, side, cols in expected}
    with paths["rejected"].open() as f:
        assert len(list(csv.DictReader(f))) == rejected
    assert json.loads(paths["summary"].read_text())["orphans"] == t.orphans
    assert "<table" in paths["chart"].read_text()
    parity.record(db, cfg, run, out, str(tmp_path / "broken"))
    row = db.execute(prepared(db, parity_select_recent(ks)), (1,)).one()
    assert (row.run_id, row.mode, row.ranges_checked, row.ranges_total, row.rows_checked, row.missing, row.mismatched,
            row.orphans, row.rejected, row.repaired, row.status) == (
        run.run_id, "full", SPLITS, SPLITS, t.source_rows + t.target_rows, 6, 3, t.orphans, rejected, 0, "broken")

    # repair: first the healer finishes the failed dual write (recorded by the writer), then the
    # missing and mismatched rows are rewritten; orphans are left alone (this run does not resolve them)
    run, fixed = verify(db, cfg, repair=True)
    healed_rows = {(MISSING, trade[0], dual[0][0], "BUY", ()), (MISSING, trade[0], dual[1][0], "SELL", ())}
    assert found(fixed) == expected - healed_rows
    assert fixed.healed == {"pending": 1, "healed": 1, "left": 0}
    assert (fixed.total.repaired, fixed.total.resolved, fixed.status) == (7, 0, parity.BROKEN)
    assert {d["repair"] for d in fixed.diffs if d["kind"] == ORPHAN} == {""}
    how = {(d["trade_id"], d["side"]): d["repair"] for d in fixed.diffs if d["kind"] != ORPHAN}
    # a deleted or altered row holds a newer write than its trade, so it is rewritten at the run's
    # start; the healer wrote the failed dual write's rows at the source's write time
    assert how == {(t1, "BUY"): AT_RUN_START, (t2, "SELL"): AT_RUN_START, (t3, "BUY"): AT_RUN_START,
                   (t3, "SELL"): AT_RUN_START, (t4, "BUY"): AT_RUN_START, (t5, "SELL"): AT_RUN_START,
                   (t6, "BUY"): AT_RUN_START}
    assert user_trade(db, cfg, dual[0].key)[14] == settled.write_time
    assert user_trade(db, cfg, rows[t1][0].key)[14] == run.started_us
    for r in (rows[t1][0], rows[t2][1], rows[t3][0], rows[t3][1], rows[t4][0], rows[t5][1], rows[t6][0], *dual):
        assert tuple(user_trade(db, cfg, r.key)[1:14]) == r
    for r in (no_trade, wrong_user, of_reject):
        assert user_trade(db, cfg, r.key) is not None

    _, after = verify(db, cfg)
    assert (after.total.missing, after.total.mismatched, after.total.orphans) == (0, 0, t.orphans)

    # what an operator does with the report: restore the symbol, delete the orphans no trade explains
    db.execute(prepared(db, insert_symbol(ks)), next(s for s in generator.symbols() if s[0] == gone))
    for r in (no_trade, wrong_user, of_reject):
        delete_row(db, cfg, r)
    _, clean = verify(db, cfg)
    assert clean.status == parity.CLEAN
    assert clean.total.rejected == sum(generated.rejects.values())


def test_repair_of_nothing_but_missing_rows_ends_repaired_then_clean(db, cfg):
    backfilled(db, cfg, 600)
    src = sources(db, cfg)
    symbol_ids = load_symbol_ids(db, cfg.keyspace)
    victims = [t for t in sorted(src) if not isinstance(convert(src[t][0], symbol_ids), Reject)][:3]
    for t in victims:
        delete_row(db, cfg, convert(src[t][0], symbol_ids)[0])
    run, out = verify(db, cfg, repair=True)
    assert (out.status, out.total.missing, out.total.repaired) == (parity.REPAIRED, 3, 3)
    assert verify(db, cfg)[1].status == parity.CLEAN


# --- sampling -----------------------------------------------------------------------------------
def test_a_sampled_run_checks_its_seeded_window_and_the_last_day(db, cfg, tmp_path):
    backfilled(db, cfg)
    src = sources(db, cfg)
    symbol_ids = load_symbol_ids(db, cfg.keyspace)
    ok = [t for t in sorted(src) if not isinstance(convert(src[t][0], symbol_ids), Reject)]
    # a trade settled an hour ago, its rows never written
    recent_id = LIVE_FIRST
    an_hour_ago = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    recent = SettledTrade(recent_id, *src[ok[0]][0][1:12], an_hour_ago - timedelta(milliseconds=5), an_hour_ago)
    db.execute(prepared(db, insert_settled(cfg.keyspace)), (*recent, int(time.time() * 1e6)))
    # the window: placed by the seed among the settlement times read (the same data, the same window)
    probe = new_run(db, cfg, SAMPLED, sample_share=0.25, seed=1234, recent_hours=0)
    assert probe.windows == new_run(db, cfg, SAMPLED, sample_share=0.25, seed=1234, recent_hours=0).windows
    (start, end), = probe.window_bounds
    assert probe.windows[0][0] > MIN_MS and end < an_hour_ago.replace(tzinfo=None)   # within the old history

    def in_window(trade_id: int) -> bool:
        at = src[trade_id][0].settled_at
        return at is not None and start <= at < end

    sampled_old = next(t for t in ok if in_window(t))
    unsampled_old = next(t for t in ok if not in_window(t))
    delete_row(db, cfg, convert(src[sampled_old][0], symbol_ids)[0])
    delete_row(db, cfg, convert(src[unsampled_old][0], symbol_ids)[0])

    run, out = verify(db, cfg, SAMPLED, sample_share=0.25, seed=1234)
    assert run.windows[0] == probe.windows[0] and run.windows[1][1] == MAX_MS and len(run.windows) == 2
    buyer = convert(src[sampled_old][0], symbol_ids)[0]
    recent_rows = convert(recent, symbol_ids)
    assert found(out) == {(MISSING, sampled_old, buyer[0], "BUY", ()),
                          (MISSING, recent_id, recent_rows[0][0], "BUY", ()),
                          (MISSING, recent_id, recent_rows[1][0], "SELL", ())}
    # recent_hours bounds the sweep: half an hour misses the trade settled an hour ago, 0 checks the sample alone
    for hours in (0.5, 0):
        _, alone = verify(db, cfg, SAMPLED, sample_share=0.25, seed=1234, recent_hours=hours)
        assert found(alone) == {(MISSING, sampled_old, buyer[0], "BUY", ())}
    facts = json.loads(report.write(run, out, tmp_path)["summary"].read_text())
    assert (facts["seed"], facts["sample_share"], facts["splits"], facts["recent_hours"]) == (1234, 0.25, SPLITS, 24)
    assert facts["settled_windows"] == [[a.isoformat() + "Z", b.isoformat() + "Z"] for a, b in run.window_bounds]
    since = run.window_bounds[1][0]
    assert report.checked_rows(run) == (f"the rows settled from {start:%Y-%m-%d %H:%M:%S} until"
                                        f" {end:%Y-%m-%d %H:%M:%S} and from {since:%Y-%m-%d %H:%M:%S} on (UTC)")
    parity.record(db, cfg, run, out, str(tmp_path))
    row = db.execute(prepared(db, parity_select_recent(cfg.keyspace)), (1,)).one()
    assert (row.mode, row.seed, row.ranges_checked, row.ranges_total, row.missing) == (
        SAMPLED, 1234, SPLITS, SPLITS, 3)
    # a run without a seed derives one from its id, and records it
    unseeded = new_run(db, cfg, SAMPLED, sample_share=0.25)
    assert unseeded.seed == parity.derive_seed(unseeded.run_id)
    # a share of 1 with the last day is every row, read without a filter (and counted as in a full run's scan)
    assert new_run(db, cfg, SAMPLED, sample_share=1.0).windows == ()


@pytest.mark.parametrize("lookup_rows", [row_parity.LOOKUP_ROWS, 3], ids=["gathered", "looked_up_every_3_rows"])
def test_damage_inside_the_sample_is_found_exactly_and_repaired(db, cfg, monkeypatch, lookup_rows):
    """Where the sample's digests differ, its rows are read one by one: a missing row, a mismatch
    and an orphan settled in the sample's window are each found once; the same damage outside the
    window is not looked at, and the repair fixes what the sample found. The same whether the
    expected rows are looked up together or a few at a time."""
    monkeypatch.setattr(row_parity, "LOOKUP_ROWS", lookup_rows)
    backfilled(db, cfg)
    src = sources(db, cfg)
    symbol_ids = load_symbol_ids(db, cfg.keyspace)
    (start, end), = new_run(db, cfg, SAMPLED, sample_share=0.25, seed=4321, recent_hours=0).window_bounds

    def sampled(row: UserTrade) -> bool:
        return start <= row.settled_at < end

    rows = [r for t in sorted(src) if not isinstance(out := convert(src[t][0], symbol_ids), Reject) for r in out]
    inside = [r for r in rows if sampled(r)]
    partition = next(p for p in itertools.groupby(sorted(inside, key=lambda r: r[:2]), key=lambda r: r[:2])
                     if len(list(p[1])) >= 3)[0]
    a, b, c = [r for r in inside if r[:2] == partition][:3]
    outside = next(r for r in rows if not sampled(r))
    delete_row(db, cfg, a)
    delete_row(db, cfg, outside)
    where = "WHERE user_id = %s AND symbol_id = %s AND settled_at = %s AND trade_id = %s AND side = %s"
    db.execute(f"UPDATE {cfg.keyspace}.user_trades SET price = %s, quantity = %s {where}",
               (b.price + 1, b.quantity + 1, *b.key))
    orphan_user, stray_user = 900_000, 900_001
    insert_row(db, cfg, c._replace(user_id=orphan_user, trade_id=999_999_998))
    insert_row(db, cfg, c._replace(user_id=stray_user, trade_id=999_999_997, settled_at=outside.settled_at))

    _, out = verify(db, cfg, SAMPLED, sample_share=0.25, seed=4321, recent_hours=0, repair=True)
    assert found(out) == {(MISSING, a.trade_id, a.user_id, a.side, ()),
                          (MISMATCHED, b.trade_id, b.user_id, b.side, ("price", "quantity")),
                          (ORPHAN, 999_999_998, orphan_user, c.side, ())}
    assert (out.total.missing, out.total.mismatched, out.total.orphans, out.total.repaired) == (1, 1, 1, 2)
    for row in (a, b):
        assert tuple(user_trade(db, cfg, row.key)[1:14]) == row
    assert user_trade(db, cfg, outside.key) is None
    assert found(verify(db, cfg, SAMPLED, sample_share=0.25, seed=4321, recent_hours=0)[1]) == {
        (ORPHAN, 999_999_998, orphan_user, c.side, ())}


@pytest.mark.parametrize("lookup_rows", [row_parity.LOOKUP_ROWS, 3], ids=["gathered", "looked_up_every_3_rows"])
def test_every_expected_row_of_the_sample_is_looked_up(db, cfg, monkeypatch, lookup_rows):
    """user_trades empty: every row the trades settled in the sample's window convert to is
    missing, exactly once, however the forward check gathers them before looking them up."""
    monkeypatch.setattr(row_parity, "LOOKUP_ROWS", lookup_rows)
    load_trades(db, cfg, N, SEED)
    run, out = verify(db, cfg, SAMPLED, sample_share=0.25, seed=4321, recent_hours=0)
    symbol_ids, ((start, end),) = load_symbol_ids(db, cfg.keyspace), run.window_bounds
    expected = {(MISSING, r.trade_id, r.user_id, r.side, ()) for t, _ in sources(db, cfg).values()
                if t.settled_at and start <= t.settled_at < end
                and not isinstance(rows := convert(t, symbol_ids), Reject) for r in rows}
    assert len(expected) > 100 and found(out) == expected
    assert (out.total.missing, out.total.mismatched, out.total.orphans) == (len(expected), 0, 0)


# --- live writes --------------------------------------------------------------------------------
def test_writes_after_the_start_are_left_to_the_next_run(db, cfg):
    """A row rewritten and a trade settled (without its rows) after the run began are not
    differences of this run; the next run sees them."""
    backfilled(db, cfg, 600)
    src = sources(db, cfg)
    symbol_ids = load_symbol_ids(db, cfg.keyspace)
    first = next(t for t in sorted(src) if not isinstance(convert(src[t][0], symbol_ids), Reject))
    row = convert(src[first][0], symbol_ids)[0]
    run = new_run(db, cfg)
    time.sleep(0.01)
    db.execute(f"UPDATE {cfg.keyspace}.user_trades SET price = %s WHERE user_id = %s AND symbol_id = %s"
               f" AND settled_at = %s AND trade_id = %s AND side = %s", (row[5] + 7, *row.key))
    writer = live_traffic(db, cfg, trades_per_second=0, first_trade_id=LIVE_FIRST)
    writer.run(count=5)   # dual_write is off: settled_trades only
    out = parity.run_all(db, cfg, run)
    assert out.status == parity.CLEAN and out.total.late == 1 + 5
    _, next_run = verify(db, cfg)
    kinds = sorted((d["kind"], d["trade_id"]) for d in next_run.diffs)
    live = [t for t in range(LIVE_FIRST, LIVE_FIRST + 5)
            if not isinstance(convert(sources(db, cfg)[t][0], symbol_ids), Reject)]
    assert kinds == sorted([(MISMATCHED, first)] + [(MISSING, t) for t in live for _ in (0, 1)])


def test_a_difference_counts_only_if_seen_twice(db, cfg):
    """Two trades settled before the run whose rows are not written yet: the rows of one land
    between the first look and the recheck (a lagging dual write), the other's never do."""
    backfilled(db, cfg, 300)
    symbol_ids = load_symbol_ids(db, cfg.keyspace)
    written = int(time.time() * 1e6) - 1_000_000
    a, b = [stamped(t, written * 1000) for t in itertools.islice(live_trades(LIVE_FIRST, 5), 2)]
    for trade in (a, b):
        db.execute(prepared(db, insert_settled(cfg.keyspace)), (*trade, written))
    run = new_run(db, cfg)
    checker = Checker(db, cfg, run, Scope(forward={i: ALL for i in range(SPLITS)}))
    for i in range(SPLITS):
        checker.check_range(i)
    checker.flush()   # the forward check's gathered rows looked up
    assert sorted((d.kind, d.trade_id, d.side) for d in checker.first_look) == [
        (MISSING, a[0], "BUY"), (MISSING, a[0], "SELL"), (MISSING, b[0], "BUY"), (MISSING, b[0], "SELL")]
    for row in convert(a, symbol_ids):   # the lagging write lands
        db.execute(prepared(db, insert_user_trade(cfg.keyspace)), (*row, written))
    assert sorted((d.kind, d.trade_id, d.side) for d in checker.recheck(delay=0)) == [
        (MISSING, b[0], "BUY"), (MISSING, b[0], "SELL")]
    assert sum(t.missing for t in checker.tallies.values()) == 2


@pytest.mark.slow
def test_no_false_alarm_while_the_reference_writer_writes(db, cfg):
    backfilled(db, cfg)
    Flags(db, cfg).set(DUAL_WRITE, "on", actor="pytest", reason="live traffic during the check")
    writer = live_traffic(db, cfg, trades_per_second=200, flag_refresh_s=0.5, first_trade_id=LIVE_FIRST)
    with writer.running():
        while writer.stats.settled < 100:    # some live trades settle before the run starts
            time.sleep(0.05)
        full_run = new_run(db, cfg, recheck_delay=0.5)
        at_start = writer.stats.settled
        while writer.stats.settled < at_start + 50:   # and some after it, before it reads anything
            time.sleep(0.05)
        full = parity.run_all(db, cfg, full_run, batch_count=2)
        sampled_run = new_run(db, cfg, SAMPLED, sample_share=0.25, recheck_delay=0.5)
        sampled = parity.run_all(db, cfg, sampled_run, batch_count=2)
        during = writer.stats.settled - at_start
    assert writer.stats.user_trades_failed == 0 and during > 50
    for out in (full, sampled):
        assert (out.status, out.total.missing, out.total.mismatched, out.total.orphans) == (parity.CLEAN, 0, 0, 0)
    assert full.total.late >= 50
    # beside its window of the history, the sampled run checked the live trades as trades of the last day
    (start, end), (recent_from, _) = sampled_run.window_bounds
    in_window = sum(start <= t.settled_at < end for t, _ in sources(db, cfg).values() if t.settled_at)
    assert sampled.total.source_rows >= in_window + 150
