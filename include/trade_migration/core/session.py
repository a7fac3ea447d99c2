"""Connecting to the cluster outside Airflow (tests, benchmarks, the demo, the reference writer).

Inside Airflow the DAGs take their session from the provider's CassandraHook instead, so
credentials and TLS come only from the Airflow connection.
"""
from __future__ import annotations

from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

from trade_migration.core.config import Config
from trade_migration.statements.system import SCYLLA_PROBE


def connect(config: Config, *, request_timeout: float = 30.0) -> Session:
    policy = TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=config.local_dc))
    profile = ExecutionProfile(load_balancing_policy=policy, request_timeout=request_timeout,
                               consistency_level=config.read_cl,
                               serial_consistency_level=config.serial_cl)
    cluster = Cluster(list(config.contact_points), port=config.port, protocol_version=4,
                      execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    return cluster.connect()


def is_scylla(session: Session) -> bool:
    """ScyllaDB answers system.versions; Cassandra has no such table."""
    try:
        session.execute(SCYLLA_PROBE)
    except Exception:  # noqa: BLE001 - an InvalidRequest is the Cassandra answer
        return False
    return True
