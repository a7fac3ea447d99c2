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
    assert live.options.problems() == [] and live.options.gc_grace_seconds == 864000   # the node's default
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


def test_options_that_lose_history_are_each_listed(cluster_session, cfg):
    """A TTL expires history, a short gc_grace lets a missed delete come back, a time-window
    compaction drops old sstables: each is drift, whatever the columns say."""
    bad = make_drifted(cluster_session, cfg.keyspace + "_options",
                       ("side ASC)", "side ASC) AND default_time_to_live = 3600 AND gc_grace_seconds = 3600"
                                     " AND compaction = {'class': 'TimeWindowCompactionStrategy'}"))
    with pytest.raises(SchemaDriftError) as err:
        verify_user_trades(cluster_session, bad)
    assert str(err.value).splitlines() == [
        f"{bad.keyspace}.user_trades differs from the contract:",
        "  - default_time_to_live: expected 0 (history must not expire), found 3600",
        f"  - gc_grace_seconds: expected at least {schema.MIN_GC_GRACE_S} (tombstones must outlive repairs),"
        " found 3600",
        "  - compaction: expected a strategy that keeps old sstables (not time-window or date-tiered),"
        " found org.apache.cassandra.db.compaction.TimeWindowCompactionStrategy",
    ]
    # fixing them in place (ALTER) is what clears it; the columns were never the problem
    cluster_session.execute(f"ALTER TABLE {bad.keyspace}.user_trades WITH default_time_to_live = 0"
                            f" AND gc_grace_seconds = {schema.MIN_GC_GRACE_S}"
                            " AND compaction = {'class': 'LeveledCompactionStrategy'}")
    live = verify_user_trades(cluster_session, bad)
    assert live == schema.expected_user_trades()
    assert live.options == schema.TableOptions(0, 86400, "org.apache.cassandra.db.compaction.LeveledCompactionStrategy")


def test_a_gc_grace_just_under_the_floor_is_caught(cluster_session, cfg):
    bad = make_drifted(cluster_session, cfg.keyspace + "_grace",
                       ("side ASC)", f"side ASC) AND gc_grace_seconds = {schema.MIN_GC_GRACE_S - 1}"))
    with pytest.raises(SchemaDriftError) as err:
        verify_user_trades(cluster_session, bad)
    assert str(err.value).splitlines()[1:] == [
        "  - gc_grace_seconds: expected at least 86400 (tombstones must outlive repairs), found 86399"]
