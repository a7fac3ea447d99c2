"""Old and new read paths, the shadow compare and the latency helper, on generated trades."""
from __future__ import annotations

import time

import pytest
from conftest import load_trades
from testkit import generator
from testkit.statements import delete_user_trade

from trade_migration.backfill import copier
from trade_migration.core.convert import Reject, convert
from trade_migration.core.errors import ReadPathBlocked
from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN, TokenRange
from trade_migration.read_path.latency import benchmark, format_benchmark, percentile
from trade_migration.read_path.paths import ReadPaths, order_key, sample_pairs
from trade_migration.read_path.shadow import (
    EXTRA,
    MISMATCH,
    MISSING,
    ShadowReport,
    require_clean,
    shadow_compare,
)
from trade_migration.state.ledger import Ledger
from trade_migration.statements.user_trades import insert_user_trade

N, SEED = 3000, 11


@pytest.fixture(scope="module")
def data(cluster_session, cfg):
    """N generated trades, backfilled into user_trades; the generator's rows for expectations."""
    for table in ("symbols", "settled_trades", "user_trades", "backfill_ranges", "rejected_trades"):
        cluster_session.execute(f"TRUNCATE {cfg.keyspace}.{table}")
    load_trades(cluster_session, cfg, N, SEED)
    Ledger(cluster_session, cfg, "q").plan([TokenRange(MIN_TOKEN, MAX_TOKEN)])
    copier.run_batch(cluster_session, cfg, "q", [TokenRange(MIN_TOKEN, MAX_TOKEN)])
    return [row for row, _ in generator.trades(N, SEED)]


@pytest.fixture
def paths(cluster_session, cfg, data):
    return ReadPaths(cluster_session, cfg)


def now_us() -> int:
    return time.time_ns() // 1000


def expected_rows(trades: list[tuple], user_id: int, symbol: str) -> list[tuple]:
    """What "my trades in symbol, newest first" must return, computed from the generator."""
    ids = {s[0]: s[1] for s in generator.symbols()}
    rows = []
    for t in trades:
        if t[2] == symbol and user_id in (t[5], t[6]):
            out = convert(t, ids)
            if not isinstance(out, Reject):
                rows += [r for r in out if r[0] == user_id]
    return sorted(rows, key=order_key)


def naive(rows: list[tuple]) -> list[tuple]:
    """Generator rows carry aware datetimes; the driver returns naive UTC ones."""
    fix = lambda v: v.replace(tzinfo=None) if hasattr(v, "tzinfo") and v.tzinfo else v  # noqa: E731
    return [tuple(fix(v) for v in r) for r in rows]


def test_old_and_new_paths_return_the_users_trades_newest_first(paths, data):
    for user_id, symbol in [(1, "BTC_USDT"), (3, "ETH_USDT"), (1003, "BTC_USDT")]:
        want = naive(expected_rows(data, user_id, symbol))
        assert want, (user_id, symbol)
        assert paths.old(user_id, symbol, limit=None) == want
        assert paths.new(user_id, symbol, limit=10_000) == want
        assert paths.old(user_id, symbol, limit=7) == want[:7]
        assert paths.new(user_id, symbol, limit=7) == want[:7]
    assert paths.old(1, "NOPE_USDT") == [] and paths.new(1, "NOPE_USDT") == []


def test_a_self_trade_shows_both_sides_once(paths, data):
    trade = next(t for i, t in enumerate(data) if i % generator.SELF_TRADE_PERIOD == 17)
    user_id, symbol = trade[5], trade[2]
    assert trade[6] == user_id
    mine = [r for r in paths.old(user_id, symbol, limit=None) if r[3] == trade[0]]
    assert [(r[4], r[9]) for r in mine] == [("BUY", user_id), ("SELL", user_id)]
    assert [r for r in paths.new(user_id, symbol, limit=10_000) if r[3] == trade[0]] == mine


def test_sample_is_seeded_distinct_and_has_trades(cluster_session, cfg, paths):
    a = sample_pairs(cluster_session, cfg, 40, seed=5, symbols=paths.symbol_ids)
    assert a == sample_pairs(cluster_session, cfg, 40, seed=5, symbols=paths.symbol_ids)
    assert a != sample_pairs(cluster_session, cfg, 40, seed=6, symbols=paths.symbol_ids)
    assert len(a) == 40 and len(set(a)) == 40
    assert all(paths.old(u, s, limit=1) for u, s in a)


def test_after_a_full_backfill_the_shadow_compare_is_clean(cluster_session, cfg, paths):
    pairs = sample_pairs(cluster_session, cfg, 60, seed=1, symbols=paths.symbol_ids)
    report = shadow_compare(paths, pairs, limit=20)
    assert report.differences == []
    assert report.clean and report.pairs == 60
    assert report.rows_compared == sum(min(20, len(paths.old(u, s, limit=None))) for u, s in pairs)
    require_clean(report.summary())


def test_shadow_mode_finds_planted_differences(cluster_session, cfg, paths):
    db, ks = cluster_session, cfg.keyspace
    pairs = sample_pairs(db, cfg, 60, seed=1, symbols=paths.symbol_ids)
    limit = 5
    deep = [p for p in pairs if len(paths.new(*p, limit=100)) > 2 * limit][:3]
    assert len(deep) == 3
    gone = paths.new(*deep[0], limit=limit)[2]           # inside the first page
    changed = paths.new(*deep[1], limit=limit)[0]
    beyond = paths.new(*deep[2], limit=100)[limit + 2]  # past the page: not what the gateway shows
    orphan = (deep[2][0], paths.symbol_ids[deep[2][1]], changed[2].replace(year=2030), 1, "BUY",
              *changed[5:])   # the newest row of its partition, with no settled trade behind it
    insert = db.prepare(insert_user_trade(ks))
    delete = db.prepare(delete_user_trade(ks))
    try:
        db.execute(delete, gone[:5])
        db.execute(delete, beyond[:5])
        db.execute(insert, (*changed[:5], changed[5] + 1, *changed[6:], now_us()))   # price off by one
        db.execute(insert, (*orphan, now_us()))
        report = shadow_compare(paths, pairs, limit=limit)
        found = [(d.user_id, d.symbol, d.kind, d.trade_id, d.side) for d in report.differences]
        assert found == [
            (*deep[0], MISSING, gone[3], gone[4]),
            (*deep[1], MISMATCH, changed[3], changed[4]),
            (*deep[2], EXTRA, 1, "BUY"),
        ]
        assert report.differences[1].detail == f"price: settled_trades {changed[5]!r}, user_trades {changed[5] + 1!r}"
        with pytest.raises(ReadPathBlocked, match="found 3 differences over 60 users x symbol"):
            require_clean(report.summary())
        require_clean(report, override_reason="accepted: orphan is a test row")
        assert report.summary()["by_kind"] == {MISSING: 1, MISMATCH: 1, EXTRA: 1}
    finally:
        db.execute(delete, orphan[:5])
        for row in (gone, beyond, changed):   # newer than the deletes and the planted price
            db.execute(insert, (*row, now_us()))
    assert shadow_compare(paths, pairs, limit=limit).clean


def test_an_empty_comparison_does_not_allow_the_switch():
    with pytest.raises(ReadPathBlocked, match="needs a shadow comparison of at least one user"):
        require_clean(None)
    with pytest.raises(ReadPathBlocked, match="needs a shadow comparison of at least one user"):
        require_clean(ShadowReport(pairs=0).summary())
    require_clean(None, override_reason="emergency: settled_trades indexes are down")


def test_the_benchmark_names_users_whose_pages_differ(cluster_session, cfg, paths):
    pairs = sample_pairs(cluster_session, cfg, 10, seed=2, symbols=paths.symbol_ids)
    row = paths.new(*pairs[3], limit=20)[0]
    delete = cluster_session.prepare(delete_user_trade(cfg.keyspace))
    insert = cluster_session.prepare(insert_user_trade(cfg.keyspace))
    cluster_session.execute(delete, row[:5])
    try:
        assert benchmark(paths, pairs, limit=20)["different_answers"] == [list(pairs[3])]
    finally:
        cluster_session.execute(insert, (*row, now_us()))


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50.0, 99.0, 100.0)
    assert percentile([3.0], 99) == 3.0


def test_benchmark_measures_both_paths_on_the_same_users(cluster_session, cfg, paths):
    pairs = sample_pairs(cluster_session, cfg, 10, seed=2, symbols=paths.symbol_ids)
    report = benchmark(paths, pairs, limit=20)
    assert report["pairs"] == 10
    for path in ("old", "new"):
        for phase in ("cold", "warm"):
            r = report[path][phase]
            assert r["samples"] == 10 and 0 < r["p50_ms"] <= r["p99_ms"]
    assert set(report["ratio"]) == {"cold_p50", "cold_p99", "warm_p50", "warm_p99"}
    assert report["different_answers"] == []
    assert report["rows"] == sum(len(paths.new(u, s, limit=20)) for u, s in pairs)
    text = format_benchmark(report)
    assert "old (indexes+filter)" in text and "new (one partition)" in text and "old / new" in text
