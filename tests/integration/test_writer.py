"""The reference settlement writer on the real node: dual writes, rejects, the flag bound, failures,
busts and corrections."""
from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from itertools import islice

import pytest
from testkit import generator
from testkit.expectation import assert_exact
from testkit.traffic import CORRECTIONS, corrected, live_trades, live_traffic

from trade_migration.core.clock import naive_utc, now_micros
from trade_migration.core.convert import Reject, convert
from trade_migration.core.model import SETTLED_COLUMNS, USER_TRADE_COLUMNS, SettledTrade, UserTrade
from trade_migration.core.tokens import settled_token
from trade_migration.dual_write.retries import RetryLog
from trade_migration.dual_write.writer import SettlementWriter, WriterOptions
from trade_migration.state.flags import DUAL_WRITE, NEW_ONLY, READ_PATH, Flags
from trade_migration.statements.rejected_trades import rejects_select_all

FIRST = 500_000_000


def settled(db, cfg) -> dict[int, tuple[SettledTrade, int]]:
    """trade_id -> (row, write time of price)."""
    rows = db.execute(f"SELECT {', '.join(SETTLED_COLUMNS)}, WRITETIME(price) AS wt"
                      f" FROM {cfg.keyspace}.settled_trades")
    return {r.trade_id: (SettledTrade._make(tuple(r)[:-1]), r.wt) for r in rows}


def user_trades(db, cfg) -> dict[tuple, tuple[UserTrade, int]]:
    """primary key -> (row, write time of price)."""
    out = {}
    for r in db.execute(f"SELECT {', '.join(USER_TRADE_COLUMNS)}, WRITETIME(price) AS wt"
                        f" FROM {cfg.keyspace}.user_trades"):
        row = UserTrade._make(tuple(r)[:-1])
        out[row.key] = (row, r.wt)
    return out


def rejects(db, cfg) -> dict[int, tuple]:
    return {r.trade_id: (r.row_token, r.reason, r.source)
            for r in db.execute(rejects_select_all(cfg.keyspace))}


@pytest.fixture
def symbols(db, cfg):
    generator.write_symbols(db, cfg.keyspace)
    return {s[0]: s[1] for s in generator.symbols()}


def test_with_dual_write_off_only_settled_trades_is_written(db, cfg, symbols):
    stats = live_traffic(db, cfg, trades_per_second=0, first_trade_id=FIRST).run(count=300)
    assert (stats.settled, stats.user_trade_rows, stats.rejected, stats.user_trades_failed) == (300, 0, 0, 0)
    assert sorted(settled(db, cfg)) == list(range(FIRST, FIRST + 300))
    assert user_trades(db, cfg) == {}
    assert rejects(db, cfg) == {}


def test_dual_write_writes_the_converted_rows_with_the_same_timestamp(db, cfg, symbols):
    Flags(db, cfg).set(DUAL_WRITE, "on", actor="pytest", reason="test")
    stats = live_traffic(db, cfg, trades_per_second=0, first_trade_id=FIRST).run(count=500)

    source = settled(db, cfg)
    expected_rows, expected_rejects = {}, {}
    for trade_id, (trade, wt) in source.items():
        out = convert(trade, symbols)
        if isinstance(out, Reject):
            expected_rejects[trade_id] = (settled_token(trade_id), out.reason, "writer")
        else:
            expected_rows.update({r.key: (r, wt) for r in out})
    assert len(source) == 500 and stats.settled == 500
    assert len(expected_rejects) == 2          # trades 125 and 375 of the generator's mix
    assert user_trades(db, cfg) == expected_rows
    assert rejects(db, cfg) == expected_rejects
    assert (stats.user_trade_rows, stats.rejected, stats.user_trades_failed) == (2 * 498, 2, 0)
    # the reject's token is the one the cluster computes
    some = next(iter(expected_rejects))
    assert db.execute(f"SELECT token(trade_id) FROM {cfg.keyspace}.settled_trades WHERE trade_id = %s",
                      (some,)).one()[0] == expected_rejects[some][0]


def test_live_trades_are_settled_now(db, cfg, symbols):
    before = datetime.now(UTC).replace(tzinfo=None) - timedelta(milliseconds=1)
    live_traffic(db, cfg, trades_per_second=0, first_trade_id=FIRST).run(count=50)
    after = datetime.now(UTC).replace(tzinfo=None)
    for trade, wt in settled(db, cfg).values():
        if trade[13] is not None:
            assert before <= trade[13] <= after
            assert wt // 1000 == int((trade[13] - datetime(1970, 1, 1)).total_seconds() * 1000)


def test_a_failed_user_trades_write_does_not_fail_the_settlement(db, cfg, symbols):
    Flags(db, cfg).set(DUAL_WRITE, "on", actor="pytest", reason="test")
    writer = live_traffic(db, cfg, trades_per_second=0, first_trade_id=FIRST,
                          user_trades_table="user_trades_missing")
    first = next(t for t in live_trades(FIRST, 1) if not isinstance(convert(t, symbols), Reject))
    assert writer.writer.settle(first).outcome == "dual_write_failed"
    stats = writer.run(count=100)   # ids FIRST.. again: every one settles, no dual write lands
    assert sorted(settled(db, cfg)) == list(range(FIRST, FIRST + 100))
    assert user_trades(db, cfg) == {}
    assert (stats.settled, stats.user_trades_failed, stats.user_trade_rows) == (101, 101, 0)
    assert (stats.retries_recorded, stats.retry_record_failures, stats.injected_failures) == (101, 0, 0)
    assert "user_trades_missing" in stats.last_error
    # each failure is recorded durably for the healer: FIRST twice (two write times), the rest once
    recorded = RetryLog(db, cfg).pending()
    assert sorted(r.trade_id for r in recorded) == [FIRST, *range(FIRST, FIRST + 100)]
    assert {(r.action, r.stale_keys, r.attempts) for r in recorded} == {("write", frozenset(), 1)}
    assert all("user_trades_missing" in r.last_error for r in recorded)
    assert {r.trade_id: r.write_time for r in recorded} == {t: wt for t, (_, wt) in settled(db, cfg).items()}


def test_a_seeded_share_of_dual_writes_fails_inside_the_writer_and_is_recorded(db, cfg, symbols):
    Flags(db, cfg).set(DUAL_WRITE, "on", actor="pytest", reason="test")
    stats = live_traffic(db, cfg, trades_per_second=0, first_trade_id=FIRST, dual_write_failure_share=0.25,
                         bust_share=0.05, correction_share=0.1, seed=5).run(count=400)
    draws = random.Random(5)    # the writer's fault_seed is the traffic's seed
    operations = stats.settled + stats.busted + stats.corrected
    expected_failures = sum(draws.random() < 0.25 for _ in range(operations))
    assert stats.settled == 400 and stats.busted > 0 and stats.corrected > 0
    assert stats.injected_failures == stats.user_trades_failed == stats.retries_recorded == expected_failures > 0
    assert len(RetryLog(db, cfg).pending()) == expected_failures
    assert stats.retry_record_failures == 0 and "injected fault" in stats.last_error


def _dual_writer(db, cfg) -> SettlementWriter:
    Flags(db, cfg).set(DUAL_WRITE, "on", actor="pytest", reason="test")
    return SettlementWriter(db, cfg, WriterOptions(flag_refresh_s=0))


def naive(trade: SettledTrade) -> SettledTrade:
    """The trade as read back (the driver's naive UTC times)."""
    return trade._replace(matched_at=trade.matched_at and naive_utc(trade.matched_at),
                          settled_at=trade.settled_at and naive_utc(trade.settled_at))


def _keys(trade, symbols) -> set:
    out = convert(trade, symbols)
    return set() if isinstance(out, Reject) else {r.key for r in out}


def test_busts_and_corrections_leave_user_trades_the_conversion_of_settled_trades(db, cfg, symbols):
    """Corrections of every kind (key columns, values, a value to null, valid to reject, reject to
    valid), chained corrections, busts of valid trades and of rejects: one timestamp each."""
    writer = _dual_writer(db, cfg)
    trades = list(islice(live_trades(FIRST, 1), 500))
    ts = now_micros()
    for i, t in enumerate(trades):
        writer.settle(t, write_time=ts + i)
    at = trades[0].settled_at
    current = {t.trade_id: t for t in trades}
    reject_ids = [t.trade_id for t in trades if isinstance(convert(t, symbols), Reject)]
    assert reject_ids == [FIRST + 125, FIRST + 375]
    expected_deletes = 0
    ops = [("correct", FIRST + 20 + j, kind) for j, kind in enumerate(CORRECTIONS * 3)]   # ids 20..40
    ops += [("correct", FIRST + 60, "settled_at"), ("correct", FIRST + 60, "parties"),
            ("correct", FIRST + 60, "symbol"),                             # chained
            ("correct", FIRST + 61, "to_reject"), ("correct", FIRST + 61, "any"),   # to reject and back
            ("correct", FIRST + 62, "symbol"), ("bust", FIRST + 62, None),           # corrected, then busted
            ("correct", FIRST + 125, "any"),                               # reject made valid
            ("bust", FIRST + 375, None), *(("bust", FIRST + k, None) for k in range(5))]
    for n, (op, trade_id, kind) in enumerate(ops, start=1):
        old = current[trade_id]
        if op == "bust":
            expected_deletes += len(_keys(old, symbols))
            assert writer.bust(old, write_time=ts + 10_000 + n).outcome == "dual_written"
            del current[trade_id]
        else:
            new = corrected(old, kind, at)
            expected_deletes += len(_keys(old, symbols) - _keys(new, symbols))
            outcome = writer.correct(old, new, write_time=ts + 10_000 + n).outcome
            assert outcome == ("rejected" if isinstance(convert(new, symbols), Reject) else "dual_written")
            current[trade_id] = new

    assert sorted(settled(db, cfg)) == sorted(current)
    assert {t: row for t, (row, _) in settled(db, cfg).items()} == {t: naive(v) for t, v in current.items()}
    rows, rejected = assert_exact(db, cfg.keyspace)
    assert sorted(rejected) == [FIRST + 26, FIRST + 33, FIRST + 40]   # the to_reject corrections
    assert len(rows) == 2 * (len(current) - 3)
    s = writer.stats
    assert (s.settled, s.busted, s.corrected) == (500, 7, len(ops) - 7)
    assert s.user_trade_deletes == expected_deletes and s.user_trades_failed == 0


def test_nulls_are_left_unset_and_a_value_corrected_to_null_is_cleared(db, cfg, symbols):
    """No tombstone from a null: an older write of the column still shows through. A value corrected
    to null is cleared at the correction's time: an older write does not show through."""
    writer = _dual_writer(db, cfg)
    trade = next(t for t in live_trades(FIRST, 1) if not isinstance(convert(t, symbols), Reject))
    null_fee = trade._replace(buyer_fee=None)
    ts = now_micros()
    writer.settle(null_fee, write_time=ts)
    buyer_key = convert(null_fee, symbols)[0].key
    where = "user_id = %s AND symbol_id = %s AND settled_at = %s AND trade_id = %s AND side = %s"

    def older_fee(at: int):
        db.execute(f"UPDATE {cfg.keyspace}.user_trades USING TIMESTAMP %s SET fee = 7 WHERE {where}",
                   (at, *buyer_key))
        return db.execute(f"SELECT fee FROM {cfg.keyspace}.user_trades WHERE {where}", buyer_key).one().fee

    assert older_fee(ts - 1) == 7                    # the settlement wrote no tombstone for the null fee
    with_fee = null_fee._replace(buyer_fee=123)
    writer.correct(null_fee, with_fee, write_time=ts + 10)
    writer.correct(with_fee, null_fee, write_time=ts + 20)
    assert older_fee(ts + 19) is None                # the correction to null cleared the value
    assert_exact(db, cfg.keyspace)


def test_busts_and_corrections_in_new_only_write_user_trades_alone(db, cfg, symbols):
    flags = Flags(db, cfg)
    flags.set(DUAL_WRITE, "on", actor="t", reason="dual writes")
    flags.set(READ_PATH, "shadow", actor="t", reason="shadow")
    flags.set(READ_PATH, "user_trades", actor="t", reason="reads moved")
    flags.set(DUAL_WRITE, NEW_ONLY, actor="t", reason="stop writing the legacy table")
    writer = SettlementWriter(db, cfg, WriterOptions(flag_refresh_s=0))
    a, b = [t for t in islice(live_trades(FIRST, 1), 10) if not isinstance(convert(t, symbols), Reject)][:2]
    ts = now_micros()
    writer.settle(a, write_time=ts)
    writer.settle(b, write_time=ts)
    moved = corrected(a, "parties", a.settled_at)
    assert writer.correct(a, moved, write_time=ts + 1).outcome == "new_only"
    assert writer.bust(b, write_time=ts + 1).outcome == "new_only"
    assert settled(db, cfg) == {}
    assert user_trades(db, cfg) == {r.key: (r, ts + 1) for r in convert(naive(moved), symbols)}
    assert (writer.stats.settled, writer.stats.corrected, writer.stats.busted) == (0, 1, 1)


def test_the_writer_picks_up_a_flag_change_within_its_bound(db, cfg, symbols):
    """Every trade settled more than flag_refresh_s after the change committed is dual-written;
    none settled before the change started is."""
    bound = 0.5
    writer = live_traffic(db, cfg, flag_refresh_s=bound, trades_per_second=100, first_trade_id=FIRST)
    with writer.running():
        while writer.stats.settled < 50:
            time.sleep(0.05)
        changed = datetime.now(UTC).replace(tzinfo=None)
        Flags(db, cfg).set(DUAL_WRITE, "on", actor="pytest", reason="test the bound")
        committed = datetime.now(UTC).replace(tzinfo=None)
        settled_at_change = writer.stats.settled
        while writer.stats.settled < settled_at_change + 150:   # 1.5 s of traffic at 100/s: 3 bounds
            time.sleep(0.05)
    assert writer.stats.user_trades_failed == 0

    rows = user_trades(db, cfg)
    dual = {k[3] for k in rows}
    before, late = [], []
    for trade_id, (trade, _) in settled(db, cfg).items():
        at = trade[13]
        if at is None or isinstance(convert(trade, symbols), Reject):
            continue
        if at < changed - timedelta(milliseconds=1):
            before.append(trade_id)
        elif at > committed + timedelta(seconds=bound + 0.05):   # 50 ms: wall vs monotonic clock, ms rounding
            late.append(trade_id)
    assert len(before) >= 45 and len(late) >= 50
    assert [t for t in before if t in dual] == []
    assert [t for t in late if t not in dual] == []
    # and the first dual-written trade came within the bound
    first = min(settled(db, cfg)[t][0][13] for t in dual)
    assert changed <= first + timedelta(milliseconds=1) and first <= committed + timedelta(seconds=bound + 0.05)


def test_new_only_writes_user_trades_alone_and_needs_reads_moved(db, cfg):
    """After the switch the writer stops writing settled_trades; the switch needs reads on user_trades."""
    from testkit import generator

    from trade_migration.core.errors import ConfigError
    from trade_migration.dual_write.writer import SettlementWriter, WriterOptions
    from trade_migration.state.flags import DUAL_WRITE, NEW_ONLY, READ_PATH, Flags, check_writer_switch

    generator.write_symbols(db, cfg.keyspace)
    flags = Flags(db, cfg)
    flags.set(DUAL_WRITE, "on", actor="t", reason="dual writes")
    with pytest.raises(ConfigError, match="switch reads to user_trades first"):
        check_writer_switch(NEW_ONLY, flags.all())
    flags.set(READ_PATH, "shadow", actor="t", reason="shadow")
    flags.set(READ_PATH, "user_trades", actor="t", reason="reads moved")
    check_writer_switch(NEW_ONLY, flags.all())
    flags.set(DUAL_WRITE, NEW_ONLY, actor="t", reason="stop writing the legacy table")
    writer = SettlementWriter(db, cfg, WriterOptions(flag_refresh_s=0))
    trades = list(islice(live_trades(5_000_000, 3), 20))
    outcomes = [writer.settle(t).outcome for t in trades]
    assert db.execute(f"SELECT count(*) FROM {cfg.keyspace}.settled_trades").one()[0] == 0
    rows = db.execute(f"SELECT count(*) FROM {cfg.keyspace}.user_trades").one()[0]
    assert rows == 2 * outcomes.count("new_only") and outcomes.count("new_only") + outcomes.count("rejected") == 20
