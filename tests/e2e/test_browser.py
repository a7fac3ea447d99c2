"""The migration run by an operator in a real browser: headless Chromium against a real Airflow.

Airflow (api-server, scheduler, dag-processor, triggerer; tests/airflow_server.py) points at
this module's keyspace: generated trades, phases create_table and dual_write recorded done. In
the browser, as the operators work: log in; trigger user_trades_backfill from its trigger form
with Params typed in (splits, parallelism, who and why) and wait for it; the mapped copy tasks
are named by their token spans; clear one of them from its task page and watch it copy its
ranges again; open the "Trade migration" page from the navigation and check what it says
against the database; approve user_trades_cleanup's approval step from Required Actions and
see settled_trades dropped. Screenshots of each step go to artifacts/screenshots/ui_*.png.

user_trades_cleanup is triggered through the REST API, not its form: the form itself is
exercised with the backfill; the approval is what this test does in the browser. (Optional text
Params are nullable, so leaving them empty in a form no longer disables Trigger:
tests/dags/test_dag_integrity.py.)
"""
from __future__ import annotations

import json
import urllib.parse
from datetime import timedelta

import httpx
import pytest
from airflow_server import free_port, running_airflow
from browser_kit import log_in, shot
from cleanup_state import add_parity_run, set_flag, utcnow
from conftest import load_trades, mark_done
from migration_common import POOL
from testkit.statements import count_all

from trade_migration.backfill import plan
from trade_migration.cleanup import drop
from trade_migration.core.config import LEGACY_TABLE
from trade_migration.create_table import schema
from trade_migration.state import phases
from trade_migration.state.flags import DUAL_WRITE, NEW_ONLY, READ_PATH, RETIRED, Flags
from trade_migration.state.ledger import DONE, Ledger, within

pytestmark = pytest.mark.e2e

BACKFILL, CLEANUP = "user_trades_backfill", "user_trades_cleanup"
TRADES, SEED, SPLITS, PARALLELISM = 2000, 11, 16, 4
OPERATOR, WHY = "ops-e2e", "backfill started from the Airflow UI"


@pytest.fixture(scope="module")
def airflow(cfg, tmp_path_factory):
    """Airflow on this module's keyspace, with the backfill's pool (`make airflow-init` makes it
    for the project's own Airflow) and log servers on free ports (8793/8794 may be taken)."""
    home = tmp_path_factory.mktemp("airflow")
    conn = {"conn_type": "cassandra", "host": "127.0.0.1", "port": 9042, "schema": cfg.keyspace}
    env = {"AIRFLOW_CONN_SCYLLA_DEFAULT": json.dumps(conn), "TM_REPORT_DIR": str(home / "reports"),
           "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
           "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())}
    with running_airflow(home, env=env) as server:
        server.client.close()    # a patient client: on a busy 2-core machine one poll can wait past 30 s
        server.client = httpx.Client(base_url=server.url, timeout=180)
        server.api("POST", "/pools", json={"name": POOL, "slots": 4, "description": "backfill (e2e)"}, expect=(201,))
        yield server


def count_rows(db, keyspace: str, table: str) -> int:
    return db.execute(count_all(keyspace, table)).one()[0]


def tis(airflow, dag_id: str, run_id: str) -> dict[tuple[str, int], dict]:
    rows = airflow.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
    return {(t["task_id"], t["map_index"]): t for t in rows}


def test_the_migration_is_run_from_the_airflow_ui(airflow, page, cfg, db, cluster_session):
    generated = load_trades(db, cfg, TRADES, SEED)
    mark_done(db, cfg, phases.CREATE_TABLE, phases.DUAL_WRITE)
    for dag_id in (BACKFILL, CLEANUP):
        airflow.wait_for_dag(dag_id)
    try:
        _run_it(airflow, page, cfg, db, generated)
    except Exception:
        shot(page, "failure", full_page=True)
        raise
    finally:
        schema.apply(cluster_session, cfg)   # a rerun of this module gets settled_trades back


def _run_it(airflow, page, cfg, db, generated) -> None:
    ks = cfg.keyspace
    log_in(page, airflow)
    assert airflow.client.get("/trade-migration/").status_code == 401     # the page needs a login too

    # --- the backfill, triggered from its form with Params typed in ------------------------------
    page.goto(f"{airflow.url}/dags/{BACKFILL}")
    page.get_by_role("button", name="Trigger Dag").click()
    form = page.get_by_role("dialog")
    form.locator("input[name=element_splits]").fill(str(SPLITS))
    form.locator("input[name=element_parallelism]").fill(str(PARALLELISM))
    form.locator("input[name=element_actor]").fill(OPERATOR)
    form.locator("input[name=element_reason]").fill(WHY)
    trigger = form.get_by_role("button", name="Trigger", exact=True)
    assert trigger.is_enabled()
    form.get_by_text(f"Unpause {BACKFILL} on trigger").scroll_into_view_if_needed()
    shot(page, "01_trigger_form")
    with page.expect_response(lambda r: r.url.endswith(f"/dags/{BACKFILL}/dagRuns")
                              and r.request.method == "POST") as posted:
        trigger.click()
    created = posted.value.json()
    run_id = created["dag_run_id"]
    assert (created["triggered_by"], created["triggering_user_name"]) == ("ui", "admin")
    assert {k: created["conf"][k] for k in ("splits", "parallelism", "actor", "reason", "backfill_id")} == {
        "splits": SPLITS, "parallelism": PARALLELISM, "actor": OPERATOR, "reason": WHY, "backfill_id": "main"}
    assert airflow.wait_for_run(BACKFILL, run_id, timeout=420) == "success"
    assert airflow.api("GET", f"/dags/{BACKFILL}")["is_paused"] is False    # the form's unpause box

    ledger = Ledger(db, cfg, "main")
    states = ledger.load()
    batches = plan.to_batches(states, PARALLELISM, seed="main")
    assert len(states) >= SPLITS and {s.status for s in states} == {DONE}
    assert sum(s.rows_read for s in states) == TRADES
    assert count_rows(db, ks, "user_trades") == generated.user_trade_rows
    first = tis(airflow, BACKFILL, run_id)
    mapped = {k[1]: t for k, t in first.items() if k[0] == "copy_ranges"}
    assert {t["rendered_map_index"] for t in mapped.values()} == {b["label"] for b in batches}
    assert {(t["state"], t["try_number"]) for t in first.values()} == {("success", 1)}

    # --- the grid: the mapped copies, named by their token spans ---------------------------------
    run_path = f"{airflow.url}/dags/{BACKFILL}/runs/{urllib.parse.quote(run_id, safe='')}"
    page.goto(f"{run_path}/tasks/copy_ranges/mapped")
    for batch in batches:
        page.get_by_role("link", name=batch["label"], exact=True).wait_for()
    shot(page, "02_grid_mapped_ranges")

    # --- clear one mapped range from its page; it copies its ranges again -------------------------
    index, chosen = sorted(mapped.items())[1]
    batch = next(b for b in batches if b["label"] == chosen["rendered_map_index"])
    again = within(ledger.load(), plan.spans(batch))
    ledger.reset(again)       # as the `ranges` Param does: these ranges start over from their first token
    page.goto(f"{run_path}/tasks/copy_ranges/mapped/{index}")
    page.get_by_role("button", name="Press shift+c to clear").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Affected Tasks: 4").wait_for()     # this range, summarize, announce_complete, the teardown
    shot(page, "03_clear_one_range")
    with page.expect_response(lambda r: "clearTaskInstances" in r.url and r.request.method == "POST") as cleared:
        dialog.get_by_role("button", name="Confirm").click()
    assert cleared.value.status == 200

    def rerun_done():
        now = tis(airflow, BACKFILL, run_id)
        return now if all(now[k]["state"] == "success" and now[k]["try_number"] == 2
                          for k in (("copy_ranges", index), ("summarize", -1), ("announce_complete", -1),
                                    ("record_unfinished", -1))) else None
    after = airflow.wait(rerun_done, 300, f"copy_ranges[{index}] and what follows it to rerun")
    assert airflow.wait_for_run(BACKFILL, run_id) == "success"
    assert {k: t["try_number"] for k, t in after.items()} == {
        **{k: 1 for k in first}, ("copy_ranges", index): 2, ("summarize", -1): 2, ("announce_complete", -1): 2,
        ("record_unfinished", -1): 2}
    redone = {s.range_start for s in again}
    states = ledger.load()
    assert {s.status for s in states} == {DONE}
    assert sorted((s.range_start, s.attempts) for s in states) == sorted(
        (s.range_start, 2 if s.range_start in redone else 1) for s in states)
    assert sum(s.rows_read for s in states) == TRADES
    assert count_rows(db, ks, "user_trades") == generated.user_trade_rows   # the same rows, written again

    # --- the Trade migration page ----------------------------------------------------------------
    now = utcnow()
    mark_done(db, cfg, phases.READ_PATH, phases.VERIFY)
    set_flag(db, cfg, READ_PATH, "user_trades", at=now - timedelta(days=40))
    set_flag(db, cfg, DUAL_WRITE, "on", at=now - timedelta(days=45))
    set_flag(db, cfg, DUAL_WRITE, NEW_ONLY, at=now - timedelta(days=1))
    for night in range(7):
        add_parity_run(db, cfg, now - timedelta(days=night, hours=2), status="repaired" if night == 3 else "clean",
                       repaired=4 if night == 3 else 0)
    page.set_viewport_size({"width": 1400, "height": 1900})
    page.goto(airflow.url + "/")
    page.get_by_role("link", name="Trade migration").click()
    frame = page.frame_locator("iframe")
    frame.locator("h1", has_text="Trade migration").wait_for()
    n, rejected = len(states), sum(generated.rejects.values())
    assert frame.locator("#backfill-section .big").first.inner_text().startswith(f"{n} of {n} ranges done (100.0%)")
    assert frame.locator("#phases tr").nth(4).inner_text().split("\t")[:4] == [
        "backfill", "completed", run_id, OPERATOR]
    assert frame.locator("#phases tr").nth(6).inner_text().split("\t")[:2] == ["cleanup", "not started"]
    assert frame.locator("#flags tr").nth(1).inner_text().split("\t")[:2] == ["dual_write", "new_only"]
    assert frame.locator("#flags tr").nth(2).inner_text().split("\t")[:2] == ["read_path", "user_trades"]
    assert frame.locator("#slowest tr").count() == 1 + 10
    assert frame.locator("#failed-count").inner_text() == "no failed ranges"
    assert frame.locator("#parity-chart rect.run").count() == 7
    assert frame.locator("#parity-chart rect.repaired").count() == 1
    gates = [row.split("\t")[:2] for row in frame.locator("#gates tr").all_inner_texts()[1:]]
    assert gates == [["pass", "order"], ["pass", "read_path"], ["pass", "writer"], ["pass", "parity"],
                     ["pass", "backfill"], ["FAIL", "rejects"]]       # nobody has acknowledged the rejects yet
    assert frame.locator("#days-remaining").inner_text() == "30 days of reads on user_trades: reached"
    shot(page, "04_migration_page")
    data = page.request.get(airflow.url + "/trade-migration/status.json").json()   # the tab's login cookie
    assert data["keyspace"] == ks
    assert {k: data["backfill"][k] for k in ("ranges", "by_status", "complete", "rows_read", "rows_rejected")} == {
        "ranges": n, "by_status": {"done": n}, "complete": True, "rows_read": TRADES, "rows_rejected": rejected}
    assert [r["status"] for r in data["parity"]] == ["clean"] * 3 + ["repaired"] + ["clean"] * 3

    # --- the cleanup: gates pass, a person approves in Required Actions, the table goes ----------
    cleanup_run = airflow.trigger(CLEANUP, run_id="e2e_ui_cleanup", conf={
        "acknowledge_rejects": f"the {rejected} generated rejects; kept in the archive",
        "actor": OPERATOR, "reason": "the end of the migration"})
    airflow.unpause(CLEANUP)
    airflow.wait_for_approval_request(CLEANUP, cleanup_run, "approve", timeout=300)
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(airflow.url + "/required_actions")
    request = page.get_by_role("link", name=f"Drop {ks}.settled_trades? Every cleanup gate passes")
    request.wait_for()
    shot(page, "05_required_actions")
    request.click()
    page.get_by_text(f"{ks}.settled_trades").first.wait_for()
    approve = page.get_by_role("button", name="Approve", exact=True)
    shot(page, "06_approval")
    with page.expect_response(lambda r: "hitlDetails" in r.url and r.request.method == "PATCH") as answered:
        approve.click()
    response = answered.value.json()
    assert (response["chosen_options"], response["responded_by"]["name"]) == (["Approve"], "admin")
    assert airflow.wait_for_run(CLEANUP, cleanup_run, timeout=420) == "success"
    assert set(airflow.task_states(CLEANUP, cleanup_run).values()) == {"success"}

    assert not drop.table_exists(db, ks, LEGACY_TABLE)
    flag = Flags(db, cfg).get(DUAL_WRITE)
    assert (flag.value, flag.changed_by) == (RETIRED, "admin")
    phase = phases.State(db, cfg).phase(phases.CLEANUP)
    assert (phase.status, phase.run_id, phase.actor) == (phases.COMPLETED, cleanup_run, "admin")

    page.set_viewport_size({"width": 1400, "height": 1900})
    page.goto(airflow.url + "/plugin/trade-migration")
    frame = page.frame_locator("iframe")
    frame.get_by_text("the migration is over: settled_trades was dropped").wait_for()
    assert frame.locator("#phases tr").nth(6).inner_text().split("\t")[:2] == ["cleanup", "completed"]
    assert frame.locator("#flags tr").nth(1).inner_text().split("\t")[:2] == ["dual_write", "retired"]
    shot(page, "07_migration_page_done")
