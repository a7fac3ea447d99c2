"""Credentials in a real Airflow: the scylla_default connection carries a login and password
(the local node runs without authentication, so the driver's PlainTextAuthProvider is never asked
for them); a successful and a failing DAG run leave task log files under AIRFLOW_HOME/logs, and
neither those nor any other file Airflow wrote contains the password.
"""
from __future__ import annotations

import json

import pytest
from airflow_server import running_airflow

from trade_migration.state import phases

pytestmark = pytest.mark.e2e
PASSWORD = "Pw-e2e-7Qx!-kept-out-of-logs"


def test_the_password_is_in_no_task_log_and_no_file(cfg, db, tmp_path):
    home = tmp_path / "airflow"
    conn = {"conn_type": "cassandra", "host": "127.0.0.1", "port": 9042, "schema": cfg.keyspace,
            "login": "migrator", "password": PASSWORD}
    with running_airflow(home, env={"AIRFLOW_CONN_SCYLLA_DEFAULT": json.dumps(conn),
                                    "TM_REPORT_DIR": str(home / "reports")}) as af:
        for dag_id in ("user_trades_create_table", "user_trades_backfill"):
            af.wait_for_dag(dag_id)
            af.unpause(dag_id)
        ok = af.trigger("user_trades_create_table", conf={"actor": "e2e", "reason": "credentials test"})
        assert af.wait_for_run("user_trades_create_table", ok) == "success"
        bad = af.trigger("user_trades_backfill", conf={"actor": "e2e", "reason": "fails: dual_write not done"})
        assert af.wait_for_run("user_trades_backfill", bad) == "failed"
    assert phases.State(db, cfg).phase(phases.CREATE_TABLE).actor == "e2e"   # the run did reach the node

    task_logs = [p for p in (home / "logs").rglob("*.log") if "dag_id=" in str(p)]
    text = "\n".join(p.read_text(errors="replace") for p in task_logs)
    assert "schema agreement reached" in text                                  # the successful task's log
    assert '"exc_type":"PhaseOrderError","exc_value":"phase \'backfill\' cannot start' in text   # the failing one
    leaked = [str(p) for p in home.rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()]
    assert leaked == []
