"""Airflow glue of the alerts: the webhook notifier, whose URL and secret live in an Airflow
connection, and the failure callback of every migration task.

The webhook: set TM_NOTIFIER=migration_alerts:webhook in the workers' environment and create the
connection TM_ALERT_CONN_ID (tm_alerts): conn type http, host = the webhook's full URL (or a host
name, with the scheme in schema), password = the signing secret (PagerDuty: the routing key),
extra {"format": "slack" | "pagerduty" | "alertmanager", "timeout_s": 10}. The URL and the
secret are registered with Airflow's secret masker, and every notice is redacted by it before it
is sent, so neither they nor any connection password fetched by the task reach a log or a body.
The posting itself is trade_migration.core.webhook (no Airflow there).
"""
from __future__ import annotations

from airflow.sdk import Connection
from airflow.sdk._shared.secrets_masker import redact
from airflow.sdk.log import mask_secret

from trade_migration.core import alerts, notify
from trade_migration.core import webhook as hook
from trade_migration.core.settings import ALERT_CONN_ID

PREFIX = "user_trades_"


def phase_of(dag_id: str) -> str:
    """user_trades_backfill -> backfill (user_trades_migration -> migration)."""
    return dag_id.removeprefix(PREFIX)


def _url(conn: Connection) -> str:
    host = conn.host or ""
    if "://" in host:
        return host
    return f"{conn.schema or 'https'}://{host}" + (f":{conn.port}" if conn.port else "")


def webhook(notice: notify.Notice) -> None:
    """The notifier of TM_NOTIFIER=migration_alerts:webhook: post the notice to the connection's webhook."""
    conn = Connection.get(ALERT_CONN_ID.get())
    url, secret = _url(conn), conn.password
    for value in (url, secret):
        if value:
            mask_secret(value)
    extra = conn.extra_dejson
    clean = notify.Notice(redact(notice.subject), redact(notice.body), redact(notice.details))
    hook.post(url, clean, secret=secret, fmt=extra.get("format", hook.SLACK), timeout=float(extra.get("timeout_s", 10)))


def task_failed(context) -> None:
    """on_failure_callback of every migration task: Airflow calls it once the task has failed for
    good (after its retries, or at once for an error the retry policy fails), never on a retry."""
    ti, error = context["ti"], context.get("exception")
    notify.send(alerts.task_failed(
        dag_id=ti.dag_id, run_id=context["run_id"], phase=phase_of(ti.dag_id), task=ti.task_id,
        range_label=range_label(ti, error), error=error, try_number=ti.try_number))


def range_label(ti, error: BaseException | None) -> str | None:
    """The token range the error names, else the mapped task's label (its span of ranges)."""
    return alerts.range_of(error) or (getattr(ti, "rendered_map_index", None) if ti.map_index >= 0 else None)
