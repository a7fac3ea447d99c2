"""The reference settlement writer: settled_trades always, user_trades too while dual_write is on.

The Python counterpart of the settlement service's change, and the live-traffic generator for
tests and the demo. Both tables get the same write timestamp, so the backfill (which writes with
the source row's own write time) can never overwrite a dual-written row with older data. The
flag is re-read at most `flag_refresh_s` after the last read: a change reaches every settlement
within that bound. A failed user_trades write is logged and counted but never fails the
settlement; the nightly parity check repairs the missing rows.
"""
from __future__ import annotations

import argparse
import itertools
import logging
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cassandra.cluster import Session
from cassandra.metadata import Murmur3Token

from . import generator, statements
from .config import TARGET_TABLE, Config, identifier
from .cql import prepared
from .flags import DUAL_WRITE, NEW_ONLY, RETIRED, Flags
from .ledger import now
from .symbols import load_symbol_ids
from .trades import MATCHED_AT, SETTLED_AT, TRADE_ID, Reject, convert, raw_values

log = logging.getLogger(__name__)
LIVE_FIRST_TRADE_ID = 900_000_000   # far above generated history (generator.FIRST_TRADE_ID)
_BLOCK = 10_000                     # generated trades per seed block (a multiple of the reject period)


@dataclass(frozen=True)
class WriterOptions:
    flag_refresh_s: float = 5.0        # bound on how stale the dual_write flag (and symbols) may be
    trades_per_second: float = 50.0   # live traffic rate of run(); 0 = as fast as possible
    first_trade_id: int = LIVE_FIRST_TRADE_ID
    seed: int = 1
    user_trades_table: str = TARGET_TABLE   # tests name a missing table to make dual writes fail

    def __post_init__(self) -> None:
        identifier(self.user_trades_table, what="user_trades_table")
        if self.flag_refresh_s < 0 or self.trades_per_second < 0:
            raise ValueError("flag_refresh_s and trades_per_second must not be negative")


@dataclass
class WriterStats:
    settled: int = 0              # settled_trades rows written: the settlement itself
    user_trade_rows: int = 0      # user_trades rows written by dual writes
    rejected: int = 0             # trades recorded in rejected_trades instead
    user_trades_failed: int = 0   # trades whose dual write failed (settled all the same)
    flag_reads: int = 0
    flag_read_failures: int = 0
    last_trade_id: int | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class Settled:
    trade_id: int
    write_time: int       # microseconds, the USING TIMESTAMP of every row written for it
    dual_write: bool      # whether the flag was on for this trade
    outcome: str          # "settled_only", "dual_written", "new_only", "rejected" or "dual_write_failed"


def row_token(trade_id: int) -> int:
    """token(trade_id) of settled_trades (Murmur3 of the bigint), without asking the cluster."""
    return Murmur3Token.from_key(struct.pack(">q", trade_id)).value


def live_trades(first_id: int, seed: int) -> Iterator[tuple]:
    """An endless stream of generated trades with new ids (the generator's mix, rejects included)."""
    for k in itertools.count():
        for row, _ in generator.trades(_BLOCK, seed + k, first_id=first_id + k * _BLOCK):
            yield row


def stamped(trade: tuple, ns: int) -> tuple:
    """The trade as settled now: settled_at = now (a null stays null, it is a reject), matched just before."""
    row = list(trade)
    ms = ns // 1_000_000
    at = datetime.fromtimestamp(ms // 1000, UTC) + timedelta(milliseconds=ms % 1000)
    if row[SETTLED_AT] is not None:
        row[SETTLED_AT] = at
    if row[MATCHED_AT] is not None:
        row[MATCHED_AT] = at - timedelta(milliseconds=row[TRADE_ID] % 40 + 1)
    return tuple(row)


class SettlementWriter:
    def __init__(self, session: Session, config: Config, options: WriterOptions = WriterOptions()):
        self.session, self.config, self.opt = session, config, options
        ks, cl = config.keyspace, config.write_cl
        self.insert_settled = prepared(session, statements.insert_settled(ks), consistency=cl)
        self.insert_reject = prepared(session, statements.reject_insert(ks), consistency=cl)
        self.flags = Flags(session, config)
        self.stats = WriterStats()
        self._dual_write = "off"
        self._flag_read_at: float | None = None
        self._symbol_ids: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: BaseException | None = None

    # --- the flag -----------------------------------------------------------------------------
    def dual_write_on(self) -> bool:
        """True while user_trades must be written (on, new_only, retired)."""
        return self.mode() != "off"

    def mode(self) -> str:
        """The dual_write flag, re-read when the last read is `flag_refresh_s` old (with symbols).

        When the flag cannot be read, the last known value stays in force and the read is
        retried on the next trade: settlement never waits on the migration's state.
        """
        t = time.monotonic()
        if self._flag_read_at is None or t - self._flag_read_at >= self.opt.flag_refresh_s:
            try:
                value = self.flags.get(DUAL_WRITE).value
                self._symbol_ids = load_symbol_ids(self.session, self.config.keyspace)
            except Exception as exc:  # noqa: BLE001 - keep settling with the last known value
                self.stats.flag_read_failures += 1
                log.warning("cannot read the dual_write flag (%s); keeping %r", exc, self._dual_write)
            else:
                self.stats.flag_reads += 1
                if value != self._dual_write:
                    log.info("dual_write flag is now %r", value)
                self._dual_write, self._flag_read_at = value, t
        return self._dual_write

    # --- one settlement -----------------------------------------------------------------------
    def settle(self, trade: tuple, *, write_time: int | None = None) -> Settled:
        """Write one trade (a SETTLED_COLUMNS tuple). Raises only if the settlement itself fails:
        settled_trades, or user_trades once it is the only table written (new_only, retired)."""
        ts = write_time if write_time is not None else time.time_ns() // 1000
        trade_id = trade[TRADE_ID]
        mode = self.mode()
        if mode in (NEW_ONLY, RETIRED):
            return self._write_user_trades(trade, ts, "new_only")
        self.session.execute(self.insert_settled, (*trade, ts))
        self.stats.settled += 1
        self.stats.last_trade_id = trade_id
        if mode != "on":
            return Settled(trade_id, ts, False, "settled_only")
        try:
            return self._write_user_trades(trade, ts, "dual_written")
        except Exception as exc:  # noqa: BLE001 - the settlement stands; parity repairs user_trades
            self.stats.user_trades_failed += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"[:500]
            log.warning("trade %s settled, but its user_trades write failed: %s", trade_id, self.stats.last_error)
            return Settled(trade_id, ts, True, "dual_write_failed")

    def _write_user_trades(self, trade: tuple, ts: int, outcome: str) -> Settled:
        """The trade's two user_trades rows, or its reject, with the settlement's timestamp."""
        trade_id = trade[TRADE_ID]
        out = convert(trade, self._symbol_ids)
        if isinstance(out, Reject):
            self.session.execute(self.insert_reject, (trade_id, row_token(trade_id), out.reason,
                                                      raw_values(trade), "writer", now()))
            self.stats.rejected += 1
            return Settled(trade_id, ts, True, "rejected")
        stmt = prepared(self.session, statements.insert_user_trade_into(
            self.config.keyspace, self.opt.user_trades_table), consistency=self.config.write_cl)
        for future in [self.session.execute_async(stmt, (*row, ts)) for row in out]:
            future.result()
        self.stats.user_trade_rows += len(out)
        self.stats.last_trade_id = trade_id
        return Settled(trade_id, ts, True, outcome)

    # --- live traffic -------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None, *, count: int | None = None) -> WriterStats:
        """Settle generated trades at `trades_per_second` until stopped (or `count` trades)."""
        stop = stop or threading.Event()
        rate = self.opt.trades_per_second
        began = time.monotonic()
        source = live_trades(self.opt.first_trade_id, self.opt.seed)
        for i, trade in enumerate(source):
            if stop.is_set() or (count is not None and i >= count):
                break
            if rate > 0:
                wait = began + i / rate - time.monotonic()
                if wait > 0 and stop.wait(wait):
                    break
            ns = time.time_ns()
            self.settle(stamped(trade, ns), write_time=ns // 1000)
        return self.stats

    def start(self) -> None:
        """Run live traffic in a background thread until stop()."""
        if self._thread is not None:
            raise RuntimeError("writer already running")
        self._stop.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run_thread, name="settlement-writer", daemon=True)
        self._thread.start()

    def _run_thread(self) -> None:
        try:
            self.run(self._stop)
        except BaseException as exc:  # noqa: BLE001 - handed to stop()
            self._error = exc
            log.exception("settlement writer stopped")

    def stop(self, timeout: float = 60.0) -> WriterStats:
        """Stop the background thread; re-raise what stopped it, if anything did."""
        if self._thread is None:
            return self.stats
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"settlement writer did not stop within {timeout}s")
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


def main(argv: list[str] | None = None) -> None:
    from .session import connect

    parser = argparse.ArgumentParser(description="Settle generated live trades (the reference writer).")
    parser.add_argument("--rate", type=float, default=50.0, help="trades per second (0: as fast as possible)")
    parser.add_argument("--trades", type=int, default=None, help="stop after this many (default: never)")
    parser.add_argument("--first-id", type=int, default=LIVE_FIRST_TRADE_ID)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--flag-refresh", type=float, default=5.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = Config.from_env()
    session = connect(config)
    writer = SettlementWriter(session, config, WriterOptions(
        flag_refresh_s=args.flag_refresh, trades_per_second=args.rate, first_trade_id=args.first_id,
        seed=args.seed))
    try:
        stats = writer.run(count=args.trades)
    except KeyboardInterrupt:
        stats = writer.stats
    finally:
        session.cluster.shutdown()
    print(stats)


if __name__ == "__main__":
    main()
