"""The backfill's Binder writes the bytes the driver's own bind() writes, on statements prepared
by the real node, and hands anything it does not encode to the driver (errors included)."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cassandra.query import UNSET_VALUE

from trade_migration.core.binding import Binder
from trade_migration.core.prepared import prepared
from trade_migration.statements.user_trades import insert_user_trade, insert_user_trade_ttl

ROW = (1002, 2, datetime(2026, 8, 29, 12, 42, 2, 99000), 10133921, "BUY", 334635, 74256, 24, 20267842, 2,
       False, datetime(2026, 8, 29, 12, 42, 2, 77000), 1266740, 1788007322099000)


def variants() -> list[tuple]:
    """The row with each value the encoders must get exactly right, or must leave to the driver."""
    edits = [
        {2: datetime(1969, 7, 20, 20, 17, 40, 123456)},          # before the epoch, sub-millisecond
        {2: datetime(1970, 1, 1), 11: datetime(9999, 12, 31, 23, 59, 59, 999999)},
        {0: -2**63, 3: 2**63 - 1, 1: -2**31, 13: 0},               # the types' bounds
        {4: "SELL", 10: True},
        {4: "ünïcødé ✓"},
        {2: datetime(2026, 8, 29, 14, 42, 2, 99000, tzinfo=UTC)},  # aware: the driver's way
        {8: None, 9: UNSET_VALUE},                                 # null and unset: the driver's way
        {10: 1},                                                   # an int for a boolean: the driver's way
        {5: True},                                                 # a bool for a bigint: the driver's way
    ]
    return [ROW] + [tuple(e.get(i, v) for i, v in enumerate(ROW)) for e in edits]


@pytest.mark.parametrize("insert", [insert_user_trade, insert_user_trade_ttl])
def test_binder_writes_the_drivers_bytes(cluster_session, cfg, insert):
    stmt = prepared(cluster_session, insert(cfg.keyspace))
    binder = Binder(stmt)
    for values in variants():
        values = values + ((30,) if insert is insert_user_trade_ttl else ())
        ours, theirs = binder.bind(values), stmt.bind(values)
        assert ours.values == theirs.values, values
        assert ours.routing_key == theirs.routing_key
        assert (ours.keyspace, ours.consistency_level, ours.prepared_statement) == \
            (theirs.keyspace, theirs.consistency_level, theirs.prepared_statement)


def test_binder_refuses_what_the_driver_refuses(cluster_session, cfg):
    stmt = prepared(cluster_session, insert_user_trade(cfg.keyspace))
    for bad in [(*ROW[:3], "not a bigint", *ROW[4:]), (*ROW[:4], 7, *ROW[5:]), (2**63, *ROW[1:])]:
        with pytest.raises(Exception) as ours:
            Binder(stmt).bind(bad)
        with pytest.raises(Exception) as theirs:
            stmt.bind(bad)
        assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value))
