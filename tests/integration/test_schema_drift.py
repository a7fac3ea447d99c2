"""A user_trades that differs from the contract is caught with a readable diff, not written to."""
from __future__ import annotations

import pytest

from trade_migration.core.config import Config
from trade_migration.core.errors import SchemaDriftError
from trade_migration.create_table import schema
from trade_migration.create_table.schema import verify_user_trades
from trade_migration.statements.system import drop_table


def make_drifted(session, keyspace: str, *edits: tuple[str, str]) -> Config:
    """The keyspace with the contract's schema, except user_trades' DDL edited (old, new)."""
    config = Config(keyspace=keyspace)
    statements_ = schema.statements_from_files(config)
    session.execute(statements_[0])   # the keyspace
    session.execute(drop_table(keyspace, "user_trades"))
    for stmt in statements_[1:]:
        if stmt.startswith(f"CREATE TABLE IF NOT EXISTS {keyspace}.user_trades "):
            for old, new in edits:
                assert old in stmt
                stmt = stmt.replace(old, new)
        session.execute(stmt)
    session.cluster.refresh_schema_metadata()
    return config


def test_the_contract_table_verifies(db, cfg):
    live = verify_user_trades(db, cfg)
    assert live == schema.expected_user_trades()
    assert live.clustering == (("settled_at", "DESC"), ("trade_id", "DESC"), ("side", "ASC"))


def test_a_wrong_clustering_order_is_caught(cluster_session, cfg):
    bad = make_drifted(cluster_session, cfg.keyspace + "_order", ("settled_at DESC", "settled_at ASC"))
    with pytest.raises(SchemaDriftError) as err:
        verify_user_trades(cluster_session, bad)
    assert str(err.value) == (
        f"{bad.keyspace}.user_trades differs from the contract:\n"
        "  - clustering: expected (('settled_at', 'DESC'), ('trade_id', 'DESC'), ('side', 'ASC')),"
        " found (('settled_at', 'ASC'), ('trade_id', 'DESC'), ('side', 'ASC'))")
    # applying the schema again does not hide it: CREATE ... IF NOT EXISTS leaves the table as it is
    schema.apply(cluster_session, bad)
    with pytest.raises(SchemaDriftError, match="clustering: expected"):
        verify_user_trades(cluster_session, bad)


def test_wrong_types_and_keys_are_each_listed(cluster_session, cfg):
    bad = make_drifted(cluster_session, cfg.keyspace + "_types",
                       ("PRIMARY KEY ((user_id, symbol_id), settled_at",
                        "PRIMARY KEY ((user_id), symbol_id, settled_at"),
                       ("CLUSTERING ORDER BY (settled_at DESC", "CLUSTERING ORDER BY (symbol_id ASC, settled_at DESC"),
                       ("price                bigint", "price                int"))
    cluster_session.execute(f"ALTER TABLE {bad.keyspace}.user_trades DROP output_seq")
    cluster_session.execute(f"ALTER TABLE {bad.keyspace}.user_trades ADD note text")
    with pytest.raises(SchemaDriftError) as err:
        verify_user_trades(cluster_session, bad)
    lines = str(err.value).splitlines()[1:]
    assert lines == [
        "  - column price: expected bigint, found int",
        "  - column output_seq: expected bigint, missing",
        "  - column note: unexpected (text)",
        "  - partition key: expected ('user_id', 'symbol_id'), found ('user_id',)",
        "  - clustering: expected (('settled_at', 'DESC'), ('trade_id', 'DESC'), ('side', 'ASC')),"
        " found (('symbol_id', 'ASC'), ('settled_at', 'DESC'), ('trade_id', 'DESC'), ('side', 'ASC'))",
    ]


def test_a_missing_table_is_named(cluster_session, cfg):
    config = Config(keyspace=cfg.keyspace + "_none")
    cluster_session.execute(schema.statements_from_files(config)[0])   # the keyspace only
    with pytest.raises(SchemaDriftError, match=f"^{config.keyspace}.user_trades does not exist$"):
        verify_user_trades(cluster_session, config)
