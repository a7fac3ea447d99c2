"""Evidence that dual writes land: trades settled after the flag change, found in user_trades.

settled_trades has no time index, so trades are found by a bounded token-order scan from a
random token, skipping those settled before `since`; each one found must have both of its
user_trades rows, exactly as convert() makes them. The dual_write DAG's sensor repeats this until
enough recent trades are confirmed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cassandra.cluster import Session

from trade_migration.core.clock import naive_utc
from trade_migration.core.config import Config
from trade_migration.core.convert import Reject, convert
from trade_migration.core.model import SettledTrade
from trade_migration.core.prepared import prepared
from trade_migration.core.symbols import load_symbol_ids
from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN
from trade_migration.statements.settled_trades import decode_scanned_trade, scan_settled
from trade_migration.statements.user_trades import select_user_trade


@dataclass
class DualWriteCheck:
    scanned: int = 0
    found: int = 0                    # convertible trades settled at or after `since`
    confirmed: int = 0                # ... whose two user_trades rows are there and right
    rejects: int = 0                  # recent trades that cannot convert (not expected in user_trades)
    missing: list[int] = field(default_factory=list)   # recent trades whose rows are absent or differ

    def done(self, min_trades: int) -> bool:
        return self.confirmed >= min_trades and not self.missing

    def line(self) -> str:
        return (f"scanned {self.scanned} settled trades: {self.found} settled since the change,"
                f" {self.confirmed} confirmed in user_trades, {self.rejects} rejects,"
                f" missing {self.missing[:20]}")


def check(session: Session, config: Config, *, since: datetime, start_token: int, want: int = 10,
          scan_rows: int = 100_000) -> DualWriteCheck:
    """Scan from start_token (wrapping) until `want` recent convertible trades are checked or
    `scan_rows` rows read."""
    ks = config.keyspace
    scan = prepared(session, scan_settled(ks), consistency=config.read_cl, fetch_size=5000)
    select = prepared(session, select_user_trade(ks), consistency=config.read_cl)
    symbol_ids = load_symbol_ids(session, ks)
    since = naive_utc(since)
    out = DualWriteCheck()
    for lo, hi in ((start_token, MAX_TOKEN), (MIN_TOKEN, start_token)):
        for row in session.execute(scan, (lo, hi)):
            out.scanned += 1
            trade = decode_scanned_trade(row).trade
            if trade.settled_at is not None and trade.settled_at >= since:
                _check_trade(session, select, trade, symbol_ids, out)
            if out.found >= want or out.scanned >= scan_rows:
                return out
    return out


def _check_trade(session: Session, select, trade: SettledTrade, symbol_ids: dict, out: DualWriteCheck) -> None:
    rows = convert(trade, symbol_ids)
    if isinstance(rows, Reject):
        out.rejects += 1
        return
    out.found += 1
    for expected in rows:
        got = session.execute(select, expected.key).one()
        if got is None or tuple(got) != expected:
            out.missing.append(trade.trade_id)
            return
    out.confirmed += 1
