"""On call at 3 a.m., in a real browser on a real Airflow: one failed range, one click to fix it.

The state a failed night leaves: a backfill under its own ledger (`oncall_drill`, not `main`)
with every range copied but one, that range failed with its error, the phase recorded failed.
The engineer signs in and opens the Trade migration page from the navigation (click 1): the
page shows that ledger (the latest run's), the phase failed and the range red with its error in
a "needs attention" banner. "Rerun" (click 2, nothing typed) triggers user_trades_backfill for
that range through Airflow's REST API as the signed-in user; the run ends green, the page then
shows every range done, and user_trades holds exactly the generated trades' rows. A viewer
clicking the same button is refused by Airflow and nothing runs. Screenshots (ui_oncall_*.png):
the failed range, the refusal, the rerun triggered, the ledger green, a backfill in progress
(rate, ETA, a stalled range) and the page after a broken parity run.
"""
from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from airflow_server import free_port, running_airflow
from browser_kit import log_in, shot
from cleanup_state import add_parity_run, set_flag, utcnow
from conftest import load_trades, mark_done
from migration_common import POOL
from testkit import synthetic_ledger
from testkit.statements import count_all

from trade_migration.backfill import copier, plan
from trade_migration.state import phases
from trade_migration.state.flags import DUAL_WRITE
from trade_migration.state.ledger import DONE, FAILED, Ledger

pytestmark = pytest.mark.e2e

BACKFILL = "user_trades_backfill"
LEDGER, TRADES, SEED, SPLITS = "oncall_drill", 3000, 23, 8
ERROR = "ReadTimeout: Error from server: code=1200 [Coordinator node timed out waiting for replica nodes' responses]"
VIEWER = "viewer"


@pytest.fixture(scope="module")
def airflow(cfg, tmp_path_factory):
    """Airflow on this module's keyspace with an admin and a viewer; a range counts as stalled after 300 s."""
    home = tmp_path_factory.mktemp("airflow")
    conn = {"conn_type": "cassandra", "host": "127.0.0.1", "port": 9042, "schema": cfg.keyspace}
    env = {"AIRFLOW_CONN_SCYLLA_DEFAULT": json.dumps(conn), "TM_REPORT_DIR": str(home / "reports"),
           "TM_STALL_AFTER_S": "300", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"admin:admin,{VIEWER}:viewer",
           "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
           "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())}
    with running_airflow(home, env=env) as server:
        server.client.close()    # a patient client: on a busy 2-core machine one poll can wait past 30 s
        server.client = httpx.Client(base_url=server.url, timeout=180)
        server.api("POST", "/pools", json={"name": POOL, "slots": 4, "description": "backfill (e2e)"}, expect=(201,))
        passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
        server.viewer_password = passwords[VIEWER]
        yield server


def a_failed_night(db, cfg):
    """Every range of LEDGER copied but one, that one failed with ERROR; the phase recorded failed."""
    generated = load_trades(db, cfg, TRADES, SEED)
    mark_done(db, cfg, phases.CREATE_TABLE, phases.DUAL_WRITE)
    set_flag(db, cfg, DUAL_WRITE, "on")
    ledger = Ledger(db, cfg, LEDGER)
    states = sorted(plan.ensure_ledger(db, cfg, ledger, SPLITS), key=lambda s: s.range_start)
    broken = states[len(states) // 2]
    copier.run_batch(db, cfg, LEDGER, [s.token_range for s in states if s is not broken])
    ledger.start(broken)
    ledger.finish(broken, FAILED, error=ERROR)
    phases.State(db, cfg).mark(phases.BACKFILL, phases.FAILED, run_id="manual__2026-12-01T03:02:11+00:00",
                               actor="scheduler", reason="a task of the run failed; see its log",
                               details={"backfill_id": LEDGER})
    return generated, broken, len(states)


def backfill_runs(airflow) -> list[str]:
    return [r["dag_run_id"] for r in airflow.dag_runs(BACKFILL)]


def test_a_failed_range_is_rerun_with_one_click(airflow, browser, cfg, db):
    generated, broken, n = a_failed_night(db, cfg)
    airflow.wait_for_dag(BACKFILL)
    before = backfill_runs(airflow)

    # --- a viewer sees the failure, may not fix it: Airflow refuses, nothing runs ----------------
    viewer = browser.new_context(viewport={"width": 1400, "height": 1300}).new_page()
    log_in(viewer, airflow, VIEWER, airflow.viewer_password)
    viewer.get_by_role("link", name="Trade migration").click()
    frame = viewer.frame_locator("iframe")
    frame.locator("#failed").get_by_role("button", name="Rerun").click()
    frame.locator("#result").wait_for()
    assert frame.locator("#result").inner_text().startswith(f"refused you may not trigger {BACKFILL}")
    shot(viewer, "oncall_02_viewer_refused")
    assert backfill_runs(airflow) == before
    assert {s.range_start: s.status for s in Ledger(db, cfg, LEDGER).load()}[broken.range_start] == FAILED
    viewer.context.close()

    # --- the engineer: sign in, open the page (click 1), see the failed range ---------------------
    page = browser.new_context(viewport={"width": 1400, "height": 1300}).new_page()
    page.set_default_timeout(180_000)
    try:
        log_in(page, airflow)
        page.get_by_role("link", name="Trade migration").click()
        frame = page.frame_locator("iframe")
        banner = frame.locator("#attention")
        banner.wait_for()
        text = banner.inner_text()
        assert f"1 failed ranges in backfill {LEDGER}" in text
        assert "phase backfill failed (run manual__2026-12-01T03:02:11+00:00)" in text
        assert frame.locator("#ledger-picker select").input_value() == LEDGER
        row = frame.locator("#failed tr").nth(1).inner_text().split("\t")
        assert (row[0], row[2], row[3]) == (broken.label, "1", ERROR)
        assert frame.locator("#phases tr").nth(4).inner_text().split("\t")[:2] == ["backfill", "failed"]
        shot(page, "oncall_01_failed_range")

        # --- click 2: Rerun; the run ends green --------------------------------------------------
        frame.locator("#failed").get_by_role("button", name="Rerun").click()
        link = frame.locator("#run-link")
        link.wait_for()
        run_id = link.inner_text()
        assert frame.locator("#result").inner_text().startswith("ok triggered")
        shot(page, "oncall_03_rerun_triggered")
        assert airflow.wait_for_run(BACKFILL, run_id, timeout=420) == "success"
        conf = airflow.api("GET", f"/dags/{BACKFILL}/dagRuns/{run_id}")["conf"]
        assert (conf["backfill_id"], conf["ranges"]) == (LEDGER, [broken.label])
        assert set(airflow.task_states(BACKFILL, run_id).values()) == {"success"}

        states = Ledger(db, cfg, LEDGER).load()
        assert [s.status for s in states] == [DONE] * n
        assert sum(s.rows_read for s in states) == TRADES
        assert db.execute(count_all(cfg.keyspace, "user_trades")).one()[0] == generated.user_trade_rows

        frame.get_by_role("link", name="Back to the migration page").click()
        frame.locator("#failed-count").wait_for()
        assert frame.locator("#failed-count").inner_text() == "no failed ranges"
        assert frame.locator("#backfill-section .big").first.inner_text().startswith(
            f"{n} of {n} ranges done (100.0%)")
        assert frame.locator("#phases tr").nth(4).inner_text().split("\t")[:3] == ["backfill", "completed", run_id]
        assert "failed" not in frame.locator("#attention").inner_text()
        shot(page, "oncall_04_green")

        # --- what a backfill in progress looks like: rate, ETA, stalled ranges --------------------
        synthetic_ledger.plant(db, cfg, "night_run", 64, at=utcnow())
        page.reload()
        frame = page.frame_locator("iframe")
        frame.locator("#ledger-picker select").select_option("night_run")
        frame.get_by_role("button", name="Show").click()
        frame.locator("#stalled").wait_for()
        assert " rows/s since " in frame.locator("#rate").inner_text()
        assert " left" in frame.locator("#rate").inner_text()
        assert frame.locator("#stalled tr").count() == 1 + 6      # ranges 7, 17, ... 57 run, silent > 300 s
        shot(page, "oncall_05_mid_backfill", full_page=True)

        # --- after a broken parity run: the banner, the red bar, Repair ---------------------------
        add_parity_run(db, cfg, utcnow() - timedelta(minutes=5), status="broken", run_id="scheduled__broken",
                       missing=3)
        page.reload()
        frame = page.frame_locator("iframe")
        frame.locator("#parity-runs").wait_for()
        assert "the last parity run scheduled__broken is broken: missing 3" in frame.locator("#attention").inner_text()
        assert frame.locator("#parity-chart rect.broken").count() == 1
        assert frame.locator("#parity-runs").get_by_role("button", name="Repair").count() == 1
        shot(page, "oncall_06_broken_parity", full_page=True)
    except Exception:
        shot(page, "oncall_failure", full_page=True)
        raise
    finally:
        page.context.close()
