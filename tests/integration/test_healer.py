"""The healer on the real node: failed dual writes, busts and corrections recorded by the writer and
finished without a human, at the source's write time, never over a newer write, idempotently."""
from __future__ import annotations

import time
from itertools import islice

import pytest
from testkit import generator
from testkit.expectation import assert_exact
from testkit.traffic import corrected, live_trades, live_traffic

from trade_migration.core.clock import now_micros
from trade_migration.core.convert import Reject, convert
from trade_migration.core.model import USER_TRADE_COLUMNS, USER_TRADE_REGULAR, SettledTrade
from trade_migration.dual_write.healer import heal
from trade_migration.dual_write.retries import RetryLog
from trade_migration.dual_write.writer import SettlementWriter, WriterOptions
from trade_migration.state.flags import DUAL_WRITE, Flags

FIRST = 600_000_000
NOTHING = {"pending": 0, "healed": 0, "left": 0, "failed": 0, "trades_healed": 0, "busted": 0,
           "rows_written": 0, "keys_deleted": 0, "errors": []}


@pytest.fixture
def symbols(db, cfg):
    generator.write_symbols(db, cfg.keyspace)
    Flags(db, cfg).set(DUAL_WRITE, "on", actor="pytest", reason="dual writes")
    return {s[0]: s[1] for s in generator.symbols()}


def writer(db, cfg, **options) -> SettlementWriter:
    return SettlementWriter(db, cfg, WriterOptions(flag_refresh_s=0, **options))


def failing(db, cfg) -> SettlementWriter:
    """Every user_trades part fails inside the writer, before anything is sent."""
    return writer(db, cfg, user_trades_failure_share=1.0)


def valid(symbols, n: int, first: int = FIRST) -> list[SettledTrade]:
    return [t for t in islice(live_trades(first, 1), n) if not isinstance(convert(t, symbols), Reject)]


def target(db, cfg) -> dict:
    """Every user_trades row with the write time of each of its regular columns (None: no value)."""
    stamps = ", ".join(f"WRITETIME({c})" for c in USER_TRADE_REGULAR)
    rows = db.execute(f"SELECT {', '.join(USER_TRADE_COLUMNS)}, {stamps} FROM {cfg.keyspace}.user_trades")
    n = len(USER_TRADE_COLUMNS)
    return {tuple(r[:5]): (tuple(r[:n]), tuple(r[n:])) for r in rows}


def assert_written_at_source_time(db, cfg) -> None:
    """Every value in user_trades carries its trade's settled_trades write time, and only that."""
    source = {r.trade_id: r.wt for r in db.execute(f"SELECT trade_id, WRITETIME(price) AS wt"
                                                   f" FROM {cfg.keyspace}.settled_trades")}
    for key, (_, stamps) in target(db, cfg).items():
        assert {s for s in stamps if s is not None} == {source[key[3]]}, key


def test_a_failed_dual_write_is_recorded_and_healed_at_the_source_write_time(db, cfg, symbols):
    broken = writer(db, cfg, user_trades_table="user_trades_missing")
    trades = list(islice(live_trades(FIRST, 1), 200))
    ts = now_micros()
    outcomes = {broken.settle(t, write_time=ts + i).outcome for i, t in enumerate(trades)}
    assert outcomes == {"dual_write_failed"}
    recorded = RetryLog(db, cfg).pending()
    assert sorted((r.trade_id, r.write_time, r.action, r.attempts) for r in recorded) == [
        (t.trade_id, ts + i, "write", 1) for i, t in enumerate(trades)]
    assert target(db, cfg) == {}

    assert heal(db, cfg) == {**NOTHING, "pending": 200, "healed": 200, "trades_healed": 200,
                             "rows_written": 2 * 199}
    rows, rejected = assert_exact(db, cfg.keyspace)
    assert (len(rows), rejected) == (2 * 199, {FIRST + 125: "unknown_symbol"})
    assert_written_at_source_time(db, cfg)
    assert RetryLog(db, cfg).pending() == []


def test_heal_is_idempotent(db, cfg, symbols):
    trades = valid(symbols, 30)
    ts = now_micros()
    bad = failing(db, cfg)
    for i, t in enumerate(trades):
        bad.settle(t, write_time=ts + i)
    bad.correct(trades[0], corrected(trades[0], "settled_at", trades[0].settled_at), write_time=ts + 100)
    bad.bust(trades[1], write_time=ts + 100)
    first = heal(db, cfg)
    assert (first["pending"], first["healed"], first["left"]) == (len(trades) + 2, len(trades) + 2, 0)
    after = target(db, cfg)
    assert heal(db, cfg) == NOTHING
    assert target(db, cfg) == after
    # the same failures recorded again (a second healer's view, a replayed record): nothing changes
    log = RetryLog(db, cfg)
    for i, t in enumerate(trades):
        log.record(t.trade_id, ts + i, "write", (), RuntimeError("again"))
    log.record(trades[0].trade_id, ts + 100, "correct", {r.key for r in convert(trades[0], symbols)},
               RuntimeError("again"))
    assert heal(db, cfg)["healed"] == len(trades) + 1
    assert target(db, cfg) == after
    assert_exact(db, cfg.keyspace)
    assert_written_at_source_time(db, cfg)


def test_heal_never_beats_a_newer_write(db, cfg, symbols):
    """The dual writes failed; then the trades were corrected, busted or corrected into a reject
    by dual writes that landed. Healing the old failures leaves the newer versions standing."""
    a, b, c, d = valid(symbols, 4)
    ts = now_micros()
    bad, good = failing(db, cfg), writer(db, cfg)
    for t in (a, b, c, d):
        assert bad.settle(t, write_time=ts).outcome == "dual_write_failed"
    moved = corrected(a, "settled_at", a.settled_at)
    good.correct(a, moved, write_time=ts + 10)
    good.bust(b, write_time=ts + 10)
    good.correct(c, corrected(c, "to_reject", c.settled_at), write_time=ts + 10)
    good.correct(d, corrected(d, "fee_to_null", d.settled_at), write_time=ts + 10)
    before = target(db, cfg)

    assert heal(db, cfg) == {**NOTHING, "pending": 4, "healed": 4, "trades_healed": 4, "busted": 1,
                             "rows_written": 4}
    assert target(db, cfg) == before
    rows, rejected = assert_exact(db, cfg.keyspace)
    assert {k[3] for k in rows} == {a.trade_id, d.trade_id} and rejected == {c.trade_id: "null_settled_at"}
    assert {k[2] for k in rows if k[3] == a.trade_id} == {moved.settled_at.replace(tzinfo=None)}
    assert_written_at_source_time(db, cfg)


def test_failed_busts_and_corrections_are_healed(db, cfg, symbols):
    trades = list(islice(live_trades(FIRST, 1), 130))
    reject = trades[125]
    a, b, c, d, e, f = [t for t in trades[:8] if not isinstance(convert(t, symbols), Reject)][:6]
    ts = now_micros()
    good, bad = writer(db, cfg), failing(db, cfg)
    for t in trades:
        good.settle(t, write_time=ts)
    at = a.settled_at
    bad.correct(a, corrected(a, "settled_at", at), write_time=ts + 10)        # keys moved
    bad.correct(b, corrected(b, "fee_to_null", at), write_time=ts + 10)       # values to null, same keys
    bad.correct(c, corrected(c, "to_reject", at), write_time=ts + 10)         # valid -> reject
    bad.correct(reject, corrected(reject, "any", at), write_time=ts + 10)     # reject -> valid
    bad.bust(d, write_time=ts + 10)
    e2 = corrected(e, "symbol", at)
    bad.correct(e, e2, write_time=ts + 10)                                    # two failed corrections:
    bad.correct(e2, corrected(e2, "parties", at), write_time=ts + 20)         # both keys sets go
    f2 = corrected(f, "settled_at", at)
    bad.correct(f, f2, write_time=ts + 10)                                    # failed, then reverted by
    good.correct(f2, f, write_time=ts + 20)                                   # a dual write that landed
    assert bad.stats.retries_recorded == bad.stats.user_trades_failed == 8
    with pytest.raises(AssertionError):
        assert_exact(db, cfg.keyspace)

    # written: a, b, e, f and the former reject; deleted: a's and e's first keys, e's second, d's, c's
    assert heal(db, cfg) == {**NOTHING, "pending": 8, "healed": 8, "trades_healed": 7, "busted": 1,
                             "rows_written": 2 * 5, "keys_deleted": 2 * 5}
    rows, rejected = assert_exact(db, cfg.keyspace)
    assert rejected == {c.trade_id: "null_settled_at"} and len(rows) == 2 * (len(trades) - 2)
    assert_written_at_source_time(db, cfg)
    assert [v[2] for k, v in rows.items() if k[3] == b.trade_id and k[4] == "BUY"] == [None]   # the fee cleared


def test_a_record_that_cannot_be_healed_stays_with_its_attempts(db, cfg, symbols):
    t = valid(symbols, 1)[0]
    ts = now_micros()
    writer(db, cfg).settle(t, write_time=ts)
    log = RetryLog(db, cfg)
    bad_key = (None, 1, t.settled_at, t.trade_id, "BUY")   # a key no delete can bind (or route)
    log.record(t.trade_id, ts, "bust", {bad_key}, RuntimeError("first"))
    out = heal(db, cfg)
    assert {k: out[k] for k in ("pending", "healed", "left", "failed")} == {
        "pending": 1, "healed": 0, "left": 1, "failed": 1}
    assert out["errors"] == [f"trade {t.trade_id}: TypeError: object of type 'NoneType' has no len()"]
    (left,) = log.pending()
    assert (left.attempts, left.last_error) == (2, "TypeError: object of type 'NoneType' has no len()")
    assert_exact(db, cfg.keyspace)


def test_limit_heals_that_many_trades(db, cfg, symbols):
    bad = failing(db, cfg)
    for t in valid(symbols, 5):
        bad.settle(t)
    assert heal(db, cfg, limit=2) == {**NOTHING, "pending": 5, "healed": 2, "left": 3, "trades_healed": 2,
                                      "rows_written": 4}
    assert heal(db, cfg)["healed"] == 3
    assert_exact(db, cfg.keyspace)


def test_healing_next_to_live_traffic_with_faults_busts_and_corrections(db, cfg, symbols):
    """Seeded failures, busts and corrections of live traffic, healed while the writer goes on:
    once the last failures are healed, user_trades is exactly the conversion of settled_trades."""
    traffic = live_traffic(db, cfg, flag_refresh_s=0.2, trades_per_second=400, first_trade_id=FIRST,
                           dual_write_failure_share=0.2, bust_share=0.05, correction_share=0.2, seed=9)
    runs = []
    with traffic.running():
        while traffic.stats.settled < 600:
            runs.append(heal(db, cfg))
            time.sleep(0.05)
    last = heal(db, cfg)
    s = traffic.stats
    assert s.busted > 10 and s.corrected > 50 and s.injected_failures > 50
    assert s.injected_failures == s.user_trades_failed == s.retries_recorded
    assert sum(r["healed"] for r in [*runs, last]) == s.retries_recorded
    assert all(r["failed"] == 0 for r in [*runs, last]) and last["left"] == 0
    assert RetryLog(db, cfg).pending() == []
    assert_exact(db, cfg.keyspace)
    assert_written_at_source_time(db, cfg)
