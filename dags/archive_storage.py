"""Airflow glue for the archive's object store: its credentials from an Airflow connection.

The connection id comes from the run's archive_conn_id Param, else TM_ARCHIVE_CONN_ID; without
one the store's own defaults apply (a local folder needs none). The secret goes from the
connection straight into fsspec's options, never into a Param, XCom or log line.
"""
from __future__ import annotations

from migration_common import ID_PATTERN

from trade_migration.archive.store import Store, archive_url, open_store, options_from_connection, run_url
from trade_migration.core.settings import ARCHIVE_CONN_ID

ARCHIVE_PARAMS_HELP = {
    "archive_url": "Where the archive goes: s3://bucket/prefix, gs://..., abfs://..., file:///abs/dir or an absolute"
                   " path (empty: TM_ARCHIVE_URL, else $TM_REPORT_DIR/archive). One folder per run below it.",
    "archive_conn_id": "The Airflow connection with the store's credentials (s3://: login = access key, password ="
                       " secret, extra endpoint_url / region_name). Empty: TM_ARCHIVE_CONN_ID, else none.",
}
# Connection ids are held to the identifier pattern the other id Params use (e.g. aws_default, archive_s3).
CONN_ID_PATTERN = ID_PATTERN


def storage_options(conn_id: str | None, url: str) -> dict:
    conn_id = conn_id or ARCHIVE_CONN_ID.get()
    if not conn_id:
        return {}
    from airflow.sdk import BaseHook

    return options_from_connection(BaseHook.get_connection(conn_id), url)


def run_store(params: dict, run_id: str) -> Store:
    """This run's archive folder, opened with the connection's credentials."""
    url = run_url(archive_url(params.get("archive_url")), run_id)
    return open_store(url, storage_options(params.get("archive_conn_id"), url))


def given_store(url: str, conn_id: str | None) -> Store:
    """An archive folder named in full (a restore's), opened with the connection's credentials."""
    url = archive_url(url)
    return open_store(url, storage_options(conn_id, url))
