"""schema/ applies twice without harm; the generator writes exactly what it promises."""
import re
from collections import Counter

from conftest import load_trades
from testkit import generator

from trade_migration.core import tokens
from trade_migration.core.config import STATE_TABLES
from trade_migration.core.convert import Reject, convert
from trade_migration.core.model import (
    SETTLED_COLUMNS,
    USER_TRADE_COLUMNS,
    USER_TRADE_KEY,
    USER_TRADE_PARTITION,
    SettledTrade,
)
from trade_migration.core.symbols import load_symbol_ids
from trade_migration.create_table import schema
from trade_migration.statements.settled_trades import count_settled_range


def _columns(cql_file: str, table: str) -> tuple[str, ...]:
    """Column names of one CREATE TABLE in schema/, in file order."""
    text = (schema.SCHEMA_DIR / cql_file).read_text()
    body = text[text.index(f"${{keyspace}}.{table} ("):]
    body = body[:body.index("PRIMARY KEY")]
    return tuple(re.findall(r"^\s+([a-z_]+)\s+[a-z]+", body, re.M))


def test_schema_files_are_the_contract_tables():
    """schema/ is the contract inside the product: the shapes the conversion is written for."""
    assert _columns("01_legacy.cql", "settled_trades") == SETTLED_COLUMNS
    assert _columns("02_user_trades.cql", "user_trades") == USER_TRADE_COLUMNS
    shape = schema.expected_user_trades()
    assert (shape.partition_key, shape.clustering) == (
        ("user_id", "symbol_id"), (("settled_at", "DESC"), ("trade_id", "DESC"), ("side", "ASC")))
    assert (shape.partition_key, (*shape.partition_key, *(c for c, _ in shape.clustering))) == (
        USER_TRADE_PARTITION, USER_TRADE_KEY)
    assert shape.columns == {
        "user_id": "bigint", "symbol_id": "int", "settled_at": "timestamp", "trade_id": "bigint",
        "side": "text", "price": "bigint", "quantity": "bigint", "fee": "bigint", "order_id": "bigint",
        "counterparty_user_id": "bigint", "is_taker": "boolean", "matched_at": "timestamp",
        "output_seq": "bigint"}


def test_schema_applies_twice_and_user_trades_is_verified(cluster_session, cfg):
    first = schema.apply(cluster_session, cfg)
    second = schema.apply(cluster_session, cfg)
    assert first == second == 15
    assert schema.verify_user_trades(cluster_session, cfg) == schema.expected_user_trades()
    tables = set(cluster_session.cluster.metadata.keyspaces[cfg.keyspace].tables)
    assert tables == {"symbols", "settled_trades", "user_trades", *STATE_TABLES}


def test_generator_counts_and_reject_mix_are_exact(db, cfg):
    n = 6000
    plan = load_trades(db, cfg, n, seed=11)
    count = db.prepare(count_settled_range(cfg.keyspace))
    total = sum(db.execute(count, r).one()[0] for r in tokens.split_ring([tokens.MIN_TOKEN], 8))
    assert total == n == plan.trades
    ids = load_symbol_ids(db, cfg.keyspace)
    assert len(ids) == len(generator.symbols())
    rows = db.execute(f"SELECT {', '.join(SETTLED_COLUMNS)} FROM {cfg.keyspace}.settled_trades")
    got = Counter(o.code for o in (convert(SettledTrade._make(r), ids) for r in rows) if isinstance(o, Reject))
    assert got == plan.rejects == generator.expected_rejects(n)
    assert sum(got.values()) == 24
