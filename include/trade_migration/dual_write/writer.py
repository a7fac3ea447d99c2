"""The reference settlement writer: settled_trades always, user_trades too while dual_write is on.

The Python counterpart of the settlement service's change (tests/support/testkit/traffic.py drives
it with generated live traffic). A settlement, a bust and a correction each write every row they
touch, in both tables, with one timestamp, so the backfill (which writes with the source row's own
write time) can never overwrite a dual-written row with older data. The flag is re-read at most
`flag_refresh_s` after the last read: a change reaches every settlement within that bound.
A failed user_trades write never fails the settlement: it is recorded in dual_write_retries and
the healer (dual_write/healer.py) finishes it; if even the record fails, it is logged and
counted, and a verification run with repair rewrites the rows.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

from cassandra import OperationTimedOut
from cassandra.cluster import Session

from trade_migration.core import metrics
from trade_migration.core.clock import now_micros
from trade_migration.core.config import TARGET_TABLE, Config, identifier
from trade_migration.core.model import SettledTrade
from trade_migration.core.prepared import prepared
from trade_migration.core.symbols import load_symbol_ids
from trade_migration.dual_write.changes import Change, TargetWrites, change
from trade_migration.dual_write.retries import BUST, CORRECT, WRITE, RetryLog, error_text
from trade_migration.state.flags import DUAL_WRITE, NEW_ONLY, RETIRED, Flags
from trade_migration.statements.settled_trades import delete_settled, insert_settled

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriterOptions:
    flag_refresh_s: float = 5.0        # bound on how stale the dual_write flag (and symbols) may be
    user_trades_table: str = TARGET_TABLE   # tests name a missing table to make dual writes fail
    user_trades_failure_share: float = 0.0  # tests and live traffic: this share of dual writes fails
    fault_seed: int = 0                # ... chosen by this seed (raised before anything is sent)

    def __post_init__(self) -> None:
        identifier(self.user_trades_table, what="user_trades_table")
        if self.flag_refresh_s < 0:
            raise ValueError("flag_refresh_s must not be negative")
        if not 0 <= self.user_trades_failure_share <= 1:
            raise ValueError("user_trades_failure_share must be between 0 and 1")


@dataclass
class WriterStats:
    settled: int = 0              # settled_trades rows written: the settlement itself
    busted: int = 0               # trades busted (deleted), in every table the mode writes
    corrected: int = 0            # trades corrected (rewritten)
    user_trade_rows: int = 0      # user_trades rows written by dual writes, busts and corrections
    user_trade_deletes: int = 0   # user_trades rows deleted by busts and corrections
    rejected: int = 0             # trades recorded in rejected_trades instead
    user_trades_failed: int = 0   # trades whose dual write failed (settled all the same)
    injected_failures: int = 0    # of those, failed on purpose (user_trades_failure_share)
    retries_recorded: int = 0     # failures recorded in dual_write_retries for the healer
    retry_record_failures: int = 0   # failures even that record missed (left to a verification repair)
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
        self.delete_settled = prepared(session, delete_settled(ks), consistency=cl)
        self.flags = Flags(session, config)
        self.stats = WriterStats()
        self._dual_write = "off"
        self._flag_read_at: float | None = None
        self._symbol_ids: dict[str, int] = {}
        self._faults = random.Random(options.fault_seed)

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

    # --- one trade ----------------------------------------------------------------------------
    def settle(self, trade: SettledTrade, *, write_time: int | None = None) -> Settled:
        """Write one trade. Raises only if the settlement itself fails:
        settled_trades, or user_trades once it is the only table written (new_only, retired)."""
        return self._write(None, trade, write_time)

    def bust(self, trade: SettledTrade, *, write_time: int | None = None) -> Settled:
        """Delete a settled trade (`trade` as it stands) and, while dual writes are on, its
        user_trades rows (or its reject), all at one timestamp. Raises as settle() does."""
        return self._write(trade, None, write_time)

    def correct(self, old: SettledTrade, new: SettledTrade, *, write_time: int | None = None) -> Settled:
        """Replace trade `old` (as it stands) by `new`, any column but trade_id changed, keys
        included, all at one timestamp: settled_trades rewritten; while dual writes are on, the
        user_trades keys of old that new has not are deleted and new's rows written, a value gone
        null cleared; a reject recorded or dropped as the trade became or stopped being one."""
        if old.trade_id != new.trade_id:
            raise ValueError(f"a correction keeps its trade_id ({old.trade_id} != {new.trade_id})")
        return self._write(old, new, write_time)

    def _write(self, old: SettledTrade | None, new: SettledTrade | None, write_time: int | None) -> Settled:
        ts = write_time if write_time is not None else now_micros()
        trade_id = (new or old).trade_id
        action = WRITE if old is None else BUST if new is None else CORRECT
        mode = self.mode()
        if mode in (NEW_ONLY, RETIRED):
            done = self._user_trades(change(old, new, ts, self._symbol_ids), "new_only")
            self._count(action, settled_trades=False)
            return done
        if new is None:
            self.session.execute(self.delete_settled, (ts, trade_id))
        else:
            self.session.execute(self.insert_settled, (*new, ts))
        self._count(action, settled_trades=True)
        self.stats.last_trade_id = trade_id
        if mode != "on":
            return Settled(trade_id, ts, False, "settled_only")
        planned = change(old, new, ts, self._symbol_ids)
        metrics.incr("dual_write.attempts")
        try:
            self._inject_fault()
            return self._user_trades(planned, "dual_written")
        except Exception as exc:  # noqa: BLE001 - the settlement stands; the healer finishes user_trades
            self.stats.user_trades_failed += 1
            metrics.incr("dual_write.failures")
            self.stats.last_error = error_text(exc)
            log.warning("trade %s settled, but its user_trades write failed: %s", trade_id, self.stats.last_error)
            self._record(planned, action, exc)
            return Settled(trade_id, ts, True, "dual_write_failed")

    def _count(self, action: str, *, settled_trades: bool) -> None:
        if action == BUST:
            self.stats.busted += 1
        elif action == CORRECT:
            self.stats.corrected += 1
        elif settled_trades:
            self.stats.settled += 1

    def _inject_fault(self) -> None:
        """Fail this dual write on purpose, for the seeded share of them (never by default)."""
        share = self.opt.user_trades_failure_share
        if share and self._faults.random() < share:
            self.stats.injected_failures += 1
            raise OperationTimedOut(errors="injected fault (user_trades_failure_share)")

    def _user_trades(self, c: Change, outcome: str) -> Settled:
        """The change's user_trades rows and deletes, or its reject, at the change's timestamp."""
        TargetWrites(self.session, self.config, self.opt.user_trades_table).send(c)
        self.stats.user_trade_rows += len(c.rows)
        self.stats.user_trade_deletes += len(c.deletes)
        self.stats.rejected += c.reject is not None
        self.stats.last_trade_id = c.trade_id
        return Settled(c.trade_id, c.at, True, "rejected" if c.reject is not None else outcome)

    def _record(self, c: Change, action: str, error: BaseException) -> None:
        """The failure, durably, for the healer; if even that fails, a log line and a count."""
        try:
            RetryLog(self.session, self.config).record(c.trade_id, c.at, action, (k for k, _ in c.deletes), error)
        except Exception as exc:  # noqa: BLE001 - the settlement stands all the same
            self.stats.retry_record_failures += 1
            metrics.incr("dual_write.retry_record_failures")
            log.error("trade %s: its failed user_trades write could not be recorded for the healer either (%s);"
                      " a verification run with repair will rewrite it", c.trade_id, error_text(exc))
        else:
            self.stats.retries_recorded += 1
