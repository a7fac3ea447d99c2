"""Live traffic for tests and the demo: generated trades settled through the reference writer.

Seeded shares of the traffic can bust or correct recently settled trades (corrections change key
columns too), and a seeded share of dual writes can fail inside the writer, before anything is sent.

    python -m testkit.traffic --rate 20      # settle 20 generated trades a second until stopped
"""
from __future__ import annotations

import argparse
import itertools
import logging
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from testkit import generator
from trade_migration.core.config import Config
from trade_migration.core.convert import reject_reason
from trade_migration.core.model import SettledTrade
from trade_migration.dual_write.writer import SettlementWriter, WriterOptions, WriterStats

log = logging.getLogger(__name__)
LIVE_FIRST_TRADE_ID = 900_000_000   # far above generated history (generator.FIRST_TRADE_ID)
_BLOCK = 10_000                     # generated trades per seed block (a multiple of the reject period)


def live_trades(first_id: int, seed: int) -> Iterator[SettledTrade]:
    """An endless stream of generated trades with new ids (the generator's mix, rejects included)."""
    for k in itertools.count():
        for row, _ in generator.trades(_BLOCK, seed + k, first_id=first_id + k * _BLOCK):
            yield row


def at_ns(ns: int) -> datetime:
    """An epoch time in nanoseconds as a CQL timestamp keeps it (to the millisecond)."""
    ms = ns // 1_000_000
    return datetime.fromtimestamp(ms // 1000, UTC) + timedelta(milliseconds=ms % 1000)


def stamped(trade: SettledTrade, ns: int) -> SettledTrade:
    """The trade as settled now: settled_at = now (a null stays null, it is a reject), matched just before."""
    at = at_ns(ns)
    return trade._replace(
        settled_at=None if trade.settled_at is None else at,
        matched_at=None if trade.matched_at is None else at - timedelta(milliseconds=trade.trade_id % 40 + 1))


_SYMBOLS = tuple(s[0] for s in generator.symbols())
_SYMBOL_IDS = {s[0]: s[1] for s in generator.symbols()}
# What a correction changes: key columns of user_trades (settled_at, symbol, the parties), values,
# a value to null, or the trade into a reject. A reject is always corrected into a valid trade.
CORRECTIONS = ("settled_at", "symbol", "parties", "taker_side", "price", "fee_to_null", "to_reject")


def corrected(trade: SettledTrade, kind: str, at: datetime) -> SettledTrade:
    """The trade as a correction of this kind leaves it (a reject: made valid, settled at `at` if
    its settled_at is missing)."""
    if reject_reason(trade, _SYMBOL_IDS) is not None:
        return trade._replace(
            symbol=trade.symbol if trade.symbol in _SYMBOL_IDS else _SYMBOLS[trade.trade_id % len(_SYMBOLS)],
            buyer_user_id=1000 if trade.buyer_user_id is None else trade.buyer_user_id,
            seller_user_id=1001 if trade.seller_user_id is None else trade.seller_user_id,
            settled_at=trade.settled_at or at, price=max(1, trade.price or 1), quantity=max(1, trade.quantity or 1),
            taker_side=trade.taker_side if trade.taker_side in ("BUY", "SELL") else "BUY")
    if kind == "settled_at":
        return trade._replace(settled_at=trade.settled_at + timedelta(milliseconds=trade.trade_id % 997 + 1))
    if kind == "symbol":
        return trade._replace(symbol=_SYMBOLS[(_SYMBOLS.index(trade.symbol) + 1) % len(_SYMBOLS)])
    if kind == "parties":
        return trade._replace(buyer_user_id=trade.seller_user_id, seller_user_id=trade.buyer_user_id,
                              buyer_order_id=trade.seller_order_id, seller_order_id=trade.buyer_order_id)
    if kind == "taker_side":
        return trade._replace(taker_side="SELL" if trade.taker_side == "BUY" else "BUY")
    if kind == "price":
        return trade._replace(price=trade.price + 1, quantity=trade.quantity * 2)
    if kind == "fee_to_null":
        return trade._replace(buyer_fee=None, matched_at=None)
    if kind == "to_reject":
        return trade._replace(settled_at=None)
    raise ValueError(f"unknown correction {kind!r}")


@dataclass(frozen=True)
class TrafficOptions:
    trades_per_second: float = 50.0   # 0 = as fast as possible
    first_trade_id: int = LIVE_FIRST_TRADE_ID
    seed: int = 1
    dual_write_failure_share: float = 0.0   # dual writes failing inside the writer (WriterOptions)
    bust_share: float = 0.0           # after a settlement, bust a recently settled trade this often
    correction_share: float = 0.0     # ... or correct one this often (a kind from CORRECTIONS)
    remembered: int = 1000            # how many recently settled trades busts and corrections pick from

    def __post_init__(self) -> None:
        if self.trades_per_second < 0:
            raise ValueError("trades_per_second must not be negative")
        for name in ("dual_write_failure_share", "bust_share", "correction_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.bust_share + self.correction_share > 1:
            raise ValueError("bust_share + correction_share must not exceed 1")

    def writer_options(self, **options) -> WriterOptions:
        """The writer's options, with this traffic's seeded dual write failures."""
        return WriterOptions(user_trades_failure_share=self.dual_write_failure_share, fault_seed=self.seed,
                             **options)


class LiveTraffic:
    """Settles generated trades through a SettlementWriter, in this thread or in the background."""

    def __init__(self, writer: SettlementWriter, options: TrafficOptions = TrafficOptions()):
        if writer.opt.user_trades_failure_share != options.dual_write_failure_share:
            raise ValueError("the writer's user_trades_failure_share is not the traffic's dual_write_failure_share:"
                             " build its options with TrafficOptions.writer_options()")
        self.writer, self.opt = writer, options
        self.recent: dict[int, SettledTrade] = {}   # trade_id -> its current version, oldest first
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: BaseException | None = None

    @property
    def stats(self) -> WriterStats:
        return self.writer.stats

    def run(self, stop: threading.Event | None = None, *, count: int | None = None) -> WriterStats:
        """Settle generated trades at `trades_per_second` until stopped (or `count` trades)."""
        stop = stop or threading.Event()
        rate = self.opt.trades_per_second
        began = time.monotonic()
        rng = random.Random(f"busts and corrections {self.opt.seed}")
        for i, trade in enumerate(live_trades(self.opt.first_trade_id, self.opt.seed)):
            if stop.is_set() or (count is not None and i >= count):
                break
            if rate > 0:
                wait = began + i / rate - time.monotonic()
                if wait > 0 and stop.wait(wait):
                    break
            ns = time.time_ns()
            trade = stamped(trade, ns)
            self.writer.settle(trade, write_time=ns // 1000)
            self._remember(trade)
            self._bust_or_correct(rng)
        return self.stats

    def _remember(self, trade: SettledTrade) -> None:
        self.recent[trade.trade_id] = trade
        if len(self.recent) > self.opt.remembered:
            del self.recent[next(iter(self.recent))]

    def _bust_or_correct(self, rng: random.Random) -> None:
        """With the seeded shares, bust or correct one recently settled trade, as it stands now."""
        draw = rng.random()
        if draw >= self.opt.bust_share + self.opt.correction_share or not self.recent:
            return
        old = self.recent[rng.choice(list(self.recent))]
        ns = time.time_ns()
        if draw < self.opt.bust_share:
            self.writer.bust(old, write_time=ns // 1000)
            del self.recent[old.trade_id]
            return
        new = corrected(old, rng.choice(CORRECTIONS), at_ns(ns))
        self.writer.correct(old, new, write_time=ns // 1000)
        self.recent[old.trade_id] = new

    def start(self) -> None:
        """Run live traffic in a background thread until stop()."""
        if self._thread is not None:
            raise RuntimeError("traffic already running")
        self._stop.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run_thread, name="live-traffic", daemon=True)
        self._thread.start()

    def _run_thread(self) -> None:
        try:
            self.run(self._stop)
        except BaseException as exc:  # noqa: BLE001 - handed to stop()
            self._error = exc
            log.exception("live traffic stopped")

    def stop(self, timeout: float = 60.0) -> WriterStats:
        """Stop the background thread; re-raise what stopped it, if anything did."""
        if self._thread is None:
            return self.stats
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"live traffic did not stop within {timeout}s")
        self._thread = None
        if self._error is not None:
            raise self._error
        return self.stats

    @contextmanager
    def running(self):
        self.start()
        try:
            yield self
        finally:
            self.stop()


def live_traffic(session, config: Config, *, flag_refresh_s: float = 5.0, user_trades_table: str = "user_trades",
                 **traffic) -> LiveTraffic:
    """A reference writer with these options, driven by generated traffic (TrafficOptions fields)."""
    options = TrafficOptions(**traffic)
    writer = SettlementWriter(session, config, options.writer_options(flag_refresh_s=flag_refresh_s,
                                                                      user_trades_table=user_trades_table))
    return LiveTraffic(writer, options)


def main(argv: list[str] | None = None) -> None:
    from trade_migration.core.session import connect

    parser = argparse.ArgumentParser(description="Settle generated live trades through the reference writer.")
    parser.add_argument("--rate", type=float, default=50.0, help="trades per second (0: as fast as possible)")
    parser.add_argument("--trades", type=int, default=None, help="stop after this many (default: never)")
    parser.add_argument("--first-id", type=int, default=LIVE_FIRST_TRADE_ID)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--flag-refresh", type=float, default=5.0)
    parser.add_argument("--fail-share", type=float, default=0.0, help="share of dual writes that fail")
    parser.add_argument("--bust-share", type=float, default=0.0, help="share of settlements followed by a bust")
    parser.add_argument("--correction-share", type=float, default=0.0,
                        help="share of settlements followed by a correction")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = Config.from_env()
    session = connect(config)
    options = TrafficOptions(trades_per_second=args.rate, first_trade_id=args.first_id, seed=args.seed,
                             dual_write_failure_share=args.fail_share, bust_share=args.bust_share,
                             correction_share=args.correction_share)
    traffic = LiveTraffic(SettlementWriter(session, config, options.writer_options(flag_refresh_s=args.flag_refresh)),
                          options)
    try:
        stats = traffic.run(count=args.trades)
    except KeyboardInterrupt:
        stats = traffic.stats
    finally:
        session.cluster.shutdown()
    print(stats)


if __name__ == "__main__":
    main()
