"""Connecting to the cluster: sessions outside Airflow (tests, benchmarks, the demo, the reference
writer), and for everyone the difference between a cluster that is down and one that refuses us.

Inside Airflow the DAGs take their Cluster from the provider's CassandraHook, so credentials and
TLS come only from the Airflow connection; `open_session` only connects it.
"""
from __future__ import annotations

import atexit
import socket
import ssl
import warnings
from contextlib import contextmanager

from cassandra import AuthenticationFailed
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

from trade_migration.core.config import Config
from trade_migration.core.errors import ConnectionRefused
from trade_migration.statements.system import SCYLLA_PROBE

try:   # the driver's default event loop where its C extension is built
    from cassandra.io import libevreactor
except ImportError:   # pragma: no cover - the driver then runs another event loop
    libevreactor = None

# OpenSSL's reason for a peer certificate that does not chain to a trusted CA (or names another host);
# the driver hands it on only as text inside an OSError.
UNTRUSTED = "CERTIFICATE_VERIFY_FAILED"
PROBE_TIMEOUT_S = 5.0


def let_event_loop_end() -> None:
    """Run at exit, before the driver's own clean-up. scylla-driver 3.29's libev loop stops the callback
    that disarms its repeating timer before it joins the loop's thread, so a process that used the
    driver waited up to 5 s at exit and then logged "Event loop thread could not be joined ... call
    Cluster.shutdown()", though it had. Marked shut down and woken, the loop disarms the timer itself
    and its thread ends. Only once every connection is closed: otherwise the driver's clean-up runs as
    it would have."""
    loop = getattr(libevreactor, "_global_loop", None)
    thread = getattr(loop, "_thread", None)
    open_conns = getattr(loop, "_live_conns", True) or getattr(loop, "_new_conns", True)  # absent: hands off
    if thread is None or not thread.is_alive() or open_conns:
        return
    loop._shutdown = True
    loop.notify()
    thread.join(1.0)


atexit.register(let_event_loop_end)   # after the driver's import: atexit runs it before the driver's


def connect(config: Config, *, request_timeout: float = 30.0) -> Session:
    policy = TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=config.local_dc))
    profile = ExecutionProfile(load_balancing_policy=policy, request_timeout=request_timeout,
                               consistency_level=config.read_cl,
                               serial_consistency_level=config.serial_cl)
    cluster = Cluster(list(config.contact_points), port=config.port, protocol_version=4,
                      execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    return open_session(cluster)


def open_session(cluster: Cluster) -> Session:
    """cluster.connect(); when every contact point refuses us for a reason a retry cannot change,
    ConnectionRefused (Permanent: the task fails at once) saying why, per host. A node that is
    down or slow stays NoHostAvailable, which is retried."""
    try:
        return cluster.connect()    # no keyspace: it may not exist before phase 1
    except NoHostAvailable as exc:
        reasons = {host: refusal(cluster, host, error) for host, error in (exc.errors or {}).items()}
        if reasons and all(reasons.values()):
            cluster.shutdown()
            raise ConnectionRefused("the cluster refused the connection (a retry cannot change this): "
                                    + "; ".join(f"{h}: {r}" for h, r in reasons.items())) from exc
        raise


def refusal(cluster: Cluster, host, error: BaseException) -> str | None:
    """Why `host` refused us for good, or None when the error may pass (down, overloaded, a timeout)."""
    if isinstance(error, AuthenticationFailed):
        return f"authentication failed: {error}"
    if isinstance(error, OSError) and UNTRUSTED in str(error):
        return f"the server's certificate is not trusted (TLS verification on): {error}"
    plaintext = getattr(cluster, "ssl_context", None) is None and getattr(cluster, "ssl_options", None) is None
    if plaintext and isinstance(error, ConnectionResetError) and speaks_tls(str(host)):
        return ("the node accepts TLS connections only and this client connects in plaintext: give the"
                " connection the cluster's TLS settings (README: Pointing it at a real cluster)")
    return None


def speaks_tls(host: str) -> bool:
    """Whether host:port ("ip:port") completes a TLS handshake (certificate not checked: only asked
    to tell a TLS-only node from one that closed the connection for another reason)."""
    address, _, port = host.rpartition(":")
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.check_hostname, probe.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection((address, int(port)), timeout=PROBE_TIMEOUT_S) as raw, \
                probe.wrap_socket(raw):
            return True
    except (OSError, ValueError):
        return False


def is_scylla(session: Session) -> bool:
    """ScyllaDB answers system.versions; Cassandra has no such table."""
    try:
        session.execute(SCYLLA_PROBE)
    except Exception:  # noqa: BLE001 - an InvalidRequest is the Cassandra answer
        return False
    return True


@contextmanager
def hook_cluster_quietly():
    """Around building the provider's CassandraHook: it makes its Cluster with the driver's legacy
    load-balancing argument, and the driver would warn of that in every task log."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Legacy execution parameters", category=DeprecationWarning)
        yield
