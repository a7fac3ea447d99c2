"""The "Trade migration" page as one server-rendered HTML document, from status.migration_status.

Plain HTML and an inline SVG chart, no scripts: it renders in the Airflow UI's plugin frame,
in a screenshot, and with curl alike. Every value is escaped; nothing here reads the database.
Links are relative to the page (served at <airflow>/trade-migration/), so they work the same
on its own URL and inside the UI's frame; links into Airflow open in the whole window. While a
run is in progress or a range is running, the page reloads itself.
"""
from __future__ import annotations

from html import escape

from trade_migration.ui import attention, page_sections
from trade_migration.ui.page_sections import CSS, _t, badge

REFRESH_S = 15


def picker(status: dict) -> str:
    """A form choosing the ledger shown (a GET to this same page, so it works inside the frame)."""
    current = status["backfill"]["backfill_id"]
    ids = status["ledgers"] if current in status["ledgers"] else [current, *status["ledgers"]]
    options = "".join(f'<option value="{escape(i)}"{" selected" if i == current else ""}>{escape(i)}</option>'
                      for i in ids)
    return (f'<form id="ledger-picker" method="get" action="./">backfill ledger <select name="backfill_id">'
            f'{options}</select> <button type="submit">Show</button></form>')


def banner_html(items: list[dict]) -> str:
    if not items:
        return f'<div id="attention" class="calm">{badge("ok")} nothing needs attention</div>'
    rows = "".join(f'<li><a href="#{escape(i["anchor"])}">{escape(i["text"])}</a></li>' for i in items)
    return f'<div id="attention" class="alarm"><b>Needs attention ({len(items)})</b><ul>{rows}</ul></div>'


def in_progress(status: dict, airflow: dict) -> bool:
    return bool(airflow.get("in_progress")) or status["backfill"]["by_status"].get("running", 0) > 0


def render(status: dict, *, airflow: dict | None = None, json_href: str = "status.json", notice: str = "") -> str:
    """The whole page. `airflow`: what the plugin knows of Airflow (runs by id, runs in progress,
    paused DAGs, whether the viewer may trigger); without it the page shows the records alone."""
    airflow = airflow or {}
    items = attention.banner(status, airflow)
    refresh = f'<meta http-equiv="refresh" content="{REFRESH_S}">' if in_progress(status, airflow) else ""
    s = page_sections
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Trade migration</title>'
        f"{refresh}<style>{CSS}</style></head><body>"
        f"<h1>Trade migration: settled_trades → user_trades</h1>"
        f'<p class="sub">keyspace <code>{escape(status["keyspace"])}</code>, read {_t(status["checked_at"])}'
        f'{f" · reloads every {REFRESH_S} s while work runs" if refresh else ""}'
        f' · <a href="{escape(json_href)}">JSON</a></p>'
        + (f'<p id="notice" class="note">{notice}</p>' if notice else "")
        + banner_html(items)
        + f'<section id="runs-section"><h2>Runs in progress</h2>{s.runs_html(airflow)}</section>'
        f'<section id="phases-section"><h2>Phases</h2>{s.phases_html(status["phases"], airflow)}</section>'
        f'<section id="flags-section"><h2>Flags</h2>{s.flags_html(status["flags"])}</section>'
        f'<section id="backfill-section"><h2>Backfill by token range</h2>{picker(status)}'
        f'{s.backfill_html(status["backfill"], status, airflow)}</section>'
        f'<section id="parity-section"><h2>Last parity runs</h2>{s.parity_html(status["parity"], airflow)}</section>'
        f'<section id="cleanup-section"><h2>Cleanup gates</h2>{s.cleanup_html(status["cleanup"])}</section>'
        f'<section id="scheduling"><h2>Scheduling</h2>{s.scheduling_html(airflow)}</section>'
        f'<section id="audit-section"><h2>Last audit entries</h2>{s.audit_html(status["audit"])}</section>'
        "</body></html>")


def render_error(keyspace: str, error: str) -> str:
    """What the page shows when the state cannot be read (no keyspace yet, the cluster down)."""
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Trade migration</title>'
            f"<style>{CSS}</style></head><body><h1>Trade migration</h1>"
            f'<p>{badge("failed")} the migration state in keyspace <code>{escape(keyspace)}</code> cannot be read:'
            f" {escape(error)}</p>"
            "<p>Before phase 1 there is nothing to show: run <code>user_trades_create_table</code>.</p>"
            "</body></html>")


def render_result(title: str, message: str, *, ok: bool, back: str = "./") -> str:
    """The answer to an action (a rerun triggered, or refused), with the way back to the page."""
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Trade migration</title>'
            f"<style>{CSS}</style></head><body><h1>{escape(title)}</h1>"
            f'<p id="result">{badge("ok" if ok else "refused")} {message}</p>'
            f'<p><a id="back" href="{escape(back)}">Back to the migration page</a></p></body></html>')
