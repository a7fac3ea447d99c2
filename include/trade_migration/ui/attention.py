"""What needs a person now, and what each phase really is: the page's banner and its phase badges.

A phase record says "running" from the moment its run starts until the run records the end; a
run killed on the way leaves it so. Where Airflow knows the run (the plugin passes its state
in `airflow`), the badge says what the run is; a run outside Airflow (the command line) keeps
the record's word.
"""
from __future__ import annotations

from trade_migration.state import phases
from trade_migration.state.flags import DUAL_WRITE, NEW_ONLY, READ_PATH, RETIRED

# The DAG that runs each phase, and which DAGs must be unpaused for the migration to go on alone.
DAG_OF = {name: f"user_trades_{name}" for name in phases.REQUIRES}
SCHEDULED = {"user_trades_verify": "the nightly parity check at 02:00 UTC and the check after each complete backfill",
             "user_trades_cleanup": "the daily cleanup check (it asks for approval once every gate passes)"}
LIVE = {"queued", "running"}


def truthful(phase: dict, runs: dict[str, dict]) -> str | None:
    """The phase's state as the page shows it: 'stopped' for a record left running by a run that ended."""
    status = phase["status"]
    run = runs.get(phase["run_id"] or "")
    if status == phases.RUNNING and run is not None and run["state"] not in LIVE:
        return "stopped"
    return status


def contradictions(phase_rows: list[dict], flags: dict, legacy_exists: bool) -> list[str]:
    """Phase records that say something the flags or the tables deny."""
    status = {r["phase"]: r["status"] for r in phase_rows}
    out = []
    if status.get(phases.READ_PATH) == phases.COMPLETED and flags[READ_PATH]["value"] != "user_trades":
        out.append(f"phase read_path is completed but read_path is {flags[READ_PATH]['value']!r}")
    if status.get(phases.DUAL_WRITE) == phases.COMPLETED and flags[DUAL_WRITE]["value"] == "off":
        out.append("phase dual_write is completed but dual_write is 'off': new trades miss user_trades")
    if status.get(phases.CLEANUP) == phases.COMPLETED and legacy_exists:
        out.append("phase cleanup is completed but settled_trades still exists")
    if not legacy_exists and flags[DUAL_WRITE]["value"] not in (NEW_ONLY, RETIRED):
        out.append(f"settled_trades is gone but dual_write is {flags[DUAL_WRITE]['value']!r}")
    return out


def banner(status: dict, airflow: dict) -> list[dict]:
    """Every item that needs attention, most urgent first: {"text", "anchor"} (the page section)."""
    items: list[dict] = []
    runs = airflow.get("runs", {})
    for row in status["phases"]:
        shown = truthful(row, runs)
        if shown == phases.FAILED:
            items.append({"text": f"phase {row['phase']} failed (run {row['run_id']})", "anchor": "phases-section"})
        elif shown == "stopped":
            items.append({"text": f"phase {row['phase']} is recorded running, but its run {row['run_id']} is"
                                  f" {runs[row['run_id']]['state']}: it stopped without finishing",
                          "anchor": "phases-section"})
    b = status["backfill"]
    if b["failed_total"]:
        items.append({"text": f"{b['failed_total']} failed ranges in backfill {b['backfill_id']}: rerun them below",
                      "anchor": "failed"})
    if b["stalled"]:
        items.append({"text": f"{len(b['stalled'])} ranges of backfill {b['backfill_id']} stalled (no checkpoint"
                              f" for over {status['stall_after_s']:.0f} s)", "anchor": "stalled"})
    if status["parity"] and status["parity"][-1]["status"] == "broken":
        last = status["parity"][-1]
        items.append({"text": f"the last parity run {last['run_id']} is broken: missing {last['missing']},"
                              f" mismatched {last['mismatched']}, orphans {last['orphans']}",
                      "anchor": "parity-section"})
    items += [{"text": text, "anchor": "phases-section"}
              for text in contradictions(status["phases"], status["flags"], status["cleanup"]["legacy_table_exists"])]
    items += [{"text": text, "anchor": "scheduling"} for text in paused_follow_ups(status, airflow)]
    return items


def paused_follow_ups(status: dict, airflow: dict) -> list[str]:
    """Scheduled work that cannot happen because its DAG is paused."""
    paused = airflow.get("paused", {})
    record = {r["phase"]: r["status"] for r in status["phases"]}
    out = []
    if paused.get("user_trades_verify") and record.get(phases.BACKFILL) in (phases.RUNNING, phases.COMPLETED):
        out.append("user_trades_verify is paused: the check that follows a complete backfill, and the nightly"
                   " one, will not run until it is unpaused")
    if paused.get("user_trades_cleanup") and status["cleanup"]["passed"] and not status["cleanup"]["finished"]:
        out.append("every cleanup gate passes but user_trades_cleanup is paused: nobody will be asked to approve")
    return out
