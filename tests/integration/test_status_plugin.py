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
