from collections import Counter

from testkit import generator

from trade_migration.core.convert import REJECT_REASONS, Reject, convert


def test_deterministic_and_reject_mix_exact():
    a = [r for r, _ in generator.trades(5000, seed=3)]
    assert a == [r for r, _ in generator.trades(5000, seed=3)]
    assert a != [r for r, _ in generator.trades(5000, seed=4)]
    ids = {s[0]: s[1] for s in generator.symbols()}
    got = Counter(out.code for out in (convert(r, ids) for r in a) if isinstance(out, Reject))
    assert got == generator.expected_rejects(5000)
    assert sum(got.values()) == 20 and set(got) == set(REJECT_REASONS)


def test_market_makers_dominate_and_self_trades_exist():
    plan = generator.Plan()
    rows = [r for r, _ in generator.trades(20000, seed=1, plan=plan)]
    mm = sum(1 for r in rows if r[5] in generator.MARKET_MAKERS or r[6] in generator.MARKET_MAKERS)
    assert mm / len(rows) > 0.6
    assert plan.self_trades == sum(1 for r in rows if r[5] is not None and r[5] == r[6]) == 100
    assert len({r[2] for r in rows}) >= 35
    assert plan.user_trade_rows == 2 * (20000 - 80)
