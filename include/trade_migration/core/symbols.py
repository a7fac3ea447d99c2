"""trading.symbols, read once per task and cached: the symbol -> symbol_id map."""
from __future__ import annotations

from cassandra.cluster import Session

from trade_migration.statements.symbols import select_symbols


def load_symbol_ids(session: Session, keyspace: str) -> dict[str, int]:
    """Symbols without a symbol_id are left out, so their trades are rejected, not guessed."""
    rows = session.execute(select_symbols(keyspace))
    return {r.symbol: r.symbol_id for r in rows if r.symbol_id is not None}
