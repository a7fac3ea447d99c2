"""The backfill against the real node, compared with an expectation computed independently
from settled_trades (the contract's mapping written out again here, not trades.convert)."""
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import load_trades, mark_done

from trade_migration.backfill import copier, plan, summary
from trade_migration.backfill.copier import Options
from trade_migration.core.errors import RangeTimeout
from trade_migration.core.tokens import MAX_TOKEN, MIN_RESPLIT_WIDTH, MIN_TOKEN, TokenRange
from trade_migration.state.ledger import DONE, FAILED, Ledger

N = 100_000
RING = [TokenRange(MIN_TOKEN, MAX_TOKEN)]


@pytest.fixture(scope="module")
def source(cluster_session, cfg):
    """100k generated trades, loaded once for the module."""
    for t in ("symbols", "settled_trades"):
        cluster_session.execute(f"TRUNCATE {cfg.keyspace}.{t}")
    return load_trades(cluster_session, cfg, N, seed=2024)


@pytest.fixture
def target(cluster_session, cfg, source):
    for t in ("user_trades", "backfill_ranges", "rejected_trades"):
        cluster_session.execute(f"TRUNCATE {cfg.keyspace}.{t}")
    return cluster_session


def expectation(session, ks):
    """(rows by key, reject code by trade_id), straight from the contract's table."""
    symbols = {r.symbol: r.symbol_id for r in session.execute(f"SELECT symbol, symbol_id FROM {ks}.symbols")}
    rows, rejects = {}, {}
    q = (f"SELECT trade_id, output_seq, symbol, price, quantity, buyer_user_id, seller_user_id, buyer_order_id,"
         f" seller_order_id, taker_side, buyer_fee, seller_fee, matched_at, settled_at, WRITETIME(price) AS wt"
         f" FROM {ks}.settled_trades")
    for t in session.execute(q):
        if t.symbol not in symbols:
            rejects[t.trade_id] = "unknown_symbol"
        elif t.buyer_user_id is None:
            rejects[t.trade_id] = "null_buyer_user_id"
        elif t.seller_user_id is None:
            rejects[t.trade_id] = "null_seller_user_id"
        elif t.settled_at is None:
            rejects[t.trade_id] = "null_settled_at"
        elif t.price is None or t.price <= 0:
            rejects[t.trade_id] = "bad_price"
        elif t.quantity is None or t.quantity <= 0:
            rejects[t.trade_id] = "bad_quantity"
        elif t.taker_side not in ("BUY", "SELL"):
            rejects[t.trade_id] = "bad_taker_side"
        else:
            sid = symbols[t.symbol]
            for user, side, fee, order, other in (
                    (t.buyer_user_id, "BUY", t.buyer_fee, t.buyer_order_id, t.seller_user_id),
                    (t.seller_user_id, "SELL", t.seller_fee, t.seller_order_id, t.buyer_user_id)):
                rows[(user, sid, t.settled_at, t.trade_id, side)] = (
                    t.price, t.quantity, fee, order, other, t.taker_side == side, t.matched_at, t.output_seq, t.wt)
    return rows, rejects


def actual(session, ks):
    q = (f"SELECT user_id, symbol_id, settled_at, trade_id, side, price, quantity, fee, order_id,"
         f" counterparty_user_id, is_taker, matched_at, output_seq, WRITETIME(price) AS wt FROM {ks}.user_trades")
    rows = {tuple(r[:5]): tuple(r[5:]) for r in session.execute(q)}
    rejects = {r.trade_id: r.reason.split(":")[0]
               for r in session.execute(f"SELECT trade_id, reason, raw FROM {ks}.rejected_trades")}
    return rows, rejects


def assert_exact(session, ks):
    expect_rows, expect_rejects = expectation(session, ks)
    got_rows, got_rejects = actual(session, ks)
    assert len(got_rows) == len(expect_rows)
    assert got_rows == expect_rows          # every row, every value, the source write time, nothing extra
    assert got_rejects == expect_rejects
    return expect_rows, expect_rejects


def run(session, cfg, backfill_id, splits=16, **opts):
    ledger = Ledger(session, cfg, backfill_id)
    work = plan.select(plan.ensure_ledger(session, cfg, ledger, splits), ledger, None)
    return copier.run_batch(session, cfg, backfill_id, [w.token_range for w in work], Options(**opts))


def test_backfill_is_exact_and_a_rerun_writes_nothing(target, cfg, source):
    result = run(target, cfg, "exact")
    rows, rejects = assert_exact(target, cfg.keyspace)
    assert result == {"ranges": 16, "rows_read": N, "rows_written": source.user_trade_rows,
                      "rows_rejected": sum(source.rejects.values())}
    assert len(rows) == source.user_trade_rows and len(rejects) == 400
    self_trades = {k[3] for k in rows if rows[k][4] == k[0]}
    assert len(self_trades) == source.self_trades == 500   # each as two rows, BUY and SELL
    report = summary.backfill_summary(Ledger(target, cfg, "exact").load())
    assert (report["complete"], report["rows_read"], report["rows_written"]) == (True, N, source.user_trade_rows)

    again = run(target, cfg, "exact")
    assert again == {"ranges": 0, "rows_read": 0, "rows_written": 0, "rows_rejected": 0}
    assert actual(target, cfg.keyspace)[0] == rows


def test_backfill_never_overwrites_a_newer_write(target, cfg, source):
    """A correction written after the source row (newer timestamp) survives a backfill."""
    key = next(iter(expectation(target, cfg.keyspace)[0]))
    target.execute(f"INSERT INTO {cfg.keyspace}.user_trades (user_id, symbol_id, settled_at, trade_id, side, price)"
                   f" VALUES (%s, %s, %s, %s, %s, 1) USING TIMESTAMP %s", (*key, int(time.time() * 1e6)))
    run(target, cfg, "newer", splits=4)
    price = target.execute(f"SELECT price FROM {cfg.keyspace}.user_trades WHERE user_id=%s AND symbol_id=%s"
                           f" AND settled_at=%s AND trade_id=%s AND side=%s", key).one().price
    assert price == 1


def test_sigkill_mid_range_resumes_from_the_checkpoint(target, cfg, source):
    mark_done(target, cfg, "create_table", "dual_write")   # the command's order guard
    env = {**os.environ, "TM_KEYSPACE": cfg.keyspace}
    proc = subprocess.Popen([sys.executable, "-m", "trade_migration.backfill_cli", "--backfill-id", "killed",
                             "--splits", "1", "--rows-per-second", "4000", "--fetch-size", "500"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ledger = Ledger(target, cfg, "killed")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = ledger.load()
        if states and states[0].rows_read >= N // 4:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (killed,) = ledger.load()
    assert killed.status == "running" and MIN_TOKEN < killed.checkpoint < MAX_TOKEN
    done_before = killed.rows_read
    assert N // 4 <= done_before < N

    resumed = copier.run_batch(target, cfg, "killed", RING, Options())
    assert resumed["rows_read"] == N - done_before       # only the rest: less work than a restart
    (final,) = ledger.load()
    assert (final.status, final.attempts, final.rows_read) == (DONE, 2, N)
    assert_exact(target, cfg.keyspace)


def test_a_range_that_times_out_is_resplit_on_its_next_attempt(target, cfg, source):
    with pytest.raises(RangeTimeout):
        run(target, cfg, "slow", splits=2, page_timeout=0.0001)
    failed = [s for s in Ledger(target, cfg, "slow").load() if s.resplit]
    assert failed and failed[0].last_error.startswith("timed out at token")
    original = {s.range_start: s.label for s in failed}
    run(target, cfg, "slow", splits=2)
    states = Ledger(target, cfg, "slow").load()
    children = [s for s in states if s.parent_start is not None]
    parents = {c.parent_start for c in children}
    assert len(parents) == len(failed) == 2 and len(children) == 3 * len(parents)
    assert all(s.status == DONE for s in states) and len(states) == 8
    assert [s.attempts for s in states if s.range_start in parents] == [2, 2]
    assert summary.backfill_summary(states)["complete"] is True
    assert sum(s.rows_read for s in states) == N
    assert_exact(target, cfg.keyspace)
    # The label the engineer copied before the re-split still names the range: its pieces.
    ledger = Ledger(target, cfg, "slow")
    start, label = sorted(original.items())[0]
    picked = plan.select(ledger.load(), ledger, [label])
    assert sorted(p.range_start for p in picked) == sorted(
        s.range_start for s in states if start in (s.range_start, s.parent_start))
    assert len(picked) == 4


def test_a_range_at_the_minimum_size_that_times_out_fails_without_a_resplit(target, cfg, source):
    ledger = Ledger(target, cfg, "floor")
    narrow = TokenRange(MIN_TOKEN, MIN_TOKEN + MIN_RESPLIT_WIDTH)      # one piece of the finest grain
    ledger.plan([narrow])
    with pytest.raises(RangeTimeout, match="not re-split: it is at the minimum range size"):
        copier.run_batch(target, cfg, "floor", [narrow], Options(page_timeout=0.0001))
    (after,) = ledger.load()
    assert (after.status, after.resplit, after.range_end) == (FAILED, False, narrow.end)
    assert "rerun the range with a larger page_timeout_s or a smaller fetch_size" in after.last_error
    assert "page_timeout_s=0.0001" in after.last_error


def test_an_explicit_range_is_rerun_and_unknown_ranges_are_refused(target, cfg, source):
    run(target, cfg, "explicit", splits=4)
    ledger = Ledger(target, cfg, "explicit")
    first = sorted(ledger.load(), key=lambda s: s.range_start)[0]
    done_rows = first.rows_read
    work = plan.select(ledger.load(), ledger, [first.label])
    assert [w.range_start for w in work] == [first.range_start]
    result = copier.run_batch(target, cfg, "explicit", [first.token_range], Options())
    assert result["ranges"] == 1 and result["rows_read"] == done_rows > 0
    with pytest.raises(ValueError, match="not in backfill"):
        plan.select(ledger.load(), ledger, ["(1, 2]"])
    assert_exact(target, cfg.keyspace)
