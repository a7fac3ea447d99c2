"""The cleanup and restore DAGs with the archive in an S3-compatible store (moto's server, started
here), its credentials in an Airflow connection: an approved cleanup archives, verifies and drops;
the restore DAG writes the archive back under the table's own name, every value and write time as
before; a corrupt object stops the drop in verify_archive.
"""
from __future__ import annotations

import json
import uuid

import boto3
import pytest
from cleanup_state import prepare
from conftest import REPO
from hitl_answer import Answer
from moto.server import ThreadedMotoServer
from testkit.statements import cells_with_times

from trade_migration.archive import layout, store
from trade_migration.cleanup import drop
from trade_migration.core.config import LEGACY_TABLE
from trade_migration.create_table import schema
from trade_migration.state import phases

SECRET = "archive-secret-never-logged-7f2"
ACK = {"acknowledge_rejects": "the generated rejects stay in the archive"}


def fresh(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags" / f"{dag_id}.py")).get_dag(dag_id)


def states(dr) -> dict[str, str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: str(ti.state) for ti in dr.get_task_instances(session=session)}


@pytest.fixture(scope="module")
def endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(endpoint, monkeypatch) -> str:
    """A fresh bucket, and the Airflow connection archive_s3 holding the store's credentials."""
    name = f"cleanup-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key=SECRET).create_bucket(Bucket=name)
    monkeypatch.setenv("AIRFLOW_CONN_ARCHIVE_S3", json.dumps({
        "conn_type": "aws", "login": "testing", "password": SECRET,
        "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}))
    return name


def cells(db, keyspace: str, table: str) -> dict:
    """trade_id -> every column's value and write time (TTL columns left out: none here)."""
    return {row[0]: tuple(v for k, v in enumerate(row[1:]) if k % 3 != 2)
            for row in db.execute(cells_with_times(keyspace, table))}


def test_cleanup_archives_to_s3_verifies_drops_and_the_restore_dag_brings_the_table_back(
        airflow_conn, db, bucket, endpoint, cluster_session, capfd):
    cfg = airflow_conn
    prepare(db, cfg, trades=500)
    before = cells(db, cfg.keyspace, LEGACY_TABLE)
    conf = {**ACK, "archive_url": f"s3://{bucket}/cleanup", "archive_conn_id": "archive_s3",
            "verify_sample_share": 1}
    try:
        dag = fresh("user_trades_cleanup")      # imported before the answering thread starts: no import deadlock
        with Answer("user_trades_cleanup") as answer:
            dr = dag.test(run_conf=conf)
        assert answer.error is None and str(dr.state) == "success", states(dr)
        assert not drop.table_exists(db, cfg.keyspace, LEGACY_TABLE)
        url = store.run_url(f"s3://{bucket}/cleanup", dr.run_id)
        options = {"key": "testing", "secret": SECRET, "client_kwargs": {"endpoint_url": endpoint}}
        manifest = layout.read_manifest(store.open_store(url, options))
        assert (manifest["rows"], manifest["counted"]) == (500, 500)
        [verified] = [r for r in phases.State(db, cfg).audit_log() if r.action == drop.ARCHIVE_VERIFIED]
        assert json.loads(verified.details)["compared_rows"] == 500

        restored = fresh("user_trades_restore").test(run_conf={
            "archive_url": url, "into": f"{cfg.keyspace}.{LEGACY_TABLE}", "archive_conn_id": "archive_s3"})
        assert str(restored.state) == "success", states(restored)
        assert cells(db, cfg.keyspace, LEGACY_TABLE) == before          # every value, every write time
        out = capfd.readouterr()
        assert SECRET not in out.out + out.err
    finally:
        schema.apply(cluster_session, cfg)


def test_a_corrupt_object_fails_verify_archive_and_nothing_is_dropped(airflow_conn, db, bucket, endpoint, capfd,
                                                                       monkeypatch):
    """One object is damaged right after archive_table wrote it (the writer wrapped in-process, as
    dag.test runs the tasks), so the run's own verify_archive must find it."""
    from trade_migration.archive import writer

    cfg = airflow_conn
    prepare(db, cfg, trades=500)
    real = writer.write_archive

    def then_corrupt(session, config, where, **kwargs):
        manifest = real(session, config, where, **kwargs)
        name = next(p["object"] for p in manifest["ranges"] if p["object"])
        data = bytearray(where.fs.cat_file(where.at(name)))
        data[-100] ^= 0x01
        where.fs.pipe_file(where.at(name), bytes(data))
        return manifest

    monkeypatch.setattr(writer, "write_archive", then_corrupt)
    conf = {**ACK, "archive_url": f"s3://{bucket}/cleanup", "archive_conn_id": "archive_s3"}
    dag = fresh("user_trades_cleanup")
    with Answer("user_trades_cleanup") as answer:
        dr = dag.test(run_conf=conf)
    assert answer.error is None and str(dr.state) == "failed"
    got = states(dr)
    assert (got["archive_table"], got["verify_archive"], got["drop_table"]) == ("success", "failed", "upstream_failed")
    out = capfd.readouterr()
    assert "ArchiveMismatch: archive s3://" in out.out + out.err and "is corrupt" in out.out + out.err
    assert drop.table_exists(db, cfg.keyspace, LEGACY_TABLE)


def test_a_connection_that_does_not_exist_fails_the_restore_at_once(airflow_conn, db, tmp_path, capfd):
    """A missing Airflow connection is no passing trouble: the first try fails, nothing is created."""
    from airflow.utils.session import create_session

    dr = fresh("user_trades_restore").test(run_conf={"archive_url": str(tmp_path / "archive"),
                                                     "into": f"{airflow_conn.keyspace}.never_restored",
                                                     "archive_conn_id": "no_such_conn"})
    assert str(dr.state) == "failed"
    with create_session() as session:
        [ti] = dr.get_task_instances(session=session)
        assert (ti.task_id, str(ti.state), ti.try_number) == ("restore", "failed", 1)
    out = capfd.readouterr()
    assert "The conn_id `no_such_conn` isn't defined" in out.out + out.err
    assert not drop.table_exists(db, airflow_conn.keyspace, "never_restored")
