"""Busts and corrections racing the backfill's copy and a verification's repair, on the real node.

The reference writer busts and corrects trades (keys included: settled_at, either user, the
symbol, the sides; and values, rejects made and fixed) inside the very ranges being copied or
repaired: a hook between a page's read and its writes changes trades of that page (so the copier
certainly writes versions that are already gone), and a thread changes trades near the running
range's checkpoint meanwhile. Afterwards user_trades and rejected_trades are exactly what
settled_trades converts to (testkit.expectation, independent of the product): every write of the
backfill and the repair carries the source row's write time (or the run's start), older than
the live change's, so a delete or a newer value always wins and nothing comes back.
"""
from __future__ import annotations

import bisect
import random
import threading
import time
from collections import Counter
from datetime import datetime, timedelta

import pytest
from conftest import load_trades
from testkit import generator
from testkit.expectation import actual, assert_exact, expectation, reject_code

from trade_migration.backfill import copier, plan
from trade_migration.core.clock import now_micros
from trade_migration.core.model import SettledTrade
from trade_migration.core.prepared import prepared
from trade_migration.core.symbols import load_symbol_ids
from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN, TokenRange
from trade_migration.dual_write.writer import SettlementWriter, WriterOptions
from trade_migration.state.flags import DUAL_WRITE, Flags
from trade_migration.state.ledger import Ledger
from trade_migration.statements.settled_trades import decode_scanned_trade, scan_settled
from trade_migration.verify import parity, row_parity
from trade_migration.verify.diffs import MISMATCHED, MISSING
from trade_migration.verify.repair import AT_RUN_START, NOT_REPAIRED

N, SEED = 20_000, 4242
SYMBOLS = [s[0] for s in generator.symbols()]
KINDS = ("bust", "settled_at", "buyer", "symbol", "sides", "values", "reject")
KEY = "user_id = %s AND symbol_id = %s AND settled_at = %s AND trade_id = %s AND side = %s"


def corrected(old: SettledTrade, kind: str, rng: random.Random, *, reject: bool) -> SettledTrade:
    """A correction of `old` that moves its user_trades keys, changes values only, or breaks it;
    a reject is fixed whatever the kind."""
    if reject:
        return old._replace(symbol="BTC_USDT", buyer_user_id=old.buyer_user_id or 77,
                            seller_user_id=old.seller_user_id or 78, settled_at=old.settled_at or datetime(2026, 7, 1),
                            price=abs(old.price or 0) + 1, quantity=abs(old.quantity or 0) + 1, taker_side="SELL")
    if kind == "settled_at":
        return old._replace(settled_at=old.settled_at + timedelta(seconds=rng.randint(1, 86400)))
    if kind == "buyer":
        return old._replace(buyer_user_id=rng.randint(10**9, 2 * 10**9))
    if kind == "symbol":
        return old._replace(symbol=rng.choice([s for s in SYMBOLS if s != old.symbol]))
    if kind == "sides":
        return old._replace(buyer_user_id=old.seller_user_id, seller_user_id=old.buyer_user_id,
                            buyer_fee=old.seller_fee, seller_fee=old.buyer_fee)
    if kind == "values":   # same keys: a fee and the match time gone, an order id and a price changed
        return old._replace(buyer_fee=None, matched_at=None, seller_order_id=rng.randint(1, 10**12),
                            price=old.price + 1)
    return old._replace(price=0)   # "reject": the correction breaks the contract


class Changes:
    """Busts and corrections through the reference writer, one at a time, each at a fresh write
    time; remembers each trade as it now stands."""

    def __init__(self, db, cfg, trades: dict[int, SettledTrade], seed: int):
        Flags(db, cfg).set(DUAL_WRITE, "on", actor="pytest", reason="busts and corrections reach user_trades")
        self.writer = SettlementWriter(db, cfg, WriterOptions(flag_refresh_s=3600))
        assert self.writer.mode() == "on"
        self.symbol_ids = load_symbol_ids(db, cfg.keyspace)
        self.current, self.rng = dict(trades), random.Random(seed)
        self.done: Counter = Counter()
        self._lock, self._last = threading.Lock(), 0

    def change(self, trade_id: int, kind: str | None = None) -> str | None:
        with self._lock:
            old = self.current.get(trade_id)
            if old is None:
                return None   # busted already
            kind = kind or self.rng.choice(KINDS)
            self._last = at = max(self._last + 1, now_micros())
            if kind == "bust":
                self.writer.bust(old, write_time=at)
                del self.current[trade_id]
            else:
                new = corrected(old, kind, self.rng, reject=reject_code(old, self.symbol_ids) is not None)
                self.writer.correct(old, new, write_time=at)
                self.current[trade_id] = new
            self.done[kind] += 1
            return kind

    def background(self, pick, stop: threading.Event) -> threading.Thread:
        """A thread changing the trades pick() names until stopped."""
        def run():
            while not stop.is_set():
                for trade_id in pick():
                    self.change(trade_id)
                time.sleep(0.002)
        thread = threading.Thread(target=run, name="changes", daemon=True)
        thread.start()
        return thread


def scanned(db, cfg) -> list:
    return [decode_scanned_trade(r) for r in db.execute(prepared(db, scan_settled(cfg.keyspace)),
                                                        (MIN_TOKEN, MAX_TOKEN))]


@pytest.fixture
def source(db, cfg):
    load_trades(db, cfg, N, SEED)
    rows = sorted(scanned(db, cfg), key=lambda s: s.token)
    assert len(rows) == N
    return rows


def assert_source_is(db, cfg, changes: Changes) -> None:
    """settled_trades holds exactly the trades as the changes left them (the writer did what was asked)."""
    assert {s.trade.trade_id: s.trade for s in scanned(db, cfg)} == changes.current


def test_busts_and_corrections_inside_ranges_being_copied_never_come_back(db, cfg, source, monkeypatch):
    changes = Changes(db, cfg, {s.trade.trade_id: s.trade for s in source}, seed=1)
    tokens, ids = [s.token for s in source], [s.trade.trade_id for s in source]
    ledger = Ledger(db, cfg, "live")
    plan.ensure_ledger(db, cfg, ledger, 4)

    # 1. each page read: three of its trades busted or corrected before the copier writes it
    write_page, page_rng = copier.RangeCopier._write_page, random.Random(5)
    in_page: Counter = Counter()

    def racing_write_page(self, rs, rows, writer, carry, final):
        page = [decode_scanned_trade(r).trade.trade_id for r in rows]
        kinds = ("bust", page_rng.choice(KINDS[1:5]), page_rng.choice(KINDS[1:]))   # a key moved, then any
        for trade_id, kind in zip(page_rng.sample(page, min(3, len(page))), kinds, strict=False):
            if changes.change(trade_id, kind):
                in_page[kind] += 1
        return write_page(self, rs, rows, writer, carry, final)

    monkeypatch.setattr(copier.RangeCopier, "_write_page", racing_write_page)

    # 2. meanwhile, trades around the running range's checkpoint: just copied, in flight, next
    around: Counter = Counter()

    def near_checkpoint():
        running = [s for s in ledger.load() if s.status == "running"]
        if not running:
            return []
        i = bisect.bisect_right(tokens, running[0].resume_from)   # the first trade not yet acknowledged
        nearby = range(max(0, i - 250), min(len(ids), i + 250))
        picked = changes.rng.sample(nearby, min(4, len(nearby)))
        around["behind" if picked and picked[0] < i else "ahead"] += 1
        return [ids[j] for j in picked]

    stop = threading.Event()
    thread = changes.background(near_checkpoint, stop)
    try:
        result = copier.run_batch(db, cfg, "live", [TokenRange(MIN_TOKEN, MAX_TOKEN)],
                                  copier.Options(fetch_size=250, rows_per_second=4000))
    finally:
        stop.set()
        thread.join()
    assert result["rows_read"] <= N and result["ranges"] == 4
    assert sum(in_page.values()) >= 3 * (N // 250) - 10 and in_page["bust"] >= N // 250 - 10
    assert around["behind"] > 20 and around["ahead"] > 20, around
    assert changes.done["bust"] > 100 and all(changes.done[k] > 20 for k in KINDS), changes.done
    assert_source_is(db, cfg, changes)
    assert_exact(db, cfg.keyspace)   # nothing busted or moved away came back; every value the newest


def test_busts_and_corrections_inside_ranges_being_repaired_never_come_back(db, cfg, source, monkeypatch):
    plan.ensure_ledger(db, cfg, Ledger(db, cfg, "before"), 8)
    copier.run_batch(db, cfg, "before", [TokenRange(MIN_TOKEN, MAX_TOKEN)])
    assert_exact(db, cfg.keyspace)
    changes = Changes(db, cfg, {s.trade.trade_id: s.trade for s in source}, seed=2)

    # faults before the run, for the repair to write back: a row deleted, or its price altered
    symbol_ids = load_symbol_ids(db, cfg.keyspace)
    faulted = random.Random(3).sample([t for t in changes.current.values() if reject_code(t, symbol_ids) is None
                                       and t.buyer_user_id != t.seller_user_id], 400)
    at, keys = now_micros(), {}
    for n, t in enumerate(faulted):
        user, side = (t.buyer_user_id, "BUY") if n % 2 else (t.seller_user_id, "SELL")
        key = keys[t.trade_id] = (user, symbol_ids[t.symbol], t.settled_at, t.trade_id, side)
        if n % 4 < 2:
            db.execute(f"DELETE FROM {cfg.keyspace}.user_trades USING TIMESTAMP {at} WHERE {KEY}", key)
        else:
            db.execute(f"UPDATE {cfg.keyspace}.user_trades USING TIMESTAMP {at} SET price = %s WHERE {KEY}",
                       (t.price + 7, *key))
    faulted_ids = {t.trade_id for t in faulted}

    # 1. after the recheck confirmed the faults, before the repair writes: half their trades changed
    repair, hooked = row_parity.repair, {}

    def racing_repair(checker):
        for d in checker.diffs:
            if d.trade_id % 2 and d.trade_id not in hooked:
                hooked[d.trade_id] = changes.change(d.trade_id)
        return repair(checker)

    monkeypatch.setattr(row_parity, "repair", racing_repair)

    # 2. meanwhile, other trades of the same ranges
    others = [t for t in changes.current if t not in faulted_ids]
    stop = threading.Event()
    thread = changes.background(lambda: changes.rng.sample(others, 2), stop)
    try:
        run = parity.plan_run(db, cfg, run_id="live_repair", mode="full", splits=8, repair=True, recheck_delay=1.0)
        outcome = parity.run_all(db, cfg, run, batch_count=2)
    finally:
        stop.set()
        thread.join()
    assert {d["trade_id"] for d in outcome.diffs} == faulted_ids and len(outcome.diffs) == 400
    assert {d["kind"] for d in outcome.diffs} == {MISSING, MISMATCHED}
    assert len(hooked) > 150 and all(hooked.values()), hooked
    for d in outcome.diffs:   # what the repair wrote lost to the change made under it; the rest it restored
        assert d["repair"] == (NOT_REPAIRED if d["trade_id"] in hooked else AT_RUN_START), d
    assert changes.done["bust"] > 30 and sum(changes.done.values()) > 300, changes.done
    assert_source_is(db, cfg, changes)
    # exactly the conversion, each row at its source's write time but those the repair restored: at the run's start
    expect_rows, expect_rejects = expectation(db, cfg.keyspace)
    for trade_id in faulted_ids - hooked.keys():
        expect_rows[keys[trade_id]] = (*expect_rows[keys[trade_id]][:-1], run.started_us)
    got_rows, got_rejects = actual(db, cfg.keyspace)
    assert not got_rows.keys() ^ expect_rows.keys(), (f"missing {list(expect_rows.keys() - got_rows.keys())[:3]},"
                                                      f" extra {list(got_rows.keys() - expect_rows.keys())[:3]}")
    assert got_rows == expect_rows and got_rejects == expect_rejects
