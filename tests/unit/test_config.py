import pytest

from trade_migration.core.config import Config, identifier, replication
from trade_migration.core.errors import ConfigError
from trade_migration.statements.system import drop_table


@pytest.mark.parametrize("bad", ["", "Trading", "trading; DROP TABLE x", "1abc", "a-b", "a" * 49, None, 5,
                                 "trading.settled_trades", "system_auth\n"])
def test_identifiers_are_strict(bad):
    with pytest.raises(ConfigError):
        identifier(bad, what="keyspace")


def test_keyspace_is_validated_before_any_statement_is_built():
    with pytest.raises(ConfigError):
        Config(keyspace="trading WITH x")
    with pytest.raises(ConfigError):
        drop_table("trading", "settled_trades; DROP KEYSPACE trading")


def test_replication_maps():
    assert replication('{"class": "NetworkTopologyStrategy", "dc1": 3}') == {
        "class": "NetworkTopologyStrategy", "dc1": 3}
    for bad in ['{"class": "Evil"}', '{"class": "SimpleStrategy", "dc1": 3}', "{",
                '{"class": "SimpleStrategy", "replication_factor": "3}"}', '{"class": "SimpleStrategy"}']:
        with pytest.raises(ConfigError):
            replication(bad)


def test_from_env():
    c = Config.from_env({"TM_KEYSPACE": "other", "TM_CONTACT_POINTS": "10.0.0.1, 10.0.0.2",
                         "TM_READ_CONSISTENCY": "quorum",
                         "TM_REPLICATION": '{"class": "NetworkTopologyStrategy", "dc1": 3}'})
    assert (c.keyspace, c.contact_points, c.read_consistency) == ("other", ("10.0.0.1", "10.0.0.2"), "quorum")
    with pytest.raises(ConfigError):
        Config.from_env({"TM_WRITE_CONSISTENCY": "MOST"})
