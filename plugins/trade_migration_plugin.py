"""The "Trade migration" page in the Airflow UI: where the migration stands, and the fixes, on one screen.

A FastAPI app mounted by the api-server at /trade-migration: the HTML page and status.json,
the one-click actions (actions/rerun, actions/repair) and the verification reports
(reports/verify/<run>/<file>), shown inside the UI through an external view in the navigation.
It reads the state tables (trade_migration.ui) and Airflow's own records of the runs (which are
running, which DAGs are paused); it changes nothing itself: an action triggers a DAG through
Airflow's REST API with the signed-in user's own token, so Airflow decides who may, and a user
without the permission gets its refusal and nothing runs. Signed-in users only (the UI's token
cookie or a Bearer token). The Cassandra session comes from the `scylla_default` connection
(TM_CONN_ID overrides) through the provider's CassandraHook, kept for the process and rebuilt
when the connection changes.
"""
from __future__ import annotations

import logging
import re
import threading
from html import escape
from urllib.parse import quote, urlsplit

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from trade_migration.core import settings
from trade_migration.core.config import IDENTIFIER
from trade_migration.verify.report import SERVED_AT

log = logging.getLogger(__name__)
CONN_ID = settings.CONN_ID.get()
URL_PREFIX = SERVED_AT.rstrip("/")
ID = rf"^{IDENTIFIER.pattern}$"     # pydantic's patterns are Rust regexes: "$" is the very end
BACKFILL_ID = Query(None, pattern=ID, description="The backfill ledger shown (default: the latest run's).")
LABEL = re.compile(r"\((-?\d{1,20}), (-?\d{1,20})\]")
REPORT_FILES = {"summary.html": "text/html", "differences.csv": "text/csv", "rejected.csv": "text/csv",
                "summary.json": "application/json"}
DAGS = ("user_trades_create_table", "user_trades_dual_write", "user_trades_read_path", "user_trades_backfill",
        "user_trades_verify", "user_trades_cleanup", "user_trades_migration")


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
        from trade_migration.core.session import hook_cluster_quietly

        conn = CassandraHook.get_connection(conn_id)   # env var, secrets backend or metadata DB
        key = conn.get_uri()
        with self._lock:
            if key != self._key or self._session is None or self._session.is_shutdown:
                self._close()
                with hook_cluster_quietly():
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


def airflow_facts(run_ids: set[str]) -> dict:
    """From Airflow's metadata DB: the named runs' states, the migration's runs in progress and
    which of its DAGs are paused. Empty when the DB cannot be read (the page still shows the records)."""
    try:
        from airflow.models.dag import DagModel
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select

        ours = DagRun.dag_id.in_(DAGS)
        with create_session() as db:
            dags = db.scalars(select(DagModel).where(DagModel.dag_id.in_(DAGS)))
            paused = {d.dag_id: bool(d.is_paused) for d in dags}
            named = db.scalars(select(DagRun).where(ours, DagRun.run_id.in_(run_ids))) if run_ids else []
            runs = {r.run_id: {"dag_id": r.dag_id, "state": str(r.state)} for r in named}
            live = db.scalars(select(DagRun).where(ours, DagRun.state.in_(("queued", "running")))
                              .order_by(DagRun.start_date))
            in_progress = [{"dag_id": r.dag_id, "run_id": r.run_id, "state": str(r.state), "start_date": r.start_date}
                           for r in live]
        return {"runs": runs, "in_progress": in_progress, "paused": paused}
    except Exception:  # noqa: BLE001 - the records alone are still worth showing
        log.exception("Airflow's runs could not be read for the migration page")
        return {}


def _read(backfill_id: str | None) -> tuple[str, dict | None, dict, str | None]:
    from trade_migration.ui.status import migration_status

    keyspace = "?"
    try:
        session, config = SESSIONS.get(CONN_ID)
        keyspace = config.keyspace
        status = migration_status(session, config, backfill_id=backfill_id)
    except Exception as exc:  # noqa: BLE001 - the page says what went wrong instead of a bare 500
        log.exception("trade migration status could not be read")
        return keyspace, None, {}, f"{type(exc).__name__}: {exc}"
    run_ids = {p["run_id"] for p in status["phases"] if p["run_id"]} | {r["run_id"] for r in status["parity"]}
    return keyspace, status, airflow_facts(run_ids), None


@app.get("/", response_class=HTMLResponse)
def page(backfill_id: str | None = BACKFILL_ID) -> HTMLResponse:
    """The page (sync: FastAPI runs it in a worker thread, the driver calls block)."""
    from trade_migration.ui import status_page

    keyspace, status, airflow, error = _read(backfill_id)
    if error:
        return HTMLResponse(status_page.render_error(keyspace, error), status_code=503)
    shown = status["backfill"]["backfill_id"]
    return HTMLResponse(status_page.render(status, airflow=airflow, json_href=f"status.json?backfill_id={shown}"))


@app.get("/status.json")
def status_json(backfill_id: str | None = BACKFILL_ID) -> JSONResponse:
    keyspace, status, airflow, error = _read(backfill_id)
    if error:
        return JSONResponse({"keyspace": keyspace, "error": error}, status_code=503)
    return JSONResponse(jsonable_encoder({**status, "airflow": airflow}))


# --- actions: a DAG triggered through Airflow's REST API, as the signed-in user -------------------
def _same_origin(request: Request) -> None:
    """A form post from this site only: a page elsewhere cannot make a signed-in browser trigger runs."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or urlsplit(origin).netloc != request.url.netloc:
        raise HTTPException(403, "actions are taken from the migration page only (Origin does not match)")


def _api_base(request: Request) -> str:
    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="") or f"{request.url.scheme}://{request.url.netloc}"
    return base.rstrip("/")


def _trigger(request: Request, dag_id: str, conf: dict, *, unpause: bool) -> tuple[bool, str]:
    """POST /api/v2/dags/{dag_id}/dagRuns with the caller's token; (triggered, what to tell them).

    A paused DAG's run would wait queued: with `unpause` (a DAG without a schedule, where that
    starts nothing else) it is unpaused first, as the trigger form's box does; otherwise the
    answer says the run waits."""
    import httpx
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    token = request.headers.get("authorization", "").removeprefix("Bearer ").strip() or \
        request.cookies.get(COOKIE_NAME_JWT_TOKEN, "")
    dag_url = f"{_api_base(request)}/api/v2/dags/{quote(dag_id, safe='')}"
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
        resp = api.post(f"{dag_url}/dagRuns", json={"logical_date": None, "conf": conf})
        if resp.status_code in (401, 403):
            return False, (f"you may not trigger <code>{escape(dag_id)}</code> (Airflow answered"
                           f" {resp.status_code}); nothing was started. Ask someone with that permission.")
        if resp.status_code not in (200, 201):
            return False, f"Airflow refused the run ({resp.status_code}): {escape(resp.text[:500])}; nothing started"
        run_id = resp.json()["dag_run_id"]
        paused = api.get(dag_url).json().get("is_paused")
        if paused and unpause:
            paused = api.patch(dag_url, json={"is_paused": False}).status_code != 200
    href = f"../../dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    waits = (f" <b>{escape(dag_id)} is paused: the run waits until someone unpauses it.</b>" if paused else "")
    return True, (f'triggered <a id="run-link" href="{escape(href)}" target="_top">{escape(run_id)}</a> of'
                  f" <code>{escape(dag_id)}</code> with {escape(str(conf))}.{waits}")


def _answer(title: str, outcome: tuple[bool, str], back: str) -> HTMLResponse:
    from trade_migration.ui import status_page

    ok, message = outcome
    return HTMLResponse(status_page.render_result(title, message, ok=ok, back=back), status_code=200 if ok else 403)


@app.post("/actions/rerun", response_class=HTMLResponse)
def rerun(request: Request, backfill_id: str = Form(..., pattern=ID),
          range_: str = Form(..., alias="range", max_length=50)) -> HTMLResponse:
    """Rerun one backfill range: user_trades_backfill for that range alone, its settings the defaults."""
    _same_origin(request)
    if not LABEL.fullmatch(range_):
        raise HTTPException(422, f"not a range label: {range_!r}")
    conf = {"backfill_id": backfill_id, "ranges": [range_], "reason": f"rerun of range {range_} from the page"}
    return _answer("Rerun of one range", _trigger(request, "user_trades_backfill", conf, unpause=True),
                   f"../?backfill_id={backfill_id}")


@app.post("/actions/repair", response_class=HTMLResponse)
def repair(request: Request, run_id: str = Form(..., max_length=250)) -> HTMLResponse:
    """Repair what a broken parity run found: a full verification with repair on (it checks again
    what it rewrote before it concludes)."""
    _same_origin(request)
    conf = {"mode": "full", "repair": True, "reason": f"repair after broken parity run {run_id[:200]}"}
    return _answer("Repair", _trigger(request, "user_trades_verify", conf, unpause=False), "../")


@app.get("/reports/verify/{run}/{name}")
def report_file(run: str, name: str) -> FileResponse:
    """A verification run's report file, from the folder verify.report wrote it to."""
    from trade_migration.verify.report import report_dir

    if name not in REPORT_FILES or not re.fullmatch(r"[A-Za-z0-9_.-]{1,250}", run) or run.strip(".") == "":
        raise HTTPException(404, "no such report file")
    path = report_dir(run) / name
    if not path.is_file():
        raise HTTPException(404, f"no {name} for run {run} on this api-server (reports are written under"
                                 f" TM_REPORT_DIR by the worker that ran the verification)")
    return FileResponse(path, media_type=REPORT_FILES[name],
                        headers={"Content-Disposition": f'{"inline" if name.endswith("html") else "attachment"};'
                                                        f' filename="{name}"'})


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
