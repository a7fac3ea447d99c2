"""Posting a notice to a webhook: a Slack-compatible body by default (`text`, plus the alert's
fields), or a PagerDuty Events API v2 event, or an Alertmanager alert (FORMATS).

Knows nothing of Airflow: dags/migration_alerts.py takes the URL and the secret from a connection.
With a secret, each request carries an HMAC-SHA256 signature of "<timestamp>.<body>" (the
headers below) so the receiver can check where it came from; the secret itself is never sent,
except as PagerDuty's routing key, which that API takes in the body. The URL (a Slack URL holds
its token in the path) and the secret appear in no error and no log line: errors name the
scheme and host only.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from trade_migration.core.errors import ConfigError
from trade_migration.core.notify import PARITY_FAILED, Notice

SIGNATURE_HEADER = "X-Trade-Migration-Signature"   # "sha256=" + hex HMAC-SHA256(secret, "<timestamp>.<body>")
TIMESTAMP_HEADER = "X-Trade-Migration-Timestamp"   # unix seconds, so an old request can be refused
SLACK, PAGERDUTY, ALERTMANAGER = "slack", "pagerduty", "alertmanager"
FORMATS = (SLACK, PAGERDUTY, ALERTMANAGER)
CRITICAL = ("task_failed", PARITY_FAILED)          # the alerts that page; the others warn
ROUTING = ("alert", "dag_id", "run_id", "phase", "task", "range", "error")


class WebhookError(RuntimeError):
    """The webhook could not be reached or refused the notice (the message names its host only)."""


def where(url: str) -> str:
    """The URL without path, query or user info: what may be shown."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")


def _fields(notice: Notice) -> dict:
    return json.loads(json.dumps(notice.details, default=str))


def payload(notice: Notice, fmt: str = SLACK, *, secret: str | None = None) -> dict | list:
    """The JSON body for `fmt`."""
    fields = _fields(notice)
    severity = "critical" if notice.alert in CRITICAL else "warning"
    if fmt == SLACK:
        return {"text": f"*{notice.subject}*\n{notice.body}", "subject": notice.subject, "body": notice.body,
                "fields": fields}
    if fmt == PAGERDUTY:
        dedup = ":".join(str(fields.get(k) or "") for k in ROUTING[:6])
        return {"routing_key": secret or "", "event_action": "trigger", "dedup_key": dedup[:255],
                "payload": {"summary": notice.subject[:1024], "source": fields.get("dag_id") or "trade_migration",
                            "severity": severity, "component": fields.get("phase") or "migration",
                            "group": "user_trades_migration", "class": notice.alert,
                            "custom_details": {"body": notice.body, **fields}}}
    if fmt == ALERTMANAGER:
        labels = {"alertname": f"trade_migration_{notice.alert}", "severity": severity,
                  **{k: str(fields[k]) for k in ROUTING[1:6] if fields.get(k) is not None}}
        return [{"labels": labels, "annotations": {"summary": notice.subject, "description": notice.body,
                                                   "error": str(fields.get("error") or "")}}]
    raise ConfigError(f"webhook format must be one of {FORMATS}, got {fmt!r}")


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def post(url: str, notice: Notice, *, secret: str | None = None, fmt: str = SLACK, timeout: float = 10.0) -> int:
    """POST the notice; the HTTP status. WebhookError when it cannot be delivered."""
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise ConfigError(f"the webhook URL must be http(s)://host/..., got {where(url)!r}")
    body = json.dumps(payload(notice, fmt, secret=secret), sort_keys=True).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "trade-migration-alerts"}
    if secret:
        stamp = str(int(time.time()))
        headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER] = stamp, signature(secret, stamp, body)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:   # noqa: S310 - scheme checked above
            return response.status
    except urllib.error.HTTPError as exc:
        raise WebhookError(f"the webhook at {where(url)} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WebhookError(f"the webhook at {where(url)} cannot be reached: {type(reason).__name__}") from None
