"""Bad input against the real node: every trade ends as user_trades rows or as a reject with its
raw values, extreme values copy exactly, and a setup that cannot work fails at once, clearly,
without leaving a ledger behind.

The expectation is computed from settled_trades by tests/expectation.py (the contract written
out again), never by the product's own conversion.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime

import pytest
from conftest import load_trades, mark_done
from testkit.expectation import actual, assert_exact, expectation, raw_round_trips, source_rows, symbol_map
from testkit.statements import delete_symbol, insert_symbol

from trade_migration.backfill import copier, plan, summary
from trade_migration.backfill.copier import Options
from trade_migration.core.config import Config
from trade_migration.create_table import schema
from trade_migration.state import phases
from trade_migration.state.ledger import DONE, PENDING, Ledger
from trade_migration.statements.settled_trades import insert_settled
from trade_migration.statements.system import drop_table
from trade_migration.verify import parity

MIN_BIGINT, MAX_BIGINT = -(2**63), 2**63 - 1
MIN_INT, MAX_INT = -(2**31), 2**31 - 1
# The contract's reasons, spelled out here rather than imported from the product.
REASONS = ("unknown_symbol", "null_buyer_user_id", "null_seller_user_id", "null_settled_at", "bad_price",
           "bad_quantity", "bad_taker_side")
PLANTED_FIRST = 900_000_000
T0 = datetime(2026, 6, 1, 12, 0, 0, 123000)
BAD_INPUTS: Counter = Counter()   # what this module tried, by kind (printed for the report)


def now_us() -> int:
    return int(time.time() * 1e6)


def insert_trades(db, ks: str, rows: list[tuple], writetime: int | None = None) -> None:
    stmt = db.prepare(insert_settled(ks))
    for row in rows:
        db.execute(stmt, (*row, writetime or now_us()))


def valid(trade_id: int, **changes) -> tuple:
    """A clean trade in SETTLED_COLUMNS order, with some columns changed."""
    row = dict(trade_id=trade_id, output_seq=7, symbol="BTC_USDT", price=6_700_000, quantity=1500, buyer_user_id=1001,
               seller_user_id=1002, buyer_order_id=17, seller_order_id=18, taker_side="BUY",
               buyer_fee=10, seller_fee=11, matched_at=T0, settled_at=T0)
    unknown = set(changes) - set(row)
    assert not unknown, unknown
    row.update(changes)
    return tuple(row.values())


def run_ranges(db, cfg, backfill_id: str, *, splits: int = 8, spans=None, **opts) -> dict:
    ledger = Ledger(db, cfg, backfill_id)
    work = plan.select(plan.ensure_ledger(db, cfg, ledger, splits), ledger, None)
    return copier.run_batch(db, cfg, backfill_id, spans or [w.token_range for w in work], Options(**opts))


def full_parity(db, cfg, run_id: str):
    run = parity.plan_run(db, cfg, run_id=run_id, mode="full", splits=8, recheck_delay=0.1)
    return parity.run_all(db, cfg, run, batch_count=2)


def cli(keyspace: str, *args: str) -> subprocess.CompletedProcess:
    """The backfill without Airflow, as on-call runs it, in its own process."""
    env = {**os.environ, "TM_KEYSPACE": keyspace}
    return subprocess.run([sys.executable, "-m", "trade_migration.backfill_cli", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def error_line(stderr: str) -> str:
    """The exception line a failed run ends with (log lines after it, e.g. the driver's shutdown, and the
    exception's "token range (a, b]" note skipped)."""
    return [line for line in stderr.strip().splitlines()
            if not re.match(r"\d{4}-\d\d-\d\d |token range \(", line)][-1]


def keyspaces(db) -> set[str]:
    return {r.keyspace_name for r in db.execute("SELECT keyspace_name FROM system_schema.keyspaces")}


# --- every reject reason ------------------------------------------------------------------------
PLANTED_REJECTS = {   # reason -> the rows that must be rejected for it (each a variant)
    "unknown_symbol": [dict(symbol="NOPE_USDT"), dict(symbol=None), dict(symbol=""), dict(symbol="btc_usdt"),
                       dict(symbol="BTC_USDT "), dict(symbol="NOPE_USDT", price=0, buyer_user_id=None)],
    "null_buyer_user_id": [dict(buyer_user_id=None), dict(buyer_user_id=None, seller_user_id=None)],
    "null_seller_user_id": [dict(seller_user_id=None)],
    "null_settled_at": [dict(settled_at=None), dict(settled_at=None, matched_at=None)],
    "bad_price": [dict(price=None), dict(price=0), dict(price=-1), dict(price=MIN_BIGINT)],
    "bad_quantity": [dict(quantity=None), dict(quantity=0), dict(quantity=-1), dict(quantity=MIN_BIGINT)],
    "bad_taker_side": [dict(taker_side=None), dict(taker_side="buy"), dict(taker_side=""),
                       dict(taker_side="BOTH"), dict(taker_side=" BUY"), dict(taker_side="SELL\n")],
}
ALLOWED_NULLS = dict(buyer_fee=None, seller_fee=None, buyer_order_id=None, seller_order_id=None, matched_at=None)


def test_every_reject_reason_lands_in_rejected_trades_with_its_raw_values(db, cfg):
    generated = load_trades(db, cfg, 2000, seed=31)
    assert set(generated.rejects) == set(REASONS)          # the generator plants every reason
    planted, tid = {}, PLANTED_FIRST
    for reason, variants in PLANTED_REJECTS.items():
        for change in variants:
            insert_trades(db, cfg.keyspace, [valid(tid, **change)])
            planted[tid] = (reason, change)
            tid += 1
    insert_trades(db, cfg.keyspace, [valid(tid, **ALLOWED_NULLS)])   # nulls the contract allows: converts
    nulls_trade = tid
    BAD_INPUTS.update({"generated reject": sum(generated.rejects.values()), "planted reject variant": len(planted)})

    result = run_ranges(db, cfg, "rejects")
    total_rejects = sum(generated.rejects.values()) + len(planted)
    assert result["rows_read"] == 2000 + len(planted) + 1
    assert result["rows_rejected"] == total_rejects
    assert result["rows_written"] == 2 * (generated.convertible + 1)
    rows, rejects = assert_exact(db, cfg.keyspace)
    assert Counter(rejects.values()) == Counter({r: generated.rejects[r] + len(PLANTED_REJECTS[r]) for r in REASONS})
    assert {t: rejects[t] for t in planted} == {t: reason for t, (reason, _) in planted.items()}
    # the allowed nulls were copied as nulls, on both sides
    copied = {k: v for k, v in rows.items() if k[3] == nulls_trade}
    assert len(copied) == 2 and all(v[2] is None and v[3] is None and v[6] is None for v in copied.values())

    # every reject: its reason readable with the offending value, its raw values all kept, its token
    sources = {t.trade_id: t for t in source_rows(db, cfg.keyspace)}
    stored = {r.trade_id: r for r in db.execute(f"SELECT trade_id, row_token, reason, raw, source, detected_at"
                                                f" FROM {cfg.keyspace}.rejected_trades")}
    assert stored.keys() == rejects.keys()
    for trade_id, r in stored.items():
        trade = sources[trade_id]
        assert r.source == "backfill" and r.detected_at is not None
        assert r.row_token == db.execute(f"SELECT token(trade_id) FROM {cfg.keyspace}.settled_trades"
                                         f" WHERE trade_id = %s", (trade_id,)).one()[0]
        assert raw_round_trips(dict(r.raw), trade) == [], trade_id
        code, _, detail = r.reason.partition(": ")
        assert code == rejects[trade_id] and detail
        offending = {"unknown_symbol": trade.symbol, "bad_price": trade.price, "bad_quantity": trade.quantity,
                     "bad_taker_side": trade.taker_side}
        if code in offending:
            assert repr(offending[code]) in detail, r.reason
    report = summary.backfill_summary(Ledger(db, cfg, "rejects").load())
    assert (report["complete"], report["rows_rejected"]) == (True, total_rejects)

    # verification counts them as rejected, by reason, and is clean
    outcome = full_parity(db, cfg, "rejects_check")
    assert outcome.status == parity.CLEAN and outcome.total.rejected == total_rejects
    assert outcome.rejected_by_reason == dict(sorted(Counter(rejects.values()).items()))


# --- extreme values -------------------------------------------------------------------------------
EXTREME_SYMBOLS = [("MAXID_USDT", MAX_INT, "MAXID", "USDT", 0, 0), ("MINID_USDT", MIN_INT, "MINID", "USDT", 18, 18),
                   ("ZERO_USDT", 0, "ZERO", "USDT", 2, 2), ("ÉTHÉ_€", 4242, "ÉTHÉ", "€", 2, 2)]
EPOCH = datetime(1970, 1, 1)
FAR_FUTURE = datetime(9999, 12, 31, 23, 59, 59, 999000)
EXTREMES = [
    dict(trade_id=MAX_BIGINT, price=MAX_BIGINT, quantity=MAX_BIGINT, buyer_fee=MAX_BIGINT, seller_fee=MIN_BIGINT),
    dict(trade_id=MIN_BIGINT, buyer_user_id=MIN_BIGINT, seller_user_id=MAX_BIGINT, output_seq=MIN_BIGINT),
    dict(trade_id=0, buyer_user_id=0, seller_user_id=-1, buyer_order_id=MIN_BIGINT, seller_order_id=MAX_BIGINT),
    dict(trade_id=-1, price=1, quantity=1, buyer_fee=0, seller_fee=-1, output_seq=MAX_BIGINT),
    dict(trade_id=1, settled_at=EPOCH, matched_at=EPOCH),
    dict(trade_id=2, settled_at=FAR_FUTURE, matched_at=FAR_FUTURE),
    dict(trade_id=3, settled_at=datetime(1969, 12, 31, 23, 59, 59, 999000), matched_at=datetime(1, 1, 1)),
    dict(trade_id=4, buyer_user_id=MAX_BIGINT, seller_user_id=MAX_BIGINT, symbol="MAXID_USDT"),   # self-trade
    dict(trade_id=5, buyer_user_id=MIN_BIGINT, seller_user_id=MIN_BIGINT, symbol="MINID_USDT", taker_side="SELL"),
    dict(trade_id=6, symbol="ZERO_USDT", settled_at=FAR_FUTURE, price=MAX_BIGINT, quantity=1),
    dict(trade_id=7, symbol="ÉTHÉ_€", buyer_user_id=MIN_BIGINT, seller_user_id=MAX_BIGINT),
    dict(trade_id=MAX_BIGINT - 1, settled_at=EPOCH, matched_at=FAR_FUTURE, price=MAX_BIGINT, quantity=MAX_BIGINT),
]


def test_extreme_values_convert_and_backfill_exactly(db, cfg):
    load_trades(db, cfg, 500, seed=32)
    stmt = db.prepare(insert_symbol(cfg.keyspace))
    for s in EXTREME_SYMBOLS:
        db.execute(stmt, s)
    insert_trades(db, cfg.keyspace, [valid(**change) for change in EXTREMES[:-1]])
    insert_trades(db, cfg.keyspace, [valid(**EXTREMES[-1])], writetime=1)   # written at the very start of time
    BAD_INPUTS["extreme-value trade"] += len(EXTREMES)

    result = run_ranges(db, cfg, "extremes")
    rows, rejects = assert_exact(db, cfg.keyspace)
    extreme_ids = {e["trade_id"] for e in EXTREMES}
    mine = {k: v for k, v in rows.items() if k[3] in extreme_ids}
    assert len(mine) == 2 * len(EXTREMES) and not extreme_ids & rejects.keys()
    assert result["rows_read"] == 500 + len(EXTREMES)
    got = actual(db, cfg.keyspace)[0]
    assert got[(MAX_BIGINT, MAX_INT, T0, 4, "BUY")][4] == MAX_BIGINT            # counterparty of a self-trade
    assert got[(MIN_BIGINT, MIN_INT, T0, 5, "SELL")][5] is True                 # the seller took
    assert got[(1001, 1, FAR_FUTURE, 2, "BUY")][6] == FAR_FUTURE
    assert got[(1002, 1, EPOCH, MAX_BIGINT - 1, "SELL")][8] == 1                # the source's write time, kept
    assert got[(1002, 1, T0, MAX_BIGINT, "SELL")][2] == MIN_BIGINT             # the seller's fee
    # the newest first order of the contract holds at the extremes: far future first, epoch last
    page = [r.settled_at for r in db.execute(f"SELECT settled_at FROM {cfg.keyspace}.user_trades"
                                             f" WHERE user_id = 1001 AND symbol_id = 1")]
    assert (page[0] == FAR_FUTURE and page[-1] == datetime(1969, 12, 31, 23, 59, 59, 999000)
            and page == sorted(page, reverse=True))

    outcome = full_parity(db, cfg, "extremes_check")
    assert outcome.status == parity.CLEAN and outcome.diffs == []
    assert outcome.total.target_rows == len(rows)


# --- a symbol removed mid-run -------------------------------------------------------------------
def test_a_symbol_removed_mid_run_turns_later_trades_into_rejects_and_loses_none(db, cfg):
    """Each task reads trading.symbols once, when it starts (as each mapped task of the DAG does):
    a symbol removed while the backfill runs affects the tasks that start after the removal."""
    load_trades(db, cfg, 4000, seed=33)
    removed = "ETH_USDT"
    symbols = symbol_map(db, cfg.keyspace)
    before_rows, before_rejects = expectation(db, cfg.keyspace, symbols=symbols)
    ledger = Ledger(db, cfg, "delisted")
    states = sorted(plan.ensure_ledger(db, cfg, ledger, 8), key=lambda s: s.range_start)
    first, second = states[:4], states[4:]
    copier.run_batch(db, cfg, "delisted", [s.token_range for s in first])          # task 1
    db.execute(db.prepare(delete_symbol(cfg.keyspace)), (removed,))                  # the symbol goes
    copier.run_batch(db, cfg, "delisted", [s.token_range for s in second])         # task 2 starts after
    BAD_INPUTS["symbol removed mid-run"] += 1

    tokens = {r[1]: (r[0], r[2]) for r in db.execute(f"SELECT token(trade_id), trade_id, symbol"
                                                     f" FROM {cfg.keyspace}.settled_trades")}
    late = second[0].range_start
    after = {t for t, (tok, sym) in tokens.items() if sym == removed and tok > late}    # read by task 2
    turned = after - before_rejects.keys()
    kept = {t for t, (tok, sym) in tokens.items() if sym == removed and tok <= late} - before_rejects.keys()
    assert len(turned) > 20 and len(kept) > 20
    got_rows, got_rejects = actual(db, cfg.keyspace)
    assert got_rows == {k: v for k, v in before_rows.items() if k[3] not in turned}
    # a trade of the removed symbol that was a reject already is now rejected for its symbol (checked first)
    assert got_rejects == {**before_rejects, **{t: "unknown_symbol" for t in after}}
    reasons = {r.trade_id: r.reason for r in db.execute(f"SELECT trade_id, reason FROM {cfg.keyspace}.rejected_trades")}
    assert all(reasons[t] == f"unknown_symbol: symbol '{removed}' is not in symbols" for t in turned)
    # nothing lost: every trade is in user_trades (both sides) or in rejected_trades, never both
    in_rows = Counter(k[3] for k in got_rows)
    assert set(in_rows.values()) == {2}
    assert in_rows.keys() | got_rejects.keys() == tokens.keys() and not in_rows.keys() & got_rejects.keys()
    report = summary.backfill_summary(ledger.load())
    assert (report["complete"], report["rows_read"], report["rows_rejected"]) == (True, 4000, len(got_rejects))


# --- a settled_trades row deleted mid-run --------------------------------------------------------
def test_a_settled_row_deleted_mid_run(db, cfg):
    """One trade is deleted from a range already copied, one from a range not reached yet, while
    the backfill runs (throttled so the moment can be chosen by the ledger's state, not a clock)."""
    load_trades(db, cfg, 4000, seed=34)
    ledger = Ledger(db, cfg, "deleted")
    states = sorted(plan.ensure_ledger(db, cfg, ledger, 8), key=lambda s: s.range_start)
    tokens = {r[1]: r[0] for r in db.execute(f"SELECT token(trade_id), trade_id FROM {cfg.keyspace}.settled_trades")}
    first, later = states[0], states[4]
    _, rejects0 = expectation(db, cfg.keyspace)
    copied = min(t for t, tok in tokens.items() if first.range_start < tok <= first.range_end and t not in rejects0)
    ahead = min(t for t, tok in tokens.items() if tok > later.range_start and t not in rejects0)
    ahead_reject = min(t for t, tok in tokens.items() if tok > later.range_start and t in rejects0)

    outcome: dict = {}
    worker = threading.Thread(target=lambda: outcome.update(result=copier.run_batch(
        db, cfg, "deleted", [s.token_range for s in states], Options(rows_per_second=1500, fetch_size=100))))
    worker.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        now = {s.range_start: s.status for s in ledger.load()}
        if now[first.range_start] == DONE:
            break
        time.sleep(0.02)
    assert now[first.range_start] == DONE and now[later.range_start] == PENDING, now
    delete = db.prepare(f"DELETE FROM {cfg.keyspace}.settled_trades WHERE trade_id = ?")
    for t in (copied, ahead, ahead_reject):
        db.execute(delete, (t,))
    worker.join(timeout=300)
    assert not worker.is_alive()
    BAD_INPUTS["settled row deleted mid-run"] += 3

    expect_rows, expect_rejects = expectation(db, cfg.keyspace)     # of the table as it is now
    got_rows, got_rejects = actual(db, cfg.keyspace)
    copied_rows = {k: v for k, v in got_rows.items() if k[3] == copied}
    assert len(copied_rows) == 2                          # copied before the delete: kept, never deleted
    assert {k: v for k, v in got_rows.items() if k[3] != copied} == expect_rows
    assert got_rejects == expect_rejects and ahead_reject not in got_rejects and ahead not in {k[3] for k in got_rows}
    assert outcome["result"]["rows_read"] == 4000 - 2     # two deleted before their range was read
    # verification reports exactly the copied trade's rows as orphans, and nothing else
    check = full_parity(db, cfg, "deleted_check")
    assert check.status == parity.BROKEN
    assert [(d["kind"], d["trade_id"], d["detail"]) for d in check.diffs] == [
        ("orphan", copied, f"no settled trade {copied}")] * 2
    assert (check.total.missing, check.total.mismatched, check.total.orphans) == (0, 0, 2)


# --- an empty table -------------------------------------------------------------------------------
def test_an_empty_table_completes_with_zero_rows_and_says_so(db, cfg):
    from testkit import generator

    generator.write_symbols(db, cfg.keyspace)
    mark_done(db, cfg, phases.CREATE_TABLE, phases.DUAL_WRITE)
    done = cli(cfg.keyspace, "--backfill-id", "empty", "--splits", "6")
    BAD_INPUTS["empty table"] += 1
    assert done.returncode == 0, done.stderr[-2000:]
    states = Ledger(db, cfg, "empty").load()
    assert len(states) >= 6 and {s.status for s in states} == {DONE}
    lines = done.stdout.strip().splitlines()
    assert lines[0] == f"ranges {len(states)} {{'done': {len(states)}}}; rows read 0, written 0, rejected 0"
    assert json.loads(lines[-1]) == {"ranges": len(states), "rows_read": 0, "rows_written": 0, "rows_rejected": 0}
    assert summary.backfill_summary(states)["complete"] is True
    assert actual(db, cfg.keyspace) == ({}, {})


# --- a missing table, a wrong keyspace --------------------------------------------------------
@pytest.mark.parametrize("table", ["settled_trades", "user_trades", "rejected_trades", "backfill_ranges"])
def test_a_missing_table_fails_at_once_and_plans_nothing(cluster_session, table):
    db = cluster_session
    config = Config(keyspace=f"t_bad_input_no_{table}")
    schema.apply(db, config)
    for t in ("settled_trades", "backfill_ranges"):
        db.execute(f"TRUNCATE {config.keyspace}.{t}")
    load_trades(db, config, 50, seed=35)
    mark_done(db, config, phases.CREATE_TABLE, phases.DUAL_WRITE)
    db.execute(drop_table(config.keyspace, table))
    try:
        done = cli(config.keyspace, "--backfill-id", "missing")
        BAD_INPUTS["missing table"] += 1
        assert done.returncode != 0
        last = error_line(done.stderr)
        assert last.startswith("cassandra.InvalidRequest: Error from server: code=2200 [Invalid query]"), last
        assert f"table {table} does not exist" in last
        if table != "backfill_ranges":                      # nothing planned, nothing half-written
            assert list(db.execute(f"SELECT * FROM {config.keyspace}.backfill_ranges")) == []
        if table not in ("user_trades",):
            assert list(db.execute(f"SELECT * FROM {config.keyspace}.user_trades")) == []
    finally:
        db.execute(f"DROP KEYSPACE IF EXISTS {config.keyspace}")


@pytest.mark.parametrize("keyspace, message", [
    ("t_bad_input_nowhere", "InvalidRequest: Error from server: code=2200 [Invalid query]"),
    ("Trading", "ConfigError: keyspace must match [a-z][a-z0-9_]{0,47} (got 'Trading')"),
    ("trading; DROP KEYSPACE trading", "ConfigError: keyspace must match [a-z][a-z0-9_]{0,47}"
                                       " (got 'trading; DROP KEYSPACE trading')"),
    ("trading.settled_trades", "ConfigError: keyspace must match"),
    ("", "ConfigError: keyspace must match"),
])
def test_a_wrong_keyspace_fails_at_once_and_creates_nothing(cluster_session, keyspace, message):
    before = keyspaces(cluster_session)
    done = cli(keyspace, "--backfill-id", "nowhere")
    BAD_INPUTS["wrong keyspace"] += 1
    assert done.returncode != 0
    last = error_line(done.stderr)
    assert message in last, last
    if keyspace == "t_bad_input_nowhere":
        assert "t_bad_input_nowhere" in last and "does not exist" in last
    assert keyspaces(cluster_session) == before


# --- out of order, and a failed run -------------------------------------------------------------
def test_the_command_keeps_the_phase_order_and_records_the_phase(db, cfg):
    """The same guard and phase record as the DAG: refused before dual_write completed (nothing
    written), recorded failed when a run fails, completed when the ledger is."""
    generated = load_trades(db, cfg, 300, seed=36)
    mark_done(db, cfg, phases.CREATE_TABLE)
    refused = cli(cfg.keyspace, "--backfill-id", "ordered", "--splits", "4")
    BAD_INPUTS["backfill before dual_write"] += 1
    assert refused.returncode == 1
    assert error_line(refused.stderr) == ("PhaseOrderError: phase 'backfill' cannot start: dual_write not completed"
                                          " yet (run user_trades_dual_write first)")
    assert "Traceback" not in refused.stderr
    for table in ("backfill_ranges", "user_trades", "rejected_trades"):
        assert list(db.execute(f"SELECT * FROM {cfg.keyspace}.{table}")) == [], table
    state = phases.State(db, cfg)
    assert state.phase(phases.BACKFILL) is None

    mark_done(db, cfg, phases.DUAL_WRITE)
    who = ("--actor", "oncall", "--reason", "phase 4 by hand")
    failed = cli(cfg.keyspace, "--backfill-id", "ordered", "--splits", "4", "--page-timeout", "0.00001", *who)
    assert failed.returncode != 0
    assert error_line(failed.stderr).startswith("trade_migration.core.errors.RangeTimeout: "), failed.stderr[-2000:]
    first = state.phase(phases.BACKFILL)
    assert (first.status, first.actor, first.run_id[:5]) == (phases.FAILED, "oncall", "cli__")

    done = cli(cfg.keyspace, "--backfill-id", "ordered", *who)
    assert done.returncode == 0, done.stderr[-2000:]
    phase = state.phase(phases.BACKFILL)
    assert (phase.status, phase.actor, phase.run_id[:5]) == (phases.COMPLETED, "oncall", "cli__")
    assert phase.run_id != first.run_id
    assert {k: phase.details[k] for k in ("backfill_id", "rows_read", "rows_written", "rows_rejected")} == {
        "backfill_id": "ordered", "rows_read": "300", "rows_written": str(generated.user_trade_rows),
        "rows_rejected": str(sum(generated.rejects.values()))}
    assert [(r.action, r.actor, r.reason) for r in state.audit_log() if r.phase == phases.BACKFILL] == [
        (phases.COMPLETED, "oncall", "phase 4 by hand"), (phases.RUNNING, "oncall", "phase 4 by hand"),
        (phases.FAILED, "oncall", "a task of the run failed; see its log"),
        (phases.RUNNING, "oncall", "phase 4 by hand")]
    assert_exact(db, cfg.keyspace)


def test_zz_report_counts():
    """Prints what this module tried (read by the issue note)."""
    print(f"\nbad inputs tried: {sum(BAD_INPUTS.values())} {dict(BAD_INPUTS)}")
