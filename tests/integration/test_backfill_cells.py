"""What the backfill leaves in user_trades' cells: no tombstones for null columns, and a source
row's TTL either refused (the default) or kept (ttl_policy "preserve"), measured on the real node."""
from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from cassandra.query import SimpleStatement
from conftest import mark_done
from testkit import generator
from testkit.expectation import assert_exact

from trade_migration import backfill_cli
from trade_migration.backfill import copier, phase, plan
from trade_migration.backfill.copier import Options
from trade_migration.core.convert import convert
from trade_migration.core.errors import ConfigError, TtlRefused
from trade_migration.core.model import SettledTrade
from trade_migration.core.prepared import prepared
from trade_migration.core.symbols import load_symbol_ids
from trade_migration.state.ledger import FAILED, Ledger
from trade_migration.statements.settled_trades import insert_settled
from trade_migration.statements.user_trades import insert_user_trade

T0 = datetime(2026, 6, 1, tzinfo=UTC)
WT = 1_780_000_000_000_000          # the source rows' write time (microseconds)
READ = re.compile(r"Read (\d+) live rows? and (\d+) tombstone cells?")


def trade(trade_id: int, buyer: int, seller: int, **over) -> SettledTrade:
    """A convertible trade with null fees, order ids and matched_at (the nulls a settlement leaves)."""
    base = dict(trade_id=trade_id, output_seq=trade_id, symbol="BTC_USDT", price=6_700_000, quantity=3,
                buyer_user_id=buyer, seller_user_id=seller, buyer_order_id=None, seller_order_id=None,
                taker_side="BUY", buyer_fee=None, seller_fee=None, matched_at=None,
                settled_at=T0 + timedelta(seconds=trade_id))
    return SettledTrade(**{**base, **over})


@pytest.fixture
def source(db, cfg):
    """30 trades of one pair of users (two partitions of 30 rows: the unlogged batches) and 5 of
    distinct users (single inserts), all with the nulls; written without a TTL."""
    generator.write_symbols(db, cfg.keyspace)
    trades = [trade(i, 7, 8) for i in range(1, 31)] + [trade(100 + i, 200 + i, 300 + i) for i in range(5)]
    write(db, cfg, trades)
    return trades


def write(db, cfg, trades, *, ttl: int | None = None) -> None:
    cql = insert_settled(cfg.keyspace) + (f" AND TTL {ttl}" if ttl else "")
    for t in trades:
        db.execute(db.prepare(cql), (*t, WT))


def backfill(db, cfg, backfill_id: str, **opts) -> dict:
    ledger = Ledger(db, cfg, backfill_id)
    work = plan.select(plan.ensure_ledger(db, cfg, ledger, 1, ttl_policy=opts.get("ttl_policy", "refuse")),
                       ledger, None)
    return copier.run_batch(db, cfg, backfill_id, [w.token_range for w in work], Options(**opts))


def cells_read(db, keyspace: str, rows: int) -> tuple[int, int]:
    """(live rows, tombstone cells) that reading all of user_trades meets, from the node's own trace."""
    result = db.execute(SimpleStatement(f"SELECT * FROM {keyspace}.user_trades", fetch_size=10_000), trace=True)
    assert len(list(result)) == rows
    deadline = time.monotonic() + 30
    while True:   # trace events land asynchronously: wait until they account for every row read
        events = result.get_query_trace(max_wait_sec=10).events
        found = [tuple(map(int, m.groups())) for e in events if (m := READ.search(e.description))]
        live, tombstones = (sum(n) for n in zip(*found, strict=True)) if found else (0, 0)
        if live == rows or time.monotonic() > deadline:
            return live, tombstones
        time.sleep(0.5)


def ttls(db, cfg, trade_id: int) -> list:
    """TTL(price) of the trade's user_trades rows (a scan: a test table is small)."""
    return sorted((r.t for r in db.execute(f"SELECT trade_id, TTL(price) AS t FROM {cfg.keyspace}.user_trades")
                   if r.trade_id == trade_id), key=lambda t: -1 if t is None else t)


def test_null_columns_leave_no_tombstones_even_in_batches(db, cfg, source):
    result = backfill(db, cfg, "nulls")
    assert result == {"ranges": 1, "rows_read": 35, "rows_written": 70, "rows_rejected": 0}
    rows, _ = assert_exact(db, cfg.keyspace)
    assert sum(1 for k, v in rows.items() if v[2] is None and v[3] is None and v[6] is None) == 70
    assert cells_read(db, cfg.keyspace, 70) == (70, 0)

    # the measurement sees the tombstones binding None would write: one row so written, 3 nulls
    control = convert(trade(999, 9, 10), load_symbol_ids(db, cfg.keyspace))[0]
    db.execute(prepared(db, insert_user_trade(cfg.keyspace)), (*control, WT))
    assert cells_read(db, cfg.keyspace, 71) == (71, 3)


def test_refuse_fails_the_range_at_a_row_with_a_ttl_before_writing_it(db, cfg, source):
    expiring = trade(500, 50, 51, buyer_fee=4)
    write(db, cfg, [expiring], ttl=3600)
    with pytest.raises(TtlRefused, match=r"^trade 500 in settled_trades expires in \d+s \(it has a TTL\) and"
                                         r" ttl_policy is 'refuse'; it was not copied .* ttl_policy option to"
                                         r" 'preserve'"):
        backfill(db, cfg, "refused")
    (state,) = Ledger(db, cfg, "refused").load()
    assert state.status == FAILED and state.last_error.startswith("TtlRefused: trade 500 ")
    assert db.execute(f"SELECT count(*) FROM {cfg.keyspace}.user_trades").one().count == 0   # its page: nothing


def test_preserve_gives_both_rows_the_seconds_the_source_has_left(db, cfg, source):
    expiring = trade(500, 50, 51, buyer_fee=4)
    write(db, cfg, [expiring], ttl=3600)
    left = db.execute(f"SELECT TTL(price) AS t FROM {cfg.keyspace}.settled_trades WHERE trade_id = 500").one().t
    result = backfill(db, cfg, "kept", ttl_policy="preserve")
    assert result == {"ranges": 1, "rows_read": 36, "rows_written": 72, "rows_rejected": 0}
    assert_exact(db, cfg.keyspace)          # values and the source write time, as without a TTL
    lo, hi = ttls(db, cfg, 500)
    assert left - 5 <= lo <= hi <= left <= 3600 and hi - lo <= 1
    assert ttls(db, cfg, 1) == [None, None]   # a row without a TTL gets none
    assert cells_read(db, cfg.keyspace, 72) == (72, 0)


def test_preserve_refuses_a_row_whose_columns_expire_at_different_times(db, cfg, source):
    db.execute(f"UPDATE {cfg.keyspace}.settled_trades USING TIMESTAMP {WT + 1} AND TTL 600 SET buyer_fee = 9"
               f" WHERE trade_id = 3")
    with pytest.raises(TtlRefused, match="^trade 3 in settled_trades has columns that expire at different times"):
        backfill(db, cfg, "mixed", ttl_policy="preserve")


def test_a_table_default_ttl_fails_planning_under_refuse(db, cfg, source, monkeypatch):
    """The command line (as the DAG) checks at planning; --ttl-policy preserve copies the TTL."""
    mark_done(db, cfg, "create_table", "dual_write")
    monkeypatch.setenv("TM_KEYSPACE", cfg.keyspace)
    db.execute(f"ALTER TABLE {cfg.keyspace}.settled_trades WITH default_time_to_live = 86400")
    try:
        with pytest.raises(TtlRefused, match=f"^{cfg.keyspace}.settled_trades has default_time_to_live 86400s, so"
                                             f" its rows expire, and ttl_policy is 'refuse'; nothing was planned"):
            backfill_cli.main(["--backfill-id", "planned", "--splits", "1"])
        assert Ledger(db, cfg, "planned").load() == []
        with pytest.raises(ConfigError, match="ttl_policy must be one of refuse, preserve; got 'keep'"):
            phase.start(db, cfg, "planned", splits=1, ranges=[], run_id="t", actor="pytest", reason="",
                        ttl_policy="keep")
        write(db, cfg, [trade(600, 60, 61)])   # the table's default TTL applies to it
        result = backfill_cli.main(["--backfill-id", "planned", "--splits", "1", "--ttl-policy", "preserve"])
    finally:
        db.execute(f"ALTER TABLE {cfg.keyspace}.settled_trades WITH default_time_to_live = 0")
    assert result == {"ranges": 1, "rows_read": 36, "rows_written": 72, "rows_rejected": 0}
    lo, hi = ttls(db, cfg, 600)
    assert 86400 - 60 <= lo <= hi <= 86400
    assert_exact(db, cfg.keyspace)
