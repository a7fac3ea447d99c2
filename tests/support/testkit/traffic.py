"""Live traffic for tests and the demo: generated trades settled through the reference writer.

    python -m testkit.traffic --rate 20      # settle 20 generated trades a second until stopped
"""
from __future__ import annotations

import argparse
import itertools
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from testkit import generator
from trade_migration.core.config import Config
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


def stamped(trade: SettledTrade, ns: int) -> SettledTrade:
    """The trade as settled now: settled_at = now (a null stays null, it is a reject), matched just before."""
    ms = ns // 1_000_000
    at = datetime.fromtimestamp(ms // 1000, UTC) + timedelta(milliseconds=ms % 1000)
    return trade._replace(
        settled_at=None if trade.settled_at is None else at,
        matched_at=None if trade.matched_at is None else at - timedelta(milliseconds=trade.trade_id % 40 + 1))


@dataclass(frozen=True)
class TrafficOptions:
    trades_per_second: float = 50.0   # 0 = as fast as possible
    first_trade_id: int = LIVE_FIRST_TRADE_ID
    seed: int = 1

    def __post_init__(self) -> None:
        if self.trades_per_second < 0:
            raise ValueError("trades_per_second must not be negative")


class LiveTraffic:
    """Settles generated trades through a SettlementWriter, in this thread or in the background."""

    def __init__(self, writer: SettlementWriter, options: TrafficOptions = TrafficOptions()):
        self.writer, self.opt = writer, options
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
        for i, trade in enumerate(live_trades(self.opt.first_trade_id, self.opt.seed)):
            if stop.is_set() or (count is not None and i >= count):
                break
            if rate > 0:
                wait = began + i / rate - time.monotonic()
                if wait > 0 and stop.wait(wait):
                    break
            ns = time.time_ns()
            self.writer.settle(stamped(trade, ns), write_time=ns // 1000)
        return self.stats

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
    writer = SettlementWriter(session, config, WriterOptions(flag_refresh_s=flag_refresh_s,
                                                             user_trades_table=user_trades_table))
    return LiveTraffic(writer, TrafficOptions(**traffic))


def main(argv: list[str] | None = None) -> None:
    from trade_migration.core.session import connect

    parser = argparse.ArgumentParser(description="Settle generated live trades through the reference writer.")
    parser.add_argument("--rate", type=float, default=50.0, help="trades per second (0: as fast as possible)")
    parser.add_argument("--trades", type=int, default=None, help="stop after this many (default: never)")
    parser.add_argument("--first-id", type=int, default=LIVE_FIRST_TRADE_ID)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--flag-refresh", type=float, default=5.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = Config.from_env()
    session = connect(config)
    writer = SettlementWriter(session, config, WriterOptions(flag_refresh_s=args.flag_refresh))
    traffic = LiveTraffic(writer, TrafficOptions(trades_per_second=args.rate, first_trade_id=args.first_id,
                                                 seed=args.seed))
    try:
        stats = traffic.run(count=args.trades)
    except KeyboardInterrupt:
        stats = traffic.stats
    finally:
        session.cluster.shutdown()
    print(stats)


if __name__ == "__main__":
    main()
