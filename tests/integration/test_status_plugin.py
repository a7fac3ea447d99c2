"""The plugin's FastAPI app outside the api-server: it refuses anonymous requests, reads the
keyspace named by the scylla_default connection, and follows the connection when it changes.
(tests/e2e/test_browser.py checks the same page inside a real Airflow, through the UI.)"""
from __future__ import annotations

import json

import pytest
import trade_migration_plugin as plugin
from fastapi.testclient import TestClient
from testkit import synthetic_ledger

from trade_migration.core.clock import now


@pytest.fixture
def client(airflow_conn):
    yield TestClient(plugin.app)
    plugin.app.dependency_overrides.clear()
    plugin.SESSIONS._close()


def test_anonymous_requests_are_refused(client):
    assert client.get("/").status_code == 401
    assert client.get("/status.json").status_code == 401


def test_the_page_reads_the_connections_keyspace_and_follows_it(client, db, cfg, monkeypatch):
    synthetic_ledger.plant(db, cfg, "main", 30, at=now())
    client.app.dependency_overrides[plugin.signed_in] = lambda: None

    data = client.get("/status.json").json()
    assert (data["keyspace"], data["backfill"]["ranges"], data["backfill"]["by_status"]) == (
        cfg.keyspace, 30, {"done": 21, "failed": 3, "pending": 3, "running": 3})
    page = client.get("/", params={"backfill_id": "main"})
    assert page.status_code == 200 and "21 of 30 ranges done (70.0%)" in page.text
    assert client.get("/", params={"backfill_id": "Robert'); DROP"}).status_code == 422

    monkeypatch.setenv("AIRFLOW_CONN_SCYLLA_DEFAULT", json.dumps(
        {"conn_type": "cassandra", "host": "127.0.0.1", "port": 9042, "schema": "t_no_such_keyspace"}))
    broken = client.get("/")
    assert broken.status_code == 503
    assert "keyspace <code>t_no_such_keyspace</code> cannot be read" in broken.text
    assert client.get("/status.json").json()["keyspace"] == "t_no_such_keyspace"


def test_the_default_ledger_is_the_latest_runs_and_every_ledger_is_offered(client, db, cfg):
    from trade_migration.state import phases

    synthetic_ledger.plant(db, cfg, "main", 30, at=now())
    synthetic_ledger.plant(db, cfg, "night", 20, at=now())
    phases.State(db, cfg).mark(phases.BACKFILL, phases.FAILED, run_id="manual__x", actor="pytest",
                               details={"backfill_id": "night"})
    client.app.dependency_overrides[plugin.signed_in] = lambda: None
    data = client.get("/status.json").json()
    assert (data["ledgers"], data["backfill"]["backfill_id"], data["backfill"]["ranges"]) == (["main", "night"],
                                                                                              "night", 20)
    assert client.get("/status.json", params={"backfill_id": "main"}).json()["backfill"]["ranges"] == 30
    page = client.get("/").text
    assert '<option value="night" selected>night</option>' in page and '<option value="main">main</option>' in page
    assert "phase backfill failed (run manual__x)" in page


def test_actions_come_from_the_page_only_and_take_only_a_range_label(client):
    client.app.dependency_overrides[plugin.signed_in] = lambda: None
    form = {"backfill_id": "main", "range": "(1, 2]"}
    refused = client.post("/actions/rerun", data=form)                     # no Origin: another site's form
    assert refused.status_code == 403 and "Origin does not match" in refused.text
    elsewhere = client.post("/actions/rerun", data=form, headers={"origin": "https://evil.example"})
    assert elsewhere.status_code == 403
    bad = client.post("/actions/rerun", data={**form, "range": "(1, 2]; DROP"}, headers={"origin": "http://testserver"})
    assert bad.status_code == 422
    bad_id = client.post("/actions/rerun", data={**form, "backfill_id": "Main'"}, headers={"origin": "http://testserver"})
    assert bad_id.status_code == 422


def test_reports_are_served_from_the_report_folder_and_nothing_else(client, tmp_path, monkeypatch):
    from trade_migration.verify.report import report_dir

    monkeypatch.setenv("TM_REPORT_DIR", str(tmp_path))
    folder = report_dir("scheduled__2026-12-01T02:00:00+00:00")
    folder.mkdir(parents=True)
    (folder / "summary.html").write_text("<h1>user_trades parity: broken</h1>")
    (folder / "differences.csv").write_text("kind,trade_id\nmissing,7\n")
    (tmp_path / "secret.txt").write_text("no")
    client.app.dependency_overrides[plugin.signed_in] = lambda: None
    html = client.get(f"/reports/verify/{folder.name}/summary.html")
    assert html.status_code == 200 and html.text == "<h1>user_trades parity: broken</h1>"
    csv = client.get(f"/reports/verify/{folder.name}/differences.csv")
    assert csv.status_code == 200 and csv.text == "kind,trade_id\nmissing,7\n"
    assert csv.headers["content-disposition"] == 'attachment; filename="differences.csv"'
    for path in (f"/reports/verify/{folder.name}/secret.txt", "/reports/verify/../secret.txt",
                 "/reports/verify/..%2F..%2Fsecret.txt/summary.html", "/reports/verify/nope/summary.html"):
        assert client.get(path).status_code == 404, path
