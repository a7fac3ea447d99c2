"""Hostile Params, connections and credentials, through the DAGs (dag.test() against the real node).

- Every string Param of every DAG is either validated by the Param itself (pattern or enum: an
  injection is refused with ParamValidationError before a run exists) or free text that the code
  only ever binds as a value (a run with injections in all of them succeeds or fails cleanly, the
  schema is unchanged and the text is stored literally). A new string Param fails this test until
  it is put in one of the two groups.
- The cleanup, approved, with injections in every free-text Param, drops settled_trades of its own
  keyspace and nothing else.
- The keyspace from the connection's schema and the consistency from its extras are validated;
  a bad one fails the first try (no retries) without touching the database.
- Credentials come from the connection only and appear in no log; TLS options of the connection
  reach the driver.

Needs a migrated Airflow metadata DB (`bin/airflow db migrate`) and the settings of bin/airflow-env.
"""
from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest
from cleanup_state import prepare
from conftest import REPO, load_trades, mark_done
from db_snapshot import schema_of, snapshot
from hitl_answer import Answer

from trade_migration.core.errors import ConfigError
from trade_migration.state import phases

FREE_TEXT = {"actor", "reason", "override_reason", "acknowledge_rejects", "archive_url", "skip_archive_reason"}
REQUIRED = {"user_trades_dual_write": {"value": "off", "reason": "r"},
            "user_trades_read_path": {"value": "settled_trades", "reason": "r"},
            "user_trades_migration": {"reason": "r"},
            "user_trades_restore": {"archive_url": "/tmp/no-archive-here"}}
INJECTIONS = ["main; DROP TABLE user_trades", "main' OR '1'='1", "Main", "main\n", " main", "m" * 49, "1main",
              "main--", "ma-in", "mäin", "{{ params }}", "{{ 7*7 }}", "${keyspace}", "%s", "main\x00",
              "on; DROP KEYSPACE trading", "ON", "full'", "settled_trades; DROP TABLE settled_trades", ""]
PASSWORD = "Pw-9f3!kQ-zx81-never-logged"
COUNTS: dict[str, int] = {}


def count(what: str, n: int = 1) -> None:
    COUNTS[what] = COUNTS.get(what, 0) + n


def hostile(name: str, ks: str) -> str:
    """Free text an attacker would try: CQL, Jinja, shell and format syntax at once."""
    return f"{name}'); DROP TABLE {ks}.user_trades; -- {{{{ 7*7 }}}} ${{keyspace}} %s $(id) \" \\"


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import DagBag

    b = DagBag(dag_folder=str(REPO / "dags"))
    assert b.import_errors == {}
    return b


def fresh(dag_id: str):
    """A DAG parsed afresh (dag.test() keeps a run's conf in the DAG's params)."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags" / f"{dag_id}.py")).get_dag(dag_id)


def task_states(dr) -> dict[str, set]:
    from airflow.utils.session import create_session

    with create_session() as session:
        out: dict[str, set] = {}
        for ti in dr.get_task_instances(session=session):
            out.setdefault(ti.task_id, set()).add(str(ti.state))
        return out


def tries(dr, task_id: str) -> list[int]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return [ti.try_number for ti in dr.get_task_instances(session=session) if ti.task_id == task_id]


def string_params(dag) -> dict[str, dict]:
    out = {}
    for name in dag.params:
        schema = dag.params.get_param(name).schema
        types = schema.get("type")
        types = types if isinstance(types, list) else [types]
        if "string" in types or "array" in types:
            out[name] = schema
    return out


def validated(schema: dict) -> bool:
    return "pattern" in schema or "enum" in schema


def run_count() -> int:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(select(func.count()).select_from(DagRun))


# --- every string Param ------------------------------------------------------------------------------
def test_every_string_param_is_validated_or_known_free_text(bag):
    unknown = []
    for dag_id, dag in sorted(bag.dags.items()):
        for name, schema in string_params(dag).items():
            if validated(schema):
                continue
            if "array" in schema.get("type") and schema.get("items") == {"type": "string"} and name == "ranges":
                continue   # range labels: looked up in the ledger, never formatted (test below)
            if name in FREE_TEXT and "maxLength" in schema:
                continue
            unknown.append(f"{dag_id}.{name}: {schema}")
    assert unknown == []


def test_validated_params_refuse_every_injection(bag, airflow_conn, db):
    """Every injection is refused by the Param before a run exists, nothing written. The
    identifier patterns end in a lookahead, not '$': in Python's re (JSON-schema validation)
    '$' also matches before a final newline, which let 'main\\n' through to the first task."""
    from airflow.sdk.definitions.param import ParamValidationError

    mark_done(db, airflow_conn, phases.CREATE_TABLE, phases.DUAL_WRITE)   # so a backfill run would reach its ledger
    before, runs = snapshot(db, airflow_conn.keyspace), run_count()
    refused, accepted = 0, []
    for dag_id, dag in sorted(bag.dags.items()):
        for name, schema in string_params(dag).items():
            if not validated(schema):
                continue
            for bad in INJECTIONS:
                if bad in (schema.get("enum") or ()):
                    continue
                try:
                    fresh(dag_id).test(run_conf={**REQUIRED.get(dag_id, {}), name: bad})
                except ParamValidationError as exc:
                    assert name in str(exc)
                    refused += 1
                    continue
                accepted.append((dag_id, name, bad))
    count("validated Param injection", refused + len(accepted))
    assert accepted == []
    assert refused >= 5 * (len(INJECTIONS) - 2)   # backfill_id x2, dual_write/read_path value, verify mode
    print(f"\nvalidated Params: {refused} injections refused by the Param")
    assert run_count() == runs
    assert snapshot(db, airflow_conn.keyspace) == before


def assert_literal(db, cfg, *texts: str) -> None:
    """Each text is stored in the audit log exactly as given (bound, never rendered or executed)."""
    stored = {v for r in phases.State(db, cfg).audit_log(1000) for v in (r.actor, r.reason)}
    for text in texts:
        assert text in stored, text


FREE_RUNS = {   # dag_id: (setup, conf beyond the free text, the task states of a clean run)
    "user_trades_create_table": (lambda db, cfg: None, {}, None),
    "user_trades_dual_write": (lambda db, cfg: mark_done(db, cfg, phases.CREATE_TABLE), {"value": "off"}, None),
    "user_trades_read_path": (lambda db, cfg: mark_done(db, cfg, phases.CREATE_TABLE),
                              {"value": "settled_trades"}, None),
}


@pytest.mark.parametrize("dag_id", sorted(FREE_RUNS))
def test_free_text_params_are_stored_literally_and_change_no_schema(airflow_conn, db, dag_id):
    cfg = airflow_conn
    setup, conf, _ = FREE_RUNS[dag_id]
    setup(db, cfg)
    dag = fresh(dag_id)
    texts = {name: hostile(name, cfg.keyspace)[:int(s.get("maxLength", 128))]
             for name, s in string_params(dag).items() if name in FREE_TEXT}
    shape = schema_of(db, cfg.keyspace)
    dr = dag.test(run_conf={**conf, **texts})
    count("free-text Param injection", len(texts))
    assert str(dr.state) == "success", task_states(dr)
    assert schema_of(db, cfg.keyspace) == shape
    assert_literal(db, cfg, texts["actor"], texts["reason"])


def test_backfill_and_verify_with_hostile_text_and_hostile_range_labels(airflow_conn, db, tmp_path, monkeypatch, capfd):
    cfg = airflow_conn
    monkeypatch.setenv("TM_REPORT_DIR", str(tmp_path / "reports"))
    generated = load_trades(db, cfg, 300, seed=3)
    mark_done(db, cfg, phases.CREATE_TABLE, phases.DUAL_WRITE)
    shape = schema_of(db, cfg.keyspace)
    texts = {n: hostile(n, cfg.keyspace)[:128] for n in ("actor", "reason")}
    dr = fresh("user_trades_backfill").test(run_conf={"backfill_id": "hostile", "splits": 4, "parallelism": 2, **texts})
    assert str(dr.state) == "success", task_states(dr)
    assert db.execute(f"SELECT count(*) FROM {cfg.keyspace}.user_trades").one()[0] == generated.user_trade_rows

    # range labels are looked up in the ledger, never formatted into CQL: a hostile one fails the
    # planning task on its first try, and the ledger is as it was
    ledger_before = snapshot(db, cfg.keyspace, ("backfill_ranges", "user_trades", "rejected_trades"))
    bad_ranges = ["(1, 2]; DROP TABLE user_trades", "-1 OR 1=1", "{{ 7*7 }}", "' OR ''='"]
    capfd.readouterr()
    dr = fresh("user_trades_backfill").test(run_conf={"backfill_id": "hostile", "ranges": bad_ranges, **texts})
    count("range label injection", len(bad_ranges))
    assert str(dr.state) == "failed"
    assert task_states(dr)["plan_ranges"] == {"failed"} and tries(dr, "plan_ranges") == [1]   # no retry
    out = capfd.readouterr()
    assert "ConfigError: range '(1, 2]; DROP TABLE user_trades' is not in backfill 'hostile'" in out.out + out.err
    assert snapshot(db, cfg.keyspace, ("backfill_ranges", "user_trades", "rejected_trades")) == ledger_before

    dr = fresh("user_trades_verify").test(run_conf={"splits": 4, "parallelism": 2, "recheck_delay_s": 0.1, **texts})
    count("free-text Param injection", 4)
    assert str(dr.state) == "success", task_states(dr)
    assert schema_of(db, cfg.keyspace) == shape
    assert_literal(db, cfg, texts["actor"], texts["reason"])


def test_cleanup_drops_settled_trades_and_nothing_else_whatever_the_params(airflow_conn, db, tmp_path, monkeypatch,
                                                                           capfd, cluster_session):
    cfg = airflow_conn
    monkeypatch.setenv("TM_REPORT_DIR", str(tmp_path / "reports"))
    prepare(db, cfg, trades=400)
    texts = {n: hostile(n, cfg.keyspace) for n in ("override_reason", "acknowledge_rejects", "reason")}
    texts["actor"] = hostile("actor", cfg.keyspace)[:128]
    others = {k: v for k, v in snapshot(db, cfg.keyspace).items() if k not in ("settled_trades", "audit_log")}
    shape = schema_of(db, cfg.keyspace)

    # a relative or parent archive_url is refused before anything is read or written
    for bad in ("../../etc", "archive/../../..", "relative", "/tmp/../etc", "s3://b/../x", "s3://k:s@b/x"):
        dr = fresh("user_trades_cleanup").test(run_conf={**texts, "archive_url": bad}, mark_success_pattern="approve")
        count("archive_url injection")
        assert task_states(dr)["check_gates"] == {"failed"} and tries(dr, "check_gates") == [1]
    out = capfd.readouterr()
    assert ("ConfigError: archive_url must be an absolute path, file://, or one of s3://, gs://, gcs://, abfs://,"
            " az:// (got '../../etc')" in out.out + out.err)
    assert ("ConfigError: archive_url must be an absolute path below / without '..' (got '/tmp/../etc')"
            in out.out + out.err)
    assert schema_of(db, cfg.keyspace) == shape

    # approved, with injections in every free-text Param and an absolute archive_url full of syntax
    archive_dir = tmp_path / "arch'; DROP TABLE user_trades; -- $(id) {{ 7*7 }}"
    conf = {**texts, "archive_url": str(archive_dir), "skip_archive_reason": ""}
    try:
        with Answer("user_trades_cleanup", user_name=texts["actor"][:60]) as answer:
            dr = fresh("user_trades_cleanup").test(run_conf=conf)
        count("free-text Param injection", len(conf))
        assert answer.error is None and answer.answered_run == dr.run_id
        assert str(dr.state) == "success", task_states(dr)
        after_shape = schema_of(db, cfg.keyspace)
        assert {k for k in shape if k not in after_shape} == {k for k in shape if k[0] == "settled_trades"}
        assert after_shape == {k: v for k, v in shape.items() if k[0] != "settled_trades"}
        now = snapshot(db, cfg.keyspace)
        assert now["settled_trades"] is None
        for table, rows in others.items():
            if table not in ("migration_flags", "migration_phases"):   # the drop retires dual_write, records the phase
                assert now[table] == rows, table
        assert [p.name for p in archive_dir.iterdir()] != []           # the archive went where the Param said
        assert_literal(db, cfg, texts["acknowledge_rejects"])        # audited as given
    finally:
        from trade_migration.create_table import schema

        schema.apply(cluster_session, cfg)


def test_the_main_dag_passes_free_text_to_the_phases_unrendered(bag, airflow_conn):
    """The main DAG hands actor and reason to each phase as data (phase_confs' XCom), never as a
    template: a value that looks like a template reaches the phase run as the same text."""
    from airflow.sdk.definitions.xcom_arg import XComArg

    dag = bag.get_dag("user_trades_migration")
    text = "{{ 7*7 }} {% for x in range(3) %}x{% endfor %} ${keyspace}"
    params = {"actor": text, "reason": text, "splits": None, "parallelism": 4, "rows_per_second": 0}
    confs = dag.get_task("phase_confs").python_callable(params=params, dag_run=None)
    for conf in confs.values():
        assert conf["actor"] == text and conf["reason"] == text
    for task in dag.tasks:
        if task.task_id != "phase_confs":
            assert isinstance(task.conf, XComArg), task.task_id   # nothing for Jinja to render
    count("template injection")


# --- the connection -----------------------------------------------------------------------------------
def connection(**fields):
    from airflow.models.connection import Connection

    return Connection(conn_id="hostile", conn_type="cassandra", host="127.0.0.1", port=9042, **fields)


def test_the_connection_keyspace_and_extras_are_validated():
    from trade_migration.core.config import config_from_connection

    for bad in [b for b in INJECTIONS if b] + ["trading; DROP KEYSPACE trading", "Trading", "a.b"]:
        with pytest.raises(ConfigError, match=r"connection schema \(keyspace\) must match"):
            config_from_connection(connection(schema=bad))
        count("connection schema injection")
    for name in ("read_consistency", "write_consistency", "serial_consistency"):
        for bad in ("QUORUM; DROP KEYSPACE trading", "ALL'", "MOST"):
            with pytest.raises(ConfigError, match="unknown consistency level"):
                config_from_connection(connection(schema="trading", extra=json.dumps({name: bad})))
            count("connection extra injection")
    good = config_from_connection(connection(schema="t_prod", extra=json.dumps(
        {"read_consistency": "LOCAL_QUORUM", "write_consistency": "EACH_QUORUM", "serial_consistency": "SERIAL",
         "local_dc": "dc-east"})))
    assert (good.keyspace, good.read_consistency, good.write_consistency, good.serial_consistency, good.local_dc) == (
        "t_prod", "LOCAL_QUORUM", "EACH_QUORUM", "SERIAL", "dc-east")


@pytest.mark.parametrize("dag_id, conf, task_id", [
    ("user_trades_create_table", {}, "apply_schema"),
    ("user_trades_backfill", {}, "plan_ranges"),
])
def test_a_hostile_connection_schema_fails_the_first_try_and_touches_nothing(airflow_conn, db, monkeypatch, capfd,
                                                                               dag_id, conf, task_id):
    cfg = airflow_conn
    before = snapshot(db, cfg.keyspace)
    bad = f"{cfg.keyspace}; DROP KEYSPACE {cfg.keyspace}"
    monkeypatch.setenv("AIRFLOW_CONN_SCYLLA_DEFAULT", json.dumps(
        {"conn_type": "cassandra", "host": "127.0.0.1", "port": 9042, "schema": bad}))
    dr = fresh(dag_id).test(run_conf={"reason": "hostile connection", **conf})
    count("connection schema injection (DAG run)")
    assert str(dr.state) == "failed"
    assert task_states(dr)[task_id] == {"failed"} and tries(dr, task_id) == [1]
    out = capfd.readouterr()
    assert (f"ConfigError: connection schema (keyspace) must match [a-z][a-z0-9_]{{0,47}} (got '{bad}')"
            in out.out + out.err)
    assert snapshot(db, cfg.keyspace) == before


def test_a_missing_keyspace_in_the_connection_fails_the_first_try(airflow_conn, db, monkeypatch, capfd):
    """A valid but wrong keyspace: the backfill's first statement is refused by the node
    (InvalidRequest), which the retry policy fails at once."""
    monkeypatch.setenv("AIRFLOW_CONN_SCYLLA_DEFAULT", json.dumps(
        {"conn_type": "cassandra", "host": "127.0.0.1", "port": 9042, "schema": "t_hostile_params_nowhere"}))
    dr = fresh("user_trades_backfill").test(run_conf={"reason": "wrong keyspace"})
    count("wrong keyspace (DAG run)")
    assert str(dr.state) == "failed"
    assert task_states(dr)["plan_ranges"] == {"failed"} and tries(dr, "plan_ranges") == [1]
    out = capfd.readouterr()
    assert "InvalidRequest" in out.out + out.err and "t_hostile_params_nowhere" in out.out + out.err
    assert "t_hostile_params_nowhere" not in {r.keyspace_name for r in db.execute(
        "SELECT keyspace_name FROM system_schema.keyspaces")}


# --- credentials and TLS ----------------------------------------------------------------------------------
def test_credentials_from_the_connection_never_reach_the_logs(airflow_conn, db, monkeypatch, capfd, caplog):
    """The local node runs without authentication, so it never asks for the password the driver
    holds: the run works, and the password shows in no output, no log record (every logger at
    DEBUG, the driver's included) and no file of AIRFLOW_HOME. dag.test() runs the tasks in this
    process, so their logs are these records and this output (it writes no task log files; a real
    scheduler's task log files are grepped in tests/e2e/test_credentials_in_logs.py)."""
    import logging
    import os

    from airflow.providers.apache.cassandra.hooks.cassandra import CassandraHook

    cfg = airflow_conn
    monkeypatch.setenv("AIRFLOW_CONN_SCYLLA_DEFAULT", json.dumps(
        {"conn_type": "cassandra", "host": "127.0.0.1", "port": 9042, "schema": cfg.keyspace,
         "login": "migrator", "password": PASSWORD}))
    hook = CassandraHook("scylla_default")
    assert hook.cluster.auth_provider.password == PASSWORD     # the driver does hold it
    hook.shutdown_cluster()
    capfd.readouterr()
    caplog.set_level(logging.DEBUG)
    dr = fresh("user_trades_create_table").test(run_conf={"actor": "alice", "reason": "credentials test"})
    assert str(dr.state) == "success", task_states(dr)
    out = capfd.readouterr()
    printed = out.out + out.err + caplog.text
    assert f"schema statements to {cfg.keyspace}; schema agreement reached" in printed   # the task logs are here
    assert "[DAG TEST] end task task_id=record_phase" in printed
    assert PASSWORD not in printed
    assert not [r for r in caplog.records if PASSWORD in str(r.args) or PASSWORD in str(r.msg)]
    home = Path(os.environ["AIRFLOW_HOME"])
    leaked = [str(p) for p in home.rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()]
    assert leaked == []
    count("credential leak check")


def test_tls_options_of_the_connection_reach_the_driver(monkeypatch):
    """No TLS server here: the hook's Cluster carries the options, and a connection attempt with
    them to the plaintext local node fails in the TLS handshake (so TLS really was attempted)."""
    import certifi
    from airflow.providers.apache.cassandra.hooks.cassandra import CassandraHook
    from cassandra.cluster import NoHostAvailable
    from migration_common import cassandra

    ssl_options = {"ca_certs": certifi.where(), "cert_reqs": int(ssl.CERT_REQUIRED)}
    extras = {"ssl_options": ssl_options, "read_consistency": "LOCAL_QUORUM", "write_consistency": "LOCAL_QUORUM",
              "load_balancing_policy": "DCAwareRoundRobinPolicy",
              "load_balancing_policy_args": {"local_dc": "datacenter1"}}
    monkeypatch.setenv("AIRFLOW_CONN_TLS_TEST", json.dumps(
        {"conn_type": "cassandra", "host": "127.0.0.1", "port": 9042, "schema": "trading", "extra": extras}))
    hook = CassandraHook("tls_test")
    try:
        assert hook.cluster.ssl_options == ssl_options
        assert hook.cluster.load_balancing_policy.local_dc == "datacenter1"
    finally:
        hook.shutdown_cluster()
    with pytest.raises(NoHostAvailable) as failed, cassandra("tls_test"):
        pass
    errors = " ".join(repr(e) for e in failed.value.errors.values())
    assert "SSL" in errors or "ssl" in errors, errors
    count("TLS options check")


def test_zz_report_counts():
    print(f"\nhostile Params/connection inputs tried: {sum(COUNTS.values())} {COUNTS}")
