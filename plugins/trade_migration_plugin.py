"""The "Trade migration" page in the Airflow UI: where the migration stands, on one screen.

A FastAPI app mounted by the api-server at /trade-migration (the HTML page, and status.json
for scripts), shown inside the UI through an external view in the navigation. It only reads:
trade_migration.status gathers the state, trade_migration.status_page renders it. Signed-in
users only (the UI's own token cookie or a Bearer token). The Cassandra session comes from the
`scylla_default` connection (TM_CONN_ID overrides) through the provider's CassandraHook, so
credentials and TLS come from the connection only; it is kept for the process and rebuilt when
the connection changes.
"""
from __future__ import annotations

import logging
import threading

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse

from trade_migration.core import settings

log = logging.getLogger(__name__)
CONN_ID = settings.CONN_ID.get()
URL_PREFIX = "/trade-migration"
BACKFILL_ID = Query("main", pattern="^[a-z][a-z0-9_]{0,47}$", description="The backfill ledger shown.")


class _Sessions:
    """One driver session per api-server process, rebuilt when the connection's URI changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: str | None = None
        self._hook = None
        self._session = None
        self._config = None

    def get(self, conn_id: str):
        from airflow.providers.apache.cassandra.hooks.cassandra import CassandraHook

        from trade_migration.core.config import config_from_connection

        conn = CassandraHook.get_connection(conn_id)   # env var, secrets backend or metadata DB
        key = conn.get_uri()
        with self._lock:
            if key != self._key or self._session is None or self._session.is_shutdown:
                self._close()
                hook = CassandraHook(cassandra_conn_id=conn_id)
                self._session = hook.get_cluster().connect()   # no keyspace: it may not exist yet
                self._hook, self._key, self._config = hook, key, config_from_connection(conn)
            return self._session, self._config

    def _close(self) -> None:
        if self._hook is not None:
            self._hook.shutdown_cluster()
        self._hook = self._session = self._key = None


async def signed_in(request: Request) -> None:
    """401/403 unless the request carries a valid Airflow token (cookie or Bearer), as the REST
    API requires. Imported here, not at the top: every task process loads plugins, and the
    api-server's security module costs over a second to import."""
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    await get_user(request, None, await bearer_scheme(request))


SESSIONS = _Sessions()
app = FastAPI(title="Trade migration", dependencies=[Depends(signed_in)])


def _read(backfill_id: str) -> tuple[str, dict | None, str | None]:
    from trade_migration.ui.status import migration_status

    keyspace = "?"
    try:
        session, config = SESSIONS.get(CONN_ID)
        keyspace = config.keyspace
        return keyspace, migration_status(session, config, backfill_id=backfill_id), None
    except Exception as exc:  # noqa: BLE001 - the page says what went wrong instead of a bare 500
        log.exception("trade migration status could not be read")
        return keyspace, None, f"{type(exc).__name__}: {exc}"


@app.get("/", response_class=HTMLResponse)
def page(backfill_id: str = BACKFILL_ID) -> HTMLResponse:
    """The page (sync: FastAPI runs it in a worker thread, the driver calls block)."""
    from trade_migration.ui import status_page

    keyspace, status, error = _read(backfill_id)
    if error:
        return HTMLResponse(status_page.render_error(keyspace, error), status_code=503)
    return HTMLResponse(status_page.render(status, json_href=f"status.json?backfill_id={backfill_id}"))


@app.get("/status.json")
def status_json(backfill_id: str = BACKFILL_ID) -> JSONResponse:
    keyspace, status, error = _read(backfill_id)
    if error:
        return JSONResponse({"keyspace": keyspace, "error": error}, status_code=503)
    return JSONResponse(jsonable_encoder(status))


class TradeMigrationPlugin(AirflowPlugin):
    name = "trade_migration"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Trade migration"}]
    external_views = [{
        "name": "Trade migration",
        "href": URL_PREFIX.lstrip("/") + "/",     # relative: works behind a proxy's base path too
        "url_route": "trade-migration",           # shown inside the UI at /plugin/trade-migration
        "destination": "nav",
        "nav_top_level": True,                    # its own entry, not under Plugins
    }]
