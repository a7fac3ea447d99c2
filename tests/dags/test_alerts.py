"""Alerts through dag.test() on the real node, delivered by the webhook notifier (dags/migration_alerts.py,
its URL and secret in an Airflow connection) to a local HTTP listener: a range failing for good and a
broken parity run each arrive exactly once, with the DAG, run, phase, task, range and error; the
webhook's URL token, its secret and the database password show in no request body, metric or log.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cleanup_state import prepare
from conftest import dagbag, load_trades, mark_done
from hitl_answer import Answer
from statsd_listener import StatsdListener
from testkit.statements import delete_user_trade

from trade_migration.backfill import copier, plan
from trade_migration.core.convert import Reject, convert
from trade_migration.core.model import SettledTrade
from trade_migration.core.prepared import prepared
from trade_migration.core.symbols import load_symbol_ids
from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN, TokenRange
from trade_migration.core.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER
from trade_migration.state import phases
from trade_migration.state.ledger import FAILED, Ledger
from trade_migration.statements.settled_trades import decode_scanned_trade, insert_settled, scan_settled

TOKEN = "XoXb-url-token-7Hq2-never-shown"
SECRET = "whsec-5Kp0-signing-secret-never-shown"
DB_PASSWORD = "Db-pw-31x!-never-shown"
SECRETS = (TOKEN, SECRET, DB_PASSWORD)


class Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append({"path": self.path, "headers": dict(self.headers), "raw": raw,
                              "json": json.loads(raw)})
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook(airflow_conn, monkeypatch):
    """The listener; the notifier, its connection and the DB connection (with a password) set."""
    Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    monkeypatch.setenv("TM_NOTIFIER", "migration_alerts:webhook")
    monkeypatch.setenv("AIRFLOW_CONN_TM_ALERTS", json.dumps(
        {"conn_type": "http", "host": f"http://127.0.0.1:{port}/services/T0/B0/{TOKEN}", "password": SECRET}))
    monkeypatch.setenv("AIRFLOW_CONN_SCYLLA_DEFAULT", json.dumps(
        {"conn_type": "cassandra", "host": "127.0.0.1", "port": 9042, "schema": airflow_conn.keyspace,
         "login": "migrator", "password": DB_PASSWORD}))
    yield Hook.received
    server.shutdown()
    thread.join()


@pytest.fixture
def statsd(monkeypatch):
    listener = StatsdListener()
    monkeypatch.setenv("TM_STATSD_HOST", "127.0.0.1")
    monkeypatch.setenv("TM_STATSD_PORT", str(listener.port))
    yield listener
    listener.stop()


@pytest.fixture
def captured(capfd, caplog):
    """Everything the runs print or log (dag.test() runs the tasks in this process)."""
    caplog.set_level(logging.DEBUG)
    capfd.readouterr()

    def text() -> str:
        out = capfd.readouterr()
        return out.out + out.err + caplog.text + "".join(str(r.args) for r in caplog.records)

    return text


def fresh(dag_id: str):
    return dagbag().get_dag(dag_id)


def assert_signed(request: dict) -> None:
    stamp = request["headers"][TIMESTAMP_HEADER]
    expected = hmac.new(SECRET.encode(), stamp.encode() + b"." + request["raw"], hashlib.sha256).hexdigest()
    assert request["headers"][SIGNATURE_HEADER] == f"sha256={expected}"


def assert_no_secret(requests: list[dict], statsd: StatsdListener, logs: str) -> None:
    seen = [json.dumps(r["json"]) + json.dumps({k: v for k, v in r["headers"].items()}) for r in requests]
    for secret in SECRETS:
        assert not [s for s in seen if secret in s], secret
        assert not [p for p in statsd.packets if secret in p], secret
        assert secret not in logs, secret


def test_a_range_failing_for_good_reaches_the_webhook_once(webhook, statsd, captured, db, airflow_conn):
    cfg = airflow_conn
    load_trades(db, cfg, 400, seed=23)
    expiring = SettledTrade(trade_id=9_000_001, output_seq=1, symbol="BTC_USDT", price=10, quantity=1,
                            buyer_user_id=1, seller_user_id=2, buyer_order_id=None, seller_order_id=None,
                            taker_side="BUY", buyer_fee=None, seller_fee=None, matched_at=None,
                            settled_at=datetime(2026, 1, 1, tzinfo=UTC))
    db.execute(db.prepare(insert_settled(cfg.keyspace) + " AND TTL 3600"), (*expiring, 1_780_000_000_000_000))
    mark_done(db, cfg, phases.CREATE_TABLE, phases.DUAL_WRITE)

    dr = fresh("user_trades_backfill").test(run_conf={"backfill_id": "alerted", "splits": 4, "parallelism": 1})
    assert str(dr.state) == "failed"
    [failed] = [rs for rs in Ledger(db, cfg, "alerted").load() if rs.status == FAILED]

    [request] = webhook                                          # once: no alert for the retries it did not get
    body = request["json"]
    assert request["path"] == f"/services/T0/B0/{TOKEN}"
    assert_signed(request)
    fields = body["fields"]
    assert (fields["alert"], fields["dag_id"], fields["run_id"], fields["phase"], fields["task"], fields["range"]) == (
        "task_failed", "user_trades_backfill", dr.run_id, "backfill", "copy_ranges", failed.label)
    assert fields["error"].startswith("TtlRefused: trade 9000001 in settled_trades expires in ")
    assert body["text"].startswith(f"*user_trades migration: user_trades_backfill failed (task copy_ranges,"
                                   f" range {failed.label})*\n")
    assert statsd.counters()["trade_migration.notices.task_failed"] == 1
    assert statsd.counters()["trade_migration.backfill.ranges_failed"] == 1
    logs = captured()
    assert "TtlRefused: trade 9000001" in logs and "token range " + failed.label in logs   # the task's log is here
    assert_no_secret(webhook, statsd, logs)


def test_a_broken_parity_run_reaches_the_webhook_once(webhook, statsd, captured, db, airflow_conn, tmp_path,
                                                       monkeypatch):
    cfg = airflow_conn
    monkeypatch.setenv("TM_REPORT_DIR", str(tmp_path / "reports"))
    load_trades(db, cfg, 600, seed=29)
    plan.ensure_ledger(db, cfg, Ledger(db, cfg, "main"), 4)
    copier.run_batch(db, cfg, "main", [TokenRange(MIN_TOKEN, MAX_TOKEN)])
    mark_done(db, cfg, phases.CREATE_TABLE, phases.DUAL_WRITE, phases.BACKFILL)
    ids = load_symbol_ids(db, cfg.keyspace)
    scanned = db.execute(prepared(db, scan_settled(cfg.keyspace)), (MIN_TOKEN, MAX_TOKEN))
    trade = next(t for t in (decode_scanned_trade(r).trade for r in scanned) if not isinstance(convert(t, ids), Reject))
    db.execute(prepared(db, delete_user_trade(cfg.keyspace)), convert(trade, ids)[0].key)

    dr = fresh("user_trades_verify").test(run_conf={"mode": "full", "splits": 4, "parallelism": 1,
                                                    "recheck_delay_s": 0.1, "reason": "alert test"})
    assert str(dr.state) == "failed"

    [request] = webhook
    assert_signed(request)
    body, fields = request["json"], request["json"]["fields"]
    assert (fields["alert"], fields["dag_id"], fields["run_id"], fields["phase"], fields["task"], fields["range"]) == (
        "parity_failed", "user_trades_verify", dr.run_id, "verify", "conclude", None)
    assert fields["error"].startswith("ParityBroken: ")
    assert (fields["status"], fields["missing"], fields["mismatched"], fields["orphans"]) == ("broken", 1, 0, 0)
    assert body["text"].startswith(f"*user_trades parity broken: user_trades_verify run {dr.run_id}*\n")
    gauges = statsd.gauges()
    assert (gauges["trade_migration.verify.missing"], gauges["trade_migration.verify.orphans"]) == (1, 0)
    assert statsd.counters()["trade_migration.verify.runs.broken"] == 1
    logs = captured()
    assert "ParityBroken" in logs
    assert_no_secret(webhook, statsd, logs)


def test_an_approval_left_unanswered_reaches_the_webhook_once(webhook, statsd, captured, db, airflow_conn,
                                                              tmp_path, monkeypatch):
    """The watch beside the approval tells the notifier once the approval has waited
    TM_APPROVAL_ALERT_AFTER_S (0 here), then ends; the person answers after the alert."""
    cfg = airflow_conn
    monkeypatch.setenv("TM_REPORT_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("TM_APPROVAL_ALERT_AFTER_S", "0")
    prepare(db, cfg, trades=200)
    dag = fresh("user_trades_cleanup")
    with Answer("user_trades_cleanup", choice="Reject", after=lambda: bool(webhook)) as answer:
        dr = dag.test(run_conf={"acknowledge_rejects": "generated rejects", "reason": "alert test"})
    assert answer.error is None and answer.answered_run == dr.run_id
    assert str(dr.state) == "success"

    [request] = webhook                                          # once, though the approval went on waiting
    assert_signed(request)
    body, fields = request["json"], request["json"]["fields"]
    assert (fields["alert"], fields["dag_id"], fields["run_id"], fields["phase"], fields["task"], fields["range"]) == (
        "approval_waiting", "user_trades_cleanup", dr.run_id, "cleanup", "approve", None)
    assert fields["error"].startswith("unanswered for ")
    assert body["text"].startswith(f"*user_trades cleanup: the drop of {cfg.keyspace}.settled_trades waits for"
                                   " approval*\n")
    assert "Required Actions" in body["text"] and "rejected by default at " in body["text"]
    assert statsd.counters()["trade_migration.notices.approval_waiting"] == 1
    assert_no_secret(webhook, statsd, captured())
