"""The webhook's bodies (Slack, PagerDuty Events v2, Alertmanager), its errors (the URL's token never
in them), the notifier's settings, and the range an error names."""
from __future__ import annotations

import socket

import pytest

from trade_migration.core import alerts, notify, webhook
from trade_migration.core.errors import ConfigError
from trade_migration.core.settings import NOTIFIER, PARITY_NOTIFIER

TOKEN = "T0-B0-url-token-never-shown"


def failed() -> notify.Notice:
    return alerts.task_failed(dag_id="user_trades_backfill", run_id="manual__1", phase="backfill",
                              task="copy_ranges", range_label="(1, 9]", error=RuntimeError("boom"), try_number=4)


def test_a_failed_task_names_everything_a_page_routes_on():
    n = failed()
    assert n.details == {"alert": "task_failed", "dag_id": "user_trades_backfill", "run_id": "manual__1",
                         "phase": "backfill", "task": "copy_ranges", "range": "(1, 9]", "error": "RuntimeError: boom",
                         "try_number": 4}
    assert n.subject == "user_trades migration: user_trades_backfill failed (task copy_ranges, range (1, 9])"
    assert n.body.splitlines()[:2] == ["task copy_ranges, range (1, 9] failed for good after 4 tries",
                                       "error: RuntimeError: boom"]


def test_the_three_formats():
    n = failed()
    slack = webhook.payload(n)
    assert slack["text"] == f"*{n.subject}*\n{n.body}" and slack["fields"]["range"] == "(1, 9]"
    pd = webhook.payload(n, webhook.PAGERDUTY, secret="routing-key")
    assert (pd["routing_key"], pd["event_action"], pd["payload"]["severity"], pd["payload"]["source"]) == (
        "routing-key", "trigger", "critical", "user_trades_backfill")
    assert pd["dedup_key"] == "task_failed:user_trades_backfill:manual__1:backfill:copy_ranges:(1, 9]"
    [am] = webhook.payload(n, webhook.ALERTMANAGER)
    assert am["labels"] == {"alertname": "trade_migration_task_failed", "severity": "critical",
                            "dag_id": "user_trades_backfill", "run_id": "manual__1", "phase": "backfill",
                            "task": "copy_ranges", "range": "(1, 9]"}
    assert am["annotations"]["error"] == "RuntimeError: boom"
    with pytest.raises(ConfigError):
        webhook.payload(n, "teams")


def test_an_unreachable_webhook_is_named_by_its_host_only():
    with socket.socket() as s:           # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(webhook.WebhookError) as caught:
        webhook.post(f"http://127.0.0.1:{port}/services/{TOKEN}?token={TOKEN}", failed(), secret=TOKEN, timeout=2)
    assert str(caught.value) == f"the webhook at http://127.0.0.1:{port} cannot be reached: ConnectionRefusedError"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    with pytest.raises(ConfigError) as bad:
        webhook.post(f"file:///etc/{TOKEN}", failed())
    assert TOKEN not in str(bad.value)


def test_tm_notifier_wins_and_the_parity_name_still_works():
    assert notify.notifier_path({}) is None
    assert notify.notifier_path({PARITY_NOTIFIER.name: "a:b"}) == "a:b"
    assert notify.notifier_path({PARITY_NOTIFIER.name: "a:b", NOTIFIER.name: "c:d"}) == "c:d"


def test_the_range_an_error_names():
    exc = alerts.note_range(ValueError("x"), "(-5, 7]")
    assert alerts.range_of(exc) == "(-5, 7]" and alerts.range_of(ValueError("y")) is None
    assert alerts.range_of(None) is None
