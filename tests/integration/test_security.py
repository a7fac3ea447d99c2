"""Least privilege, authentication and TLS on a real node: every phase as the role `migrator`.

The module starts its own Cassandra node on 127.0.0.5 (scripts/cassandra/cassandra.sh with
CASS_AUTH=on and CASS_TLS_DIR: PasswordAuthenticator, CassandraAuthorizer, client-to-node TLS only,
certificates made here by testkit.certs) beside the default node, and stops it at the end. The
superuser cassandra/cassandra plays the DBA (keyspace, legacy tables, grants) and the settlement
service; the DAGs run with dag.test() as `migrator` through the Airflow connection: login, password,
ssl_options with certificate verification on. The grants are schema/grants/migrator.cql, the file
the README quotes (test_the_readme_quotes_the_grants): nothing more is granted here.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cassandra import Unauthorized
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster, NoHostAvailable
from conftest import REPO
from db_snapshot import snapshot
from hitl_answer import Answer
from testkit import generator
from testkit.certs import TlsFiles, make_tls_dir
from testkit.traffic import live_traffic

from trade_migration.archive import store
from trade_migration.core.config import LEGACY_TABLE, Config
from trade_migration.core.errors import ConnectionRefused
from trade_migration.core.session import open_session
from trade_migration.create_table import schema
from trade_migration.state import phases

NODE, IP = 5, "127.0.0.5"
LAUNCHER = REPO / "scripts" / "cassandra" / "cassandra.sh"
BASE = REPO / ".local" / "secure"
GRANTS = REPO / "schema" / "grants" / "migrator.cql"
KEYSTORE_PASSWORD = "Ks-" + secrets.token_urlsafe(12)     # distinctive: searched for in every output
MIGRATOR_PASSWORD = "Mg-" + secrets.token_urlsafe(12)
PLACEHOLDER = "'<from your secrets backend>'"
KS = "t_security"


# --- the grants file ------------------------------------------------------------------------------
def grant_blocks(keyspace: str = "trading") -> dict[str, list[str]]:
    """{block name: its statements}, blocks as the file's `-- == name: ... ==` lines open them."""
    blocks: dict[str, list[str]] = {}
    current = None
    for line in GRANTS.read_text().splitlines():
        head = re.match(r"^-- == (\w+): .* ==$", line)
        if head:
            current = blocks.setdefault(head[1], [])
        elif line.strip() and not line.startswith("--"):
            stmt = re.sub(r"\btrading\b", keyspace, line.strip().rstrip(";"))
            current.append(stmt.replace(PLACEHOLDER, f"'{MIGRATOR_PASSWORD}'"))
    return blocks


def expected_permissions(statements: list[str]) -> set[tuple[str, str]]:
    """(permission, resource) the GRANT and REVOKE statements leave, as LIST PERMISSIONS names them."""
    held: set[tuple[str, str]] = set()
    for stmt in statements:
        m = re.match(r"(GRANT|REVOKE) (ALL PERMISSIONS|\w+) ON (KEYSPACE|TABLE) (\S+) (?:TO|FROM) migrator$", stmt)
        if not m:
            continue
        resource = f"<{m[3].lower()} {m[4]}>"
        if m[1] == "GRANT":
            held.add((m[2], resource))
        elif m[2] == "ALL PERMISSIONS":
            held = {p for p in held if p[1] != resource}
        else:
            held.discard((m[2], resource))
    return held


def permissions(admin) -> set[tuple[str, str]]:
    return {(r.permission, r.resource) for r in admin.execute("LIST ALL PERMISSIONS OF migrator NORECURSIVE")}


# --- the node -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SecureNode:
    tls: TlsFiles
    env: dict[str, str]

    def launcher(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(LAUNCHER), *args], env={**self.env, **env}, capture_output=True, text=True,
                              timeout=300)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    tls = make_tls_dir(tmp_path_factory.mktemp("tls"), IP, KEYSTORE_PASSWORD)
    env = {**os.environ, "CASS_BASE": str(BASE), "CASS_FIRST_NODE": str(NODE), "CASS_NODES": "1",
           "CASS_HEAP": "512M", "CASS_AUTH": "on", "CASS_TLS_DIR": str(tls.folder),
           "CASS_TLS_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD}
    secure = SecureNode(tls, env)
    secure.launcher("wipe")
    started = secure.launcher("up")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield secure
    finally:
        secure.launcher("down")


def tls_context(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))     # chain and the IP SAN checked


@pytest.fixture(scope="module")
def admin(node):
    """The superuser: the DBA's and the settlement service's session."""
    cluster = Cluster([IP], ssl_context=tls_context(node.tls.ca), protocol_version=4,
                      auth_provider=PlainTextAuthProvider("cassandra", "cassandra"))
    session = cluster.connect()
    yield session
    cluster.shutdown()


def connection(node, keyspace: str, *, password: str = MIGRATOR_PASSWORD, ca: Path | None = None,
               tls: bool = True) -> str:
    conn = {"conn_type": "cassandra", "host": IP, "port": 9042, "schema": keyspace,
            "login": "migrator", "password": password, "extra": {}}
    if tls:
        conn["extra"]["ssl_options"] = {"ca_certs": str(ca or node.tls.ca), "cert_reqs": ssl.CERT_REQUIRED}
    return json.dumps(conn)


def legacy_keyspace(admin, keyspace: str, trades: int, seed: int) -> Config:
    """What production has before the migration, made by the DBA: the keyspace, symbols and
    settled_trades (with its indexes), and history in it."""
    config = Config(keyspace=keyspace)
    admin.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
    for stmt in schema.statements_from_files(config):
        if re.search(r"KEYSPACE|\.(symbols|settled_trades)\b", stmt):
            admin.execute(stmt, timeout=120)
    generator.write_symbols(admin, keyspace)
    generator.write_trades(admin, keyspace, trades, seed)
    return config


def grant(admin, *blocks: str, keyspace: str, without: str | None = None) -> list[str]:
    """Run the named blocks of the grants file (all but `without`); the statements run."""
    done = []
    for name in blocks:
        for stmt in grant_blocks(keyspace)[name]:
            if stmt != without:
                admin.execute(stmt)
                done.append(stmt)
    return done


def reset_role(admin) -> None:
    admin.execute("DROP ROLE IF EXISTS migrator")


# --- running DAGs ---------------------------------------------------------------------------------
def run_dag(dag_id: str, conf: dict):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / f"{dag_id}.py"))   # afresh: dag.test() keeps a run's conf
    assert bag.import_errors == {}
    return bag.get_dag(dag_id).test(run_conf=conf)


def tries(dr) -> dict[str, tuple[str, int]]:
    """{task_id (map index appended): (state, try_number)}."""
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): (str(ti.state), ti.try_number)
                for ti in dr.get_task_instances(session=session)}


def who(reason: str, **conf) -> dict:
    return {"actor": "alice", "reason": reason, **conf}


def settled(admin, keyspace: str) -> list:
    return snapshot(admin, keyspace, tables=(LEGACY_TABLE,))[LEGACY_TABLE]


def assert_success(dr) -> None:
    states = tries(dr)
    assert str(dr.state) == "success", states
    assert all(t == 1 for _, t in states.values() if t), states     # no task needed a retry


# --- every phase with exactly the documented grants, and without each of them -------------------
def stmt_for(perm: str, resource: str) -> str:
    return f"GRANT {perm} ON {resource} TO migrator"


SAMPLE = {"sample_users": 20, "page_size": 20, "seed": 3}
CLEANUP = {"min_days": 0, "override_reason": "security test", "parity_runs": 1,
           "acknowledge_rejects": "generated rejects"}
# The phases in the order an operator runs them: (DAG, conf, the grants this phase is the first to
# need, as (permission, resource) with `ks` for the keyspace). Without one of those, the phase fails at
# once; with all of them it passes. Every GRANT of the grants file is here exactly once.
STEPS = [
    ("user_trades_create_table", {}, [("CREATE", "KEYSPACE ks")]),
    ("user_trades_dual_write", {"value": "on", "refresh_bound_s": 1, "min_trades": 5},
     [("SELECT", "TABLE ks.migration_phases"), ("MODIFY", "TABLE ks.migration_flags"),
      ("SELECT", "TABLE ks.migration_flags"), ("MODIFY", "TABLE ks.audit_log"),
      ("SELECT", "TABLE ks.settled_trades"), ("SELECT", "TABLE ks.symbols"), ("SELECT", "TABLE ks.user_trades"),
      ("MODIFY", "TABLE ks.migration_phases")]),
    ("user_trades_backfill", {"parallelism": 2},
     [("MODIFY", "TABLE ks.user_trades"), ("SELECT", "TABLE ks.backfill_ranges"),
      ("MODIFY", "TABLE ks.backfill_ranges"), ("MODIFY", "TABLE ks.rejected_trades")]),
    ("user_trades_verify", {"mode": "full", "repair": True, "parallelism": 2},
     [("SELECT", "TABLE ks.dual_write_retries"), ("MODIFY", "TABLE ks.dual_write_retries"),
      ("MODIFY", "TABLE ks.parity_runs")]),
    ("user_trades_read_path", {"value": "shadow", **SAMPLE}, []),
    ("user_trades_read_path", {"value": "user_trades", **SAMPLE}, []),
    ("user_trades_dual_write", {"value": "new_only"}, []),
    ("user_trades_cleanup", CLEANUP, [("SELECT", "TABLE ks.audit_log"), ("SELECT", "TABLE ks.parity_runs"),
                                      ("SELECT", "TABLE ks.rejected_trades"), ("DROP", "TABLE ks.settled_trades")]),
    # the drop undone: the cleanup's archive restored as settled_trades (archive_url filled in by the walk)
    ("user_trades_restore", {"into": "ks.settled_trades"},
     [("SELECT", "TABLE ks.restore_ranges"), ("MODIFY", "TABLE ks.restore_ranges"), ("CREATE", "KEYSPACE ks")]),
]
# DAGs whose record_unfinished teardown records a failed run's phase as failed. The others leave it
# as the failing task found it (dual_write: `running` once the flag changed).
TEARDOWN = {"user_trades_backfill", "user_trades_verify", "user_trades_cleanup"}
PHASE_OF = {"user_trades_create_table": phases.CREATE_TABLE, "user_trades_dual_write": phases.DUAL_WRITE,
            "user_trades_backfill": phases.BACKFILL, "user_trades_verify": phases.VERIFY,
            "user_trades_read_path": phases.READ_PATH, "user_trades_cleanup": phases.CLEANUP,
            "user_trades_restore": phases.CLEANUP}     # a restore leaves the phases as they are


def needed(keyspace: str) -> list[str]:
    return [stmt_for(p, r.replace("ks", keyspace, 1)) for _, _, needs in STEPS for p, r in needs]


def test_every_grant_of_the_file_is_proven_needed_by_one_phase():
    blocks = grant_blocks(KS)
    grants = [s for name in ("create_table", "migration", "cleanup", "restore") for s in blocks[name]
              if s.startswith("GRANT")]
    assert sorted(needed(KS)) == sorted(grants)
    assert not any(" MODIFY ON TABLE t_security.settled_trades" in s for s in grants)
    assert [s for s in grants if s.startswith("GRANT DROP")] == [f"GRANT DROP ON TABLE {KS}.settled_trades TO migrator"]
    assert blocks["cleanup"] == [f"GRANT DROP ON TABLE {KS}.settled_trades TO migrator"]   # DROP only for the cleanup


def run_step(dag_id: str, conf: dict):
    if dag_id != "user_trades_cleanup":
        return run_dag(dag_id, who(f"security test: {dag_id}", **conf))
    with Answer(dag_id) as answer:
        dr = run_dag(dag_id, who("security test: cleanup", **conf))
    assert answer.error is None
    return dr


def phase_status(admin, cfg: Config, name: str) -> str | None:
    if "migration_phases" not in admin.cluster.metadata.keyspaces[cfg.keyspace].tables:
        return None                                                 # before phase 1
    record = phases.State(admin, cfg).phase(name)
    return record.status if record else None


def refused_without(admin, cfg: Config, stmt: str, dag_id: str, conf: dict, capfd, *, settling: bool) -> str:
    """Run the phase with `stmt` revoked: it fails at once naming the permission and the resource,
    leaves no phase running or newly completed, and (unless the settlement service is `settling`)
    settled_trades as it was."""
    perm, resource = re.match(r"GRANT (\w+) ON (\w+ \S+) TO", stmt).groups()
    kind, name = resource.split()
    was = phase_status(admin, cfg, PHASE_OF[dag_id])
    before = snapshot(admin, cfg.keyspace)
    admin.execute(stmt.replace("GRANT", "REVOKE", 1).replace(" TO migrator", " FROM migrator"))
    capfd.readouterr()
    try:
        dr = run_step(dag_id, conf)
    finally:
        admin.execute(stmt)
    out = capfd.readouterr()
    states = tries(dr)
    assert str(dr.state) == "failed", (stmt, states)
    failed = [t for t, (s, _) in states.items() if s == "failed"]
    assert failed and all(states[t][1] == 1 for t in failed), (stmt, states)     # the first try, no retry
    assert "up_for_retry" not in {s for s, _ in states.values()}
    named = f"<table {name}>" if kind == "TABLE" else f"<all tables in {name}>"    # CREATE: tables in the keyspace
    message = f"User migrator has no {perm} permission on {named} or any of its parents"
    assert message in out.out + out.err, stmt
    after = snapshot(admin, cfg.keyspace)
    assert settling or after[LEGACY_TABLE] == before[LEGACY_TABLE]
    now = phase_status(admin, cfg, PHASE_OF[dag_id])
    assert now == was or now in {phases.FAILED, phases.RUNNING}, (stmt, was, now)     # never completed
    if dag_id in TEARDOWN:
        assert now == was or now == phases.FAILED, (stmt, was, now)  # and not left running
    return f"{dag_id} {failed}: {message}"


def test_each_phase_passes_with_its_grants_and_fails_at_once_without_each(node, admin, monkeypatch, tmp_path, capfd):
    reset_role(admin)
    cfg = legacy_keyspace(admin, KS, 1000, seed=21)
    monkeypatch.setenv("AIRFLOW_CONN_SCYLLA_DEFAULT", connection(node, KS))
    monkeypatch.setenv("TM_REPORT_DIR", str(tmp_path / "reports"))
    granted = grant(admin, "create_table", keyspace=KS)
    assert permissions(admin) == expected_permissions(granted) == {("CREATE", f"<keyspace {KS}>")}
    proven: list[str] = []
    # the settlement service (the superuser): both tables while dual_write is on, some user_trades writes failing
    writer = live_traffic(admin, cfg, flag_refresh_s=0.5, trades_per_second=40, dual_write_failure_share=0.2)
    try:
        walk_the_phases(admin, cfg, writer, granted, proven, capfd)
    finally:
        writer.stop()
    print("\n" + "\n".join(proven))
    assert len(proven) == len(needed(KS))
    state = phases.State(admin, cfg)
    assert {p: state.phase(p).status for p in PHASE_OF.values()} == dict.fromkeys(PHASE_OF.values(), phases.COMPLETED)
    restore = [(r.action, r.actor) for r in state.audit_log() if r.phase == "restore"]
    assert sorted(restore) == [("restore started", "alice"), ("restored", "alice")]   # the refused tries wrote none
    # dropping the table took every permission on it; on the restored table the migrator holds what
    # Cassandra gives a table's creator
    held = permissions(admin)
    others = {p for p in held if LEGACY_TABLE not in p[1]}
    assert others == {p for p in expected_permissions(granted) if LEGACY_TABLE not in p[1]}
    assert {"SELECT", "MODIFY", "DROP"} <= {p for p, r in held if r == f"<table {KS}.{LEGACY_TABLE}>"}


def walk_the_phases(admin, cfg: Config, writer, granted: list[str], proven: list[str], capfd) -> None:
    legacy = archived = None
    for dag_id, conf, needs in STEPS:
        if dag_id == "user_trades_dual_write" and conf["value"] == "on":
            granted += grant(admin, "migration", keyspace=KS)    # after phase 1, as the file says
            held = permissions(admin)
            assert held == expected_permissions(granted)          # the creator's rights on its tables taken back
            assert {p for p, r in held if r == f"<table {KS}.{LEGACY_TABLE}>"} == {"SELECT"}
            writer.start()
        if dag_id == "user_trades_cleanup":
            granted += grant(admin, "cleanup", keyspace=KS)
            assert permissions(admin) == expected_permissions(granted)
        if dag_id == "user_trades_restore":
            granted += grant(admin, "restore", keyspace=KS)
            conf = {**conf, "into": f"{KS}.{LEGACY_TABLE}", "archive_url": archived}
        for perm, resource in needs:
            stmt = stmt_for(perm, resource.replace("ks", KS, 1))
            proven.append(refused_without(admin, cfg, stmt, dag_id, conf, capfd, settling=legacy is None))
        dr = run_step(dag_id, conf)
        assert str(dr.state) == "success", (dag_id, tries(dr))
        assert all(t <= 1 for _, t in tries(dr).values()), tries(dr)
        if dag_id == "user_trades_cleanup":
            archived = store.run_url(store.archive_url(None), dr.run_id)   # the folder the restore reads back
        if dag_id == "user_trades_dual_write" and conf["value"] == "on":
            writer.stop()
            legacy = settled(admin, KS)          # from here on only the migrator runs
        elif legacy is not None and dag_id != "user_trades_cleanup":
            assert settled(admin, KS) == legacy      # after the restore too: every row and write time back


# --- refusals a retry cannot change ---------------------------------------------------------------
@pytest.mark.parametrize("case, why", [
    ("wrong password", "127.0.0.5:9042: authentication failed: Failed to authenticate to 127.0.0.5:9042"),
    ("untrusted certificate", "127.0.0.5:9042: the server's certificate is not trusted (TLS verification on)"),
    ("plaintext client", "127.0.0.5:9042: the node accepts TLS connections only and this client connects in"
                         " plaintext"),
])
def test_a_refused_connection_fails_the_task_at_once(node, admin, monkeypatch, capfd, case, why):
    wrong = "Wrong-" + secrets.token_urlsafe(8)
    conn = {"wrong password": lambda: connection(node, KS, password=wrong),
            "untrusted certificate": lambda: connection(node, KS, ca=node.tls.other_ca),
            "plaintext client": lambda: connection(node, KS, tls=False)}[case]()
    monkeypatch.setenv("AIRFLOW_CONN_SCYLLA_DEFAULT", conn)
    capfd.readouterr()
    dr = run_dag("user_trades_create_table", who(f"security test: {case}"))
    out = capfd.readouterr()
    assert str(dr.state) == "failed"
    assert tries(dr) == {"apply_schema": ("failed", 1), "verify_table": ("upstream_failed", 0),
                         "record_phase": ("upstream_failed", 0)}
    text = out.out + out.err
    assert "ConnectionRefused: the cluster refused the connection (a retry cannot change this): " + why in text
    assert wrong not in text and MIGRATOR_PASSWORD not in text


def test_a_node_that_is_down_is_still_retried(node):
    """Only refusals are permanent: nothing listening (a node down) stays NoHostAvailable."""
    cluster = Cluster(["127.0.0.7"], protocol_version=4, connect_timeout=2)
    with pytest.raises(NoHostAvailable) as err:
        open_session(cluster)
    assert not isinstance(err.value, ConnectionRefused)


def test_the_migrator_cannot_write_or_drop_settled_trades(node, admin):
    """The role as the grants file leaves it during the migration: reads settled_trades, never
    changes or drops it, nor any other table (the file grants DROP only for the cleanup)."""
    keyspace = KS + "_ro"
    cfg = legacy_keyspace(admin, keyspace, 10, seed=4)
    schema.apply(admin, cfg)                       # the DBA made every table: nothing owned by the role
    reset_role(admin)
    grant(admin, "create_table", "migration", keyspace=keyspace)
    cluster = Cluster([IP], ssl_context=tls_context(node.tls.ca), protocol_version=4,
                      auth_provider=PlainTextAuthProvider("migrator", MIGRATOR_PASSWORD))
    session = open_session(cluster)
    try:
        before = settled(admin, keyspace)
        assert session.execute(f"SELECT count(*) FROM {keyspace}.settled_trades").one()[0] == 10
        for stmt in (f"INSERT INTO {keyspace}.settled_trades (trade_id, symbol) VALUES (1, 'X')",
                     f"DELETE FROM {keyspace}.settled_trades WHERE trade_id = 1",
                     f"TRUNCATE {keyspace}.settled_trades"):
            with pytest.raises(Unauthorized, match=f"has no MODIFY permission on <table {keyspace}.settled_trades>"):
                session.execute(stmt)
        for table in ("settled_trades", "symbols", "user_trades", "migration_phases", "audit_log"):
            with pytest.raises(Unauthorized, match=f"has no (DROP|ALTER) permission on <table {keyspace}.{table}>"):
                session.execute(f"DROP TABLE {keyspace}.{table}")
        with pytest.raises(Unauthorized, match=f"has no DROP permission on <keyspace {keyspace}>"):
            session.execute(f"DROP KEYSPACE {keyspace}")
        assert settled(admin, keyspace) == before
    finally:
        cluster.shutdown()
        admin.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")


# --- the launcher ---------------------------------------------------------------------------------
def test_the_launcher_names_a_missing_keystore_and_a_wrong_password(node, tmp_path):
    other = {"CASS_BASE": str(tmp_path / "bad-node"), "CASS_FIRST_NODE": "6"}
    missing = node.launcher("up", **other, CASS_TLS_DIR=str(tmp_path))
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        f"cassandra.sh: keystore {tmp_path}/node.p12 is missing, empty or unreadable (CASS_TLS_DIR must hold"
        " node.p12: PKCS#12, the node's key and certificate chain)")
    wrong = node.launcher("up", **other, CASS_TLS_KEYSTORE_PASSWORD="not-" + KEYSTORE_PASSWORD[3:])
    try:
        assert wrong.returncode == 1
        assert "keystore password was incorrect" in wrong.stderr
        assert "cassandra.sh: node6 exited during start-up" in wrong.stderr
        assert KEYSTORE_PASSWORD[3:] not in wrong.stdout + wrong.stderr
    finally:
        node.launcher("down", **other)


# --- no secret anywhere ---------------------------------------------------------------------------
def test_the_readme_quotes_the_grants():
    readme = (REPO / "README.md").read_text()
    assert f"```sql\n{GRANTS.read_text()}```" in readme


def test_zz_no_password_in_the_node_logs_or_airflow_home(node):
    """After every test above: neither the keystore password nor the migrator's is in the node's
    logs (Cassandra elides client_encryption_options when it logs its configuration) or in any
    file of AIRFLOW_HOME (task logs, the metadata DB with XComs and rendered fields)."""
    places = [BASE / f"node{NODE}" / "logs", Path(os.environ["AIRFLOW_HOME"])]
    leaked = [str(p) for place in places for p in place.rglob("*") if p.is_file() and any(
        secret.encode() in p.read_bytes() for secret in (KEYSTORE_PASSWORD, MIGRATOR_PASSWORD))]
    assert leaked == []
    assert "client_encryption_options" in (BASE / f"node{NODE}" / "cassandra.yaml").read_text()
