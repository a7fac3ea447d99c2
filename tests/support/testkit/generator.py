"""Realistic, deterministic test data: trading.symbols and N settled trades from a seed.

A few market makers take part in most trades, many small users in the rest; dozens of symbols
with real-looking scales; self-trades; and every REJECT_PERIOD-th trade breaks one contract rule
(cycling through trades.REJECT_REASONS), so the reject mix is exact and known in advance.
"""
from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args

from testkit.statements import insert_symbol
from trade_migration.backfill.copier import submit_batched
from trade_migration.core.binding import Binder
from trade_migration.core.convert import REJECT_REASONS
from trade_migration.core.model import SettledTrade
from trade_migration.core.writes import BoundedWriter
from trade_migration.statements.settled_trades import insert_settled

FIRST_TRADE_ID = 10_000_000
REJECT_PERIOD = 250          # trade i is a reject when i % REJECT_PERIOD == REJECT_OFFSET
REJECT_OFFSET = 125
SELF_TRADE_PERIOD = 200      # trade i is a self-trade when i % SELF_TRADE_PERIOD == 17 (and not a reject)
MARKET_MAKERS = (1, 2, 3, 4, 5)
UNKNOWN_SYMBOL = "DELISTED_XYZ"
HISTORY_START = datetime(2026, 5, 1, tzinfo=UTC)
HISTORY_SPAN = timedelta(days=180)

# (base, quote, reference price, price_scale, qty_scale)
_MARKETS = [
    ("BTC", "USDT", 67000, 2, 6), ("ETH", "USDT", 3200, 2, 5), ("SOL", "USDT", 150, 3, 3),
    ("XRP", "USDT", 0.55, 5, 1), ("ADA", "USDT", 0.45, 5, 1), ("DOGE", "USDT", 0.12, 6, 0),
    ("DOT", "USDT", 6.5, 4, 2), ("AVAX", "USDT", 28, 3, 2), ("LINK", "USDT", 14, 3, 2),
    ("LTC", "USDT", 80, 2, 3), ("TRX", "USDT", 0.12, 6, 0), ("ATOM", "USDT", 7.5, 4, 2),
    ("UNI", "USDT", 9, 3, 2), ("XLM", "USDT", 0.1, 6, 0), ("NEAR", "USDT", 5, 4, 1),
    ("APT", "USDT", 8, 4, 2), ("ARB", "USDT", 0.8, 4, 1), ("OP", "USDT", 1.8, 4, 1),
    ("FIL", "USDT", 4.5, 4, 2), ("INJ", "USDT", 22, 3, 2), ("BTC", "USDC", 67010, 2, 6),
    ("ETH", "USDC", 3201, 2, 5), ("SOL", "USDC", 150.2, 3, 3), ("XRP", "USDC", 0.551, 5, 1),
    ("ETH", "BTC", 0.0478, 6, 4), ("SOL", "BTC", 0.00224, 8, 2), ("LINK", "BTC", 0.000209, 8, 1),
    ("LTC", "BTC", 0.00119, 7, 2), ("BNB", "USDT", 580, 2, 3), ("TON", "USDT", 5.2, 4, 2),
    ("SHIB", "USDT", 0.0000175, 9, 0), ("PEPE", "USDT", 0.0000091, 10, 0), ("AAVE", "USDT", 140, 2, 3),
    ("MKR", "USDT", 2100, 2, 4), ("SUI", "USDT", 1.1, 4, 1), ("SEI", "USDT", 0.35, 5, 1),
    ("TIA", "USDT", 6, 4, 2), ("RNDR", "USDT", 7, 4, 2), ("FET", "USDT", 1.3, 4, 1),
    ("BNB", "BTC", 0.00866, 7, 3),
]


def symbols() -> list[tuple]:
    """(symbol, symbol_id, base, quote, price_scale, qty_scale) for every market."""
    return [(f"{b}_{q}", i + 1, b, q, ps, qs) for i, (b, q, _, ps, qs) in enumerate(_MARKETS)]


@dataclass
class Plan:
    """What a generation run wrote: the numbers tests compare the database against."""
    trades: int = 0
    self_trades: int = 0
    rejects: Counter = field(default_factory=Counter)

    @property
    def convertible(self) -> int:
        return self.trades - sum(self.rejects.values())

    @property
    def user_trade_rows(self) -> int:
        return 2 * self.convertible


def expected_rejects(n: int) -> Counter:
    """The reject mix of n generated trades, computed without generating them."""
    out: Counter = Counter()
    for k in range(len(range(REJECT_OFFSET, n, REJECT_PERIOD))):
        out[REJECT_REASONS[k % len(REJECT_REASONS)]] += 1
    return out


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def trades(n: int, seed: int, *, first_id: int = FIRST_TRADE_ID, start: datetime = HISTORY_START,
           span: timedelta = HISTORY_SPAN, plan: Plan | None = None):
    """Yield (SettledTrade, write time in microseconds)."""
    rng = random.Random(seed)
    markets = [(f"{b}_{q}", ref, ps, qs) for b, q, ref, ps, qs in _MARKETS]
    weights = [1.0 / (k + 1) ** 0.9 for k in range(len(markets))]
    small_users = max(50, n // 8)
    step_ms = max(1, int(span.total_seconds() * 1000) // max(n, 1))
    base_ms = _ms(start)
    for i in range(n):
        symbol, ref, pscale, qscale = rng.choices(markets, weights)[0]
        price = max(1, int(ref * rng.uniform(0.8, 1.2) * 10 ** pscale))
        quantity = max(1, int(rng.expovariate(1.0) * 10 ** qscale * max(1.0, 100 / max(ref, 1e-9)) ** 0.3))
        if rng.random() < 0.6:
            buyer = rng.choice(MARKET_MAKERS)
            seller = 1000 + int(rng.paretovariate(1.2)) % small_users
        else:
            buyer = 1000 + int(rng.paretovariate(1.2)) % small_users
            seller = rng.choice(MARKET_MAKERS) if rng.random() < 0.5 else 1000 + rng.randrange(small_users)
        while seller == buyer:   # self-trades only where planned, so the count is exact
            seller = 1000 + rng.randrange(small_users)
        if rng.random() < 0.5:
            buyer, seller = seller, buyer
        settled_ms = base_ms + i * step_ms + rng.randrange(step_ms)
        matched_ms = None if rng.random() < 0.01 else settled_ms - rng.randrange(1, 50)
        trade_id = first_id + i
        row = SettledTrade(
            trade_id=trade_id, output_seq=trade_id // 8, symbol=symbol, price=price, quantity=quantity,
            buyer_user_id=buyer, seller_user_id=seller,
            buyer_order_id=None if rng.random() < 0.005 else trade_id * 2,
            seller_order_id=None if rng.random() < 0.005 else trade_id * 2 + 1,
            taker_side=rng.choice(("BUY", "SELL")),
            buyer_fee=None if rng.random() < 0.01 else price * quantity // 10**9,
            seller_fee=None if rng.random() < 0.01 else price * quantity // 10**9 + 1,
            matched_at=datetime.fromtimestamp(matched_ms / 1000, UTC) if matched_ms else None,
            settled_at=datetime.fromtimestamp(settled_ms / 1000, UTC))
        if i % REJECT_PERIOD == REJECT_OFFSET:
            code = REJECT_REASONS[(i // REJECT_PERIOD) % len(REJECT_REASONS)]
            row = _break(row, code, rng)
            if plan is not None:
                plan.rejects[code] += 1
        elif i % SELF_TRADE_PERIOD == 17:
            row = row._replace(seller_user_id=row.buyer_user_id)
            if plan is not None:
                plan.self_trades += 1
        if plan is not None:
            plan.trades += 1
        yield row, settled_ms * 1000


def _break(row: SettledTrade, code: str, rng: random.Random) -> SettledTrade:
    """The trade with the contract rule `code` broken."""
    if code == "unknown_symbol":
        return row._replace(symbol=UNKNOWN_SYMBOL)
    if code == "null_buyer_user_id":
        return row._replace(buyer_user_id=None)
    if code == "null_seller_user_id":
        return row._replace(seller_user_id=None)
    if code == "null_settled_at":
        return row._replace(settled_at=None)
    if code == "bad_price":
        return row._replace(price=rng.choice((None, 0, -row.price)))
    if code == "bad_quantity":
        return row._replace(quantity=rng.choice((None, 0, -row.quantity)))
    assert code == "bad_taker_side", code
    return row._replace(taker_side=rng.choice((None, "buy", "", "BOTH")))


def write_symbols(session: Session, keyspace: str) -> int:
    stmt = session.prepare(insert_symbol(keyspace))
    execute_concurrent_with_args(session, stmt, symbols(), concurrency=32)
    return len(_MARKETS)


def write_trades(session: Session, keyspace: str, n: int, seed: int, *, concurrency: int = 128,
                 chunk: int = 2_000, **kwargs) -> Plan:
    """Insert n trades, each at its write time, through the backfill's own write path (unlogged
    batches of trades with the same replicas, `concurrency` in flight); returns the Plan of what
    was written."""
    stmt = session.prepare(insert_settled(keyspace))
    binder, writer, group = Binder(stmt), BoundedWriter(session, concurrency), object()
    writer.open_group(group)
    plan = Plan()
    page: dict[int, list[tuple]] = {}
    for row, writetime in trades(n, seed, plan=plan, **kwargs):
        page.setdefault(row.trade_id, []).append((*row, writetime))
        if len(page) >= chunk:
            submit_batched(writer, binder, page, group, metadata=session.cluster.metadata,
                           consistency=stmt.consistency_level)
            page = {}
    submit_batched(writer, binder, page, group, metadata=session.cluster.metadata,
                   consistency=stmt.consistency_level)
    writer.close_group(group)
    writer.drain()
    return plan


def main(argv: list[str] | None = None) -> None:
    from trade_migration.core.config import Config
    from trade_migration.core.session import connect
    from trade_migration.create_table.schema import apply

    parser = argparse.ArgumentParser(description="Fill symbols and settled_trades with generated trades.")
    parser.add_argument("--trades", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    config = Config.from_env()
    session = connect(config)
    apply(session, config)
    write_symbols(session, config.keyspace)
    started = time.monotonic()
    plan = write_trades(session, config.keyspace, args.trades, args.seed)
    took = time.monotonic() - started
    print(f"wrote {plan.trades} trades ({plan.trades / took:,.0f}/s), {plan.self_trades} self-trades,"
          f" rejects {dict(plan.rejects)}")


if __name__ == "__main__":
    main()
