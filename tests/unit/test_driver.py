"""The `cassandra` package imported must be scylla-driver's, not cassandra-driver's."""
import re
from pathlib import Path

import cassandra
from cassandra.cluster import Cluster

PIN = re.search(r"^scylla-driver==(\S+)$", (Path(__file__).parents[2] / "requirements.txt").read_text(), re.M).group(1)


def test_cassandra_package_is_scylla_driver_at_the_pinned_version():
    assert cassandra.__version__ == PIN


def test_cluster_accepts_shard_aware_options():
    from cassandra.cluster import ShardAwareOptions
    from cassandra.shard_info import ShardingInfo  # noqa: F401 - exists only in scylla-driver

    cluster = Cluster(["127.0.0.1"], shard_aware_options=ShardAwareOptions(disable=True))
    assert cluster.shard_aware_options.disable is True


def test_the_providers_cluster_is_built_without_the_drivers_legacy_warning(monkeypatch):
    """Every task log carried "Legacy execution parameters will be removed in 4.0" from the hook."""
    import warnings

    from airflow.providers.apache.cassandra.hooks.cassandra import CassandraHook

    from trade_migration.core.session import hook_cluster_quietly

    monkeypatch.setenv("AIRFLOW_CONN_TM_WARN", '{"conn_type": "cassandra", "host": "127.0.0.1", "port": 9042}')
    for quiet in (False, True):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            if quiet:
                with hook_cluster_quietly():
                    CassandraHook(cassandra_conn_id="tm_warn")
            else:
                CassandraHook(cassandra_conn_id="tm_warn")
        legacy = [w for w in seen if "Legacy execution parameters" in str(w.message)]
        assert len(legacy) == (0 if quiet else 1)
