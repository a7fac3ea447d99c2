"""The reference settlement writer: settled_trades always, user_trades too while dual_write is on.

The Python counterpart of the settlement service's change (tests/support/testkit/traffic.py drives
it with generated live traffic). Both tables get the same write timestamp, so the backfill
(which writes with the source row's own write time) can never overwrite a dual-written row with
older data. The flag is re-read at most `flag_refresh_s` after the last read: a change reaches
every settlement within that bound. A failed user_trades write is logged and counted but never
fails the settlement; a verification run with repair rewrites the missing rows.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from cassandra.cluster import Session

from trade_migration.core.clock import now, now_micros
from trade_migration.core.config import TARGET_TABLE, Config, identifier
from trade_migration.core.convert import Reject, convert, raw_values
from trade_migration.core.model import SettledTrade
from trade_migration.core.prepared import prepared
from trade_migration.core.symbols import load_symbol_ids
from trade_migration.core.tokens import settled_token
from trade_migration.state.flags import DUAL_WRITE, NEW_ONLY, RETIRED, Flags
from trade_migration.statements.rejected_trades import reject_insert
from trade_migration.statements.settled_trades import insert_settled
from trade_migration.statements.user_trades import insert_user_trade_into

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriterOptions:
    flag_refresh_s: float = 5.0        # bound on how stale the dual_write flag (and symbols) may be
    user_trades_table: str = TARGET_TABLE   # tests name a missing table to make dual writes fail

    def __post_init__(self) -> None:
        identifier(self.user_trades_table, what="user_trades_table")
        if self.flag_refresh_s < 0:
            raise ValueError("flag_refresh_s must not be negative")


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


class SettlementWriter:
    def __init__(self, session: Session, config: Config, options: WriterOptions = WriterOptions()):
        self.session, self.config, self.opt = session, config, options
        ks, cl = config.keyspace, config.write_cl
        self.insert_settled = prepared(session, insert_settled(ks), consistency=cl)
        self.insert_reject = prepared(session, reject_insert(ks), consistency=cl)
        self.flags = Flags(session, config)
        self.stats = WriterStats()
        self._dual_write = "off"
        self._flag_read_at: float | None = None
        self._symbol_ids: dict[str, int] = {}

    # --- the flag -----------------------------------------------------------------------------
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
    def settle(self, trade: SettledTrade, *, write_time: int | None = None) -> Settled:
        """Write one trade. Raises only if the settlement itself fails:
        settled_trades, or user_trades once it is the only table written (new_only, retired)."""
        ts = write_time if write_time is not None else now_micros()
        trade_id = trade.trade_id
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

    def _write_user_trades(self, trade: SettledTrade, ts: int, outcome: str) -> Settled:
        """The trade's two user_trades rows, or its reject, with the settlement's timestamp."""
        trade_id = trade.trade_id
        out = convert(trade, self._symbol_ids)
        if isinstance(out, Reject):
            self.session.execute(self.insert_reject, (trade_id, settled_token(trade_id), out.reason,
                                                      raw_values(trade), "writer", now()))
            self.stats.rejected += 1
            return Settled(trade_id, ts, True, "rejected")
        stmt = prepared(self.session, insert_user_trade_into(
            self.config.keyspace, self.opt.user_trades_table), consistency=self.config.write_cl)
        for future in [self.session.execute_async(stmt, (*row, ts)) for row in out]:
            future.result()
        self.stats.user_trade_rows += len(out)
        self.stats.last_trade_id = trade_id
        return Settled(trade_id, ts, True, outcome)
