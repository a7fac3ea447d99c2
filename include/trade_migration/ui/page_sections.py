"""The sections of the "Trade migration" page: tables, the parity chart, and the one-click actions.

Airflow links are relative (`../dags/...` from <airflow>/trade-migration/) and open in the whole
window; actions are forms posting to this plugin's actions/ routes, which trigger the DAG
through Airflow's REST API as the signed-in user.
"""
from __future__ import annotations

from datetime import datetime
from html import escape
from urllib.parse import quote

from trade_migration.ui.attention import DAG_OF, SCHEDULED, truthful
from trade_migration.verify.report import report_href

BADGE = {"completed": "ok", "done": "ok", "clean": "ok", "pass": "ok", "ok": "ok", "success": "ok",
         "repaired": "warn", "stalled": "warn", "skipped": "idle", "running": "run", "queued": "run",
         "pending": "idle", "failed": "bad", "broken": "bad", "FAIL": "bad", "stopped": "bad", "refused": "bad",
         "rolled_back": "warn", "paused": "warn", "active": "ok"}
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:16px 24px;color:#1f2328;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.sub{color:#57606a;margin:0 0 8px}table{border-collapse:collapse;margin:4px 0 8px}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f6f8fa}
td.n{text-align:right;font-variant-numeric:tabular-nums}code{font-size:12px}
.b{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;font-weight:600}
.ok{background:#dafbe1;color:#116329}.warn{background:#fff8c5;color:#7d4e00}.bad{background:#ffebe9;color:#a40e26}
.run{background:#ddf4ff;color:#0550ae}.idle{background:#eaeef2;color:#424a53}
.bar{width:420px;height:14px;background:#eaeef2;border-radius:7px;overflow:hidden;display:inline-block;vertical-align:middle}
.bar span{display:block;height:100%;background:#2da44e}.grid{display:flex;flex-wrap:wrap;gap:0 40px}
.big{font-size:18px;font-weight:600}.alarm{border:2px solid #cf222e;background:#fff5f5;padding:6px 12px;margin:8px 0}
.calm{border:1px solid #2da44e;background:#f4fff6;padding:6px 12px;margin:8px 0}.alarm ul{margin:4px 0}
.note{border:1px solid #0969da;background:#f1f8ff;padding:6px 12px}form.act{display:inline;margin:0}
button{font:inherit;font-size:12px;padding:1px 8px;cursor:pointer}
"""
CHART_COLOURS = {"clean": "#2da44e", "repaired": "#d4a72c", "broken": "#cf222e"}
ERROR_SHOWN = 400      # characters of a range's last error on the page (the ledger keeps 2,000)


def _t(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC" if at else "—"


def _n(value) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else escape(str(value))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    return f"{h} h {rest // 60:02d} min" if h else f"{rest // 60} min {rest % 60:02d} s"


def badge(text: str | None) -> str:
    label = text or "not started"
    return f'<span class="b {BADGE.get(label, "idle")}">{escape(label)}</span>'


def _table(head: list[str], rows: list[list[str]], *, id_: str, numeric: set[int] = frozenset()) -> str:
    out = [f'<table id="{id_}"><tr>' + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f'<td{" class=n" if i in numeric else ""}>{c}</td>' for i, c in enumerate(row))
                   + "</tr>")
    return "".join(out) + "</table>"


def run_link(dag_id: str, run_id: str | None, task_id: str | None = None) -> str:
    """A link to the run (or one task of it) in Airflow's UI; the bare id when there is none."""
    if not run_id:
        return "—"
    href = f"../dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    if task_id:
        href += f"/tasks/{quote(task_id, safe='')}"
    return f'<a href="{escape(href)}" target="_top">{escape(run_id)}</a>'


def action(route: str, label: str, fields: dict[str, str]) -> str:
    """A one-click button: a form posting `fields` to actions/<route>."""
    hidden = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items())
    return (f'<form class="act" method="post" action="actions/{escape(route)}">{hidden}'
            f'<button type="submit">{escape(label)}</button></form>')


def runs_html(airflow: dict) -> str:
    runs = airflow.get("in_progress")
    if runs is None:
        return "<p>Airflow's runs are not known here.</p>"
    if not runs:
        return '<p id="no-runs">no migration run is queued or running</p>'
    return _table(["DAG", "run", "state", "started"],
                  [[f"<code>{escape(r['dag_id'])}</code>", run_link(r["dag_id"], r["run_id"]), badge(r["state"]),
                    _t(r.get("start_date"))] for r in runs], id_="in-progress")


def phases_html(rows: list[dict], airflow: dict) -> str:
    runs = airflow.get("runs", {})
    return _table(["phase", "state", "run", "by", "started", "finished"],
                  [[f"<code>{escape(r['phase'])}</code>", badge(truthful(r, runs)),
                    run_link(DAG_OF[r["phase"]], r["run_id"]) if r["run_id"] in runs else escape(r["run_id"] or "—"),
                    escape(r["actor"] or "—"), _t(r["started_at"]), _t(r["finished_at"])] for r in rows],
                  id_="phases")


def flags_html(flags: dict) -> str:
    return _table(["flag", "value", "version", "changed", "by", "why"],
                  [[f"<code>{escape(name)}</code>", f"<b>{escape(f['value'])}</b>", _n(f["version"]),
                    _t(f["changed_at"]), escape(f["changed_by"] or "—"), escape(f["reason"] or "—")]
                   for name, f in flags.items()], id_="flags", numeric={2})


def _pace(b: dict) -> str:
    rate = b.get("rows_per_s")
    if rate is None:
        return '<p id="rate" class="sub">no range has read rows in the current pass</p>'
    if not b["by_status"].get("running"):
        return (f'<p id="rate" class="sub">no range is running; the last pass read {rate:,.0f} rows/s from'
                f' {_t(b["pass_started_at"])} ({b["share_read"]:.1%} of the ring read)</p>')
    eta = f", about {_duration(b['eta_s'])} left" if b.get("eta_s") is not None else ""
    return (f'<p id="rate" class="big">{rate:,.0f} rows/s since {_t(b["pass_started_at"])}'
            f' ({b["share_read"]:.1%} of the ring read){escape(eta)}</p>')


def backfill_html(b: dict, status: dict, airflow: dict) -> str:
    share = b["done_share"]
    state = "completed" if b["complete"] else "running" if b["by_status"].get("running") else (
        "failed" if b["failed_total"] else "pending")
    head = (f'<p><span class="big">{_n(b["by_status"].get("done", 0))} of {_n(b["ranges"])} ranges done'
            f' ({share:.1%})</span> <span class="bar"><span style="width:{share * 100:.2f}%"></span></span>'
            f' {badge(state)}</p>'
            f'<p class="sub">backfill <code>{escape(b["backfill_id"])}</code>: rows read {_n(b["rows_read"])},'
            f' written {_n(b["rows_written"])}, rejected {_n(b["rows_rejected"])}; attempts {_n(b["attempts"])}</p>'
            + _pace(b))
    if b["coverage_error"]:
        head += f'<p>{badge("failed")} the ranges do not cover the ring: {escape(b["coverage_error"])}</p>'
    counts = _table(["status", "ranges"], [[badge(k), _n(v)] for k, v in b["by_status"].items()],
                    id_="range-counts", numeric={1})
    slow = _table(["slowest ranges", "seconds", "rows read"],
                  [[f"<code>{escape(s['range'])}</code>", f"{s['seconds']:.3f}", _n(s["rows_read"])]
                   for s in b["slowest"]],
                  id_="slowest", numeric={1, 2}) if b["slowest"] else "<p>no range finished yet</p>"
    return (head + f'<div class="grid"><div>{counts}</div><div>{slow}</div></div>'
            + _stalled_html(b, status) + _failed_html(b, status, airflow))


def _rerun(backfill_id: str, label: str) -> str:
    return action("rerun", "Rerun", {"backfill_id": backfill_id, "range": label})


def _stalled_html(b: dict, status: dict) -> str:
    if not b["stalled"]:
        return ""
    rows = [[f"<code>{escape(s['range'])}</code>", _duration(s["silent_s"]), _n(s["attempts"]), _n(s["rows_read"]),
             _rerun(b["backfill_id"], s["range"])] for s in b["stalled"]]
    return (f'<p>{badge("stalled")} {len(rows)} ranges running with no checkpoint for over'
            f' {_duration(status["stall_after_s"])}: their worker may be gone or stuck</p>'
            + _table(["stalled range", "silent for", "attempts", "rows read", ""], rows, id_="stalled",
                     numeric={2, 3}))


def _failed_html(b: dict, status: dict, airflow: dict) -> str:
    if not b["failed_total"]:
        return '<p id="failed-count">no failed ranges</p>'
    shown = f" (the first {len(b['failed'])} in token order)" if b["failed_total"] > len(b["failed"]) else ""
    rows = [[f"<code>{escape(f['range'])}</code>",
             f"<code>{escape(f['parent'])}</code>" if f.get("parent") else "—", _n(f.get("attempts", 0)),
             escape((f["error"] or "—")[:ERROR_SHOWN]), _rerun(b["backfill_id"], f["range"])] for f in b["failed"]]
    return (f'<p id="failed-count">{_n(b["failed_total"])} failed ranges{shown}. <b>Rerun</b> starts'
            f' user_trades_backfill for that range alone (default settings; change them in Airflow\'s trigger'
            f' form if its error names one); the run is green once the range is done.</p>'
            + _table(["failed range", "cut from", "attempts", "last error", ""], rows, id_="failed", numeric={2}))


def parity_svg(runs: list[dict], *, width: int = 560, height: int = 170) -> str:
    """Rows checked per run (bar), coloured by status; the differences found written above it."""
    if not runs:
        return "<p>no parity runs yet</p>"
    top, bottom, left = 18, 34, 8
    plot = height - top - bottom
    slot = (width - left) / len(runs)
    peak = max(r["rows_checked"] or 0 for r in runs) or 1
    parts = [f'<svg id="parity-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
             f' role="img" aria-label="last {len(runs)} parity runs">',
             f'<line x1="{left}" y1="{top + plot}" x2="{width}" y2="{top + plot}" stroke="#8c959f"/>']
    for i, r in enumerate(runs):
        rows = r["rows_checked"] or 0
        diffs = sum(r[k] or 0 for k in ("missing", "mismatched", "orphans"))
        h = max(2.0, plot * rows / peak)
        x = left + i * slot + slot * 0.15
        w = slot * 0.7
        colour = CHART_COLOURS.get(r["status"], "#8c959f")
        tip = (f"{r['run_id']} ({r['mode']}): {r['status']}, {rows:,} rows checked, missing {r['missing']},"
               f" mismatched {r['mismatched']}, orphans {r['orphans']}, repaired {r['repaired']}")
        parts.append(f'<rect class="run {escape(str(r["status"]))}" x="{x:.1f}" y="{top + plot - h:.1f}"'
                     f' width="{w:.1f}"'
                     f' height="{h:.1f}" fill="{colour}"><title>{escape(tip)}</title></rect>')
        label = f"{diffs:,} diff" if diffs else f"{rows:,}"
        parts.append(f'<text x="{x + w / 2:.1f}" y="{top + plot - h - 4:.1f}" font-size="10" text-anchor="middle"'
                     f' fill="{"#cf222e" if diffs else "#57606a"}">{escape(label)}</text>')
        when = r["started_at"]
        parts.append(f'<text x="{x + w / 2:.1f}" y="{top + plot + 14}" font-size="10" text-anchor="middle"'
                     f' fill="#57606a">{when:%m-%d}</text>' if when else "")
        parts.append(f'<text x="{x + w / 2:.1f}" y="{top + plot + 26}" font-size="10" text-anchor="middle"'
                     f' fill="#57606a">{escape(str(r["status"]))}</text>')
    return "".join(parts) + "</svg>"


def parity_html(runs: list[dict], airflow: dict) -> str:
    """The chart, then every run newest first: status, figures, its report, and for a broken one
    the repair (a full verification with repair on, which checks again what it rewrote)."""
    if not runs:
        return parity_svg(runs)
    known = airflow.get("runs", {})
    rows = []
    for r in reversed(runs):
        link = run_link("user_trades_verify", r["run_id"]) if r["run_id"] in known else escape(r["run_id"])
        act = action("repair", "Repair", {"run_id": r["run_id"]}) if r["status"] == "broken" else ""
        rows.append([link, badge(r["status"]), escape(r["mode"] or "—"), _n(r["rows_checked"] or 0),
                     _n(r["missing"] or 0), _n(r["mismatched"] or 0), _n(r["orphans"] or 0), _n(r["repaired"] or 0),
                     f'<a href="{escape(report_href(r["run_id"], "summary.html"))}">report</a> ·'
                     f' <a href="{escape(report_href(r["run_id"], "differences.csv"))}">CSV</a>', act])
    return parity_svg(runs) + _table(["run", "status", "mode", "rows checked", "missing", "mismatched", "orphans",
                                      "repaired", "report", ""], rows, id_="parity-runs", numeric={3, 4, 5, 6, 7})


def cleanup_html(c: dict) -> str:
    if c["finished"]:
        head = f'<p class="big">{badge("completed")} the migration is over: settled_trades was dropped</p>'
    elif c["passed"]:
        head = f'<p class="big">{badge("pass")} every gate passes: user_trades_cleanup will ask for approval</p>'
    else:
        failed = [g["name"] for g in c["gates"] if not g["passed"]]
        head = (f'<p class="big">{badge("FAIL")} {len(failed)} of {len(c["gates"])} gates fail:'
                f' {escape(", ".join(failed))} (the daily cleanup skips until they pass)</p>')
    days = c["days_remaining"]
    if days is None:
        wait = (f"reads are not on user_trades yet: {c['min_days']} days of reads on user_trades start"
                " with the switch")
    elif days == 0:
        wait = f"{c['min_days']} days of reads on user_trades: reached"
    else:
        wait = f"{days:.1f} days remaining of the {c['min_days']} days of reads (passes on {_t(c['passes_at'])})"
    rows = [[badge("pass" if g["passed"] else "FAIL"), f"<code>{escape(g['name'])}</code>", escape(g["detail"])]
            for g in c["gates"]]
    return head + f'<p id="days-remaining" class="big">{escape(wait)}</p>' + _table(["", "gate", "detail"], rows,
                                                                                   id_="gates")


def scheduling_html(airflow: dict) -> str:
    """Which DAGs run on their own, and whether they can (a paused DAG's schedule does nothing)."""
    paused = airflow.get("paused", {})
    rows = [[f"<code>{escape(dag)}</code>", badge("paused" if paused.get(dag) else "active") if dag in paused else "—",
             escape(what)] for dag, what in SCHEDULED.items()]
    return ("<p>These DAGs must be <b>unpaused</b> for the migration to go on by itself; the others run only when"
            " triggered (unpausing them is harmless: they have no schedule).</p>"
            + _table(["DAG", "state", "runs on its own"], rows, id_="schedules"))


def audit_html(entries: list[dict]) -> str:
    if not entries:
        return "<p>nothing audited yet</p>"
    return _table(["at", "phase", "action", "by", "why"],
                  [[_t(e["at"]), f"<code>{escape(e['phase'] or '—')}</code>", escape(e["action"] or "—"),
                    escape(e["actor"] or "—"), escape((e["reason"] or "—")[:300])] for e in entries], id_="audit")
