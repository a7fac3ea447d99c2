"""The "Trade migration" page as one server-rendered HTML document, from status.migration_status.

Plain HTML and an inline SVG chart, no scripts: it renders in the Airflow UI's plugin frame,
in a screenshot, and with curl alike. Every value is escaped; nothing here reads the database.
"""
from __future__ import annotations

from datetime import datetime
from html import escape

BADGE = {"completed": "ok", "done": "ok", "clean": "ok", "pass": "ok", "repaired": "warn", "running": "run",
         "pending": "idle", "failed": "bad", "broken": "bad", "FAIL": "bad", "rolled_back": "warn"}
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
.big{font-size:18px;font-weight:600}
"""
CHART_COLOURS = {"clean": "#2da44e", "repaired": "#d4a72c", "broken": "#cf222e"}


def _t(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC" if at else "—"


def _n(value) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else escape(str(value))


def badge(text: str | None) -> str:
    label = text or "not started"
    return f'<span class="b {BADGE.get(label, "idle")}">{escape(label)}</span>'


def _table(head: list[str], rows: list[list[str]], *, id_: str, numeric: set[int] = frozenset()) -> str:
    out = [f'<table id="{id_}"><tr>' + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f'<td{" class=n" if i in numeric else ""}>{c}</td>' for i, c in enumerate(row))
                   + "</tr>")
    return "".join(out) + "</table>"


def phases_html(rows: list[dict]) -> str:
    return _table(["phase", "state", "run", "by", "started", "finished"],
                  [[f"<code>{escape(r['phase'])}</code>", badge(r["status"]), escape(r["run_id"] or "—"),
                    escape(r["actor"] or "—"), _t(r["started_at"]), _t(r["finished_at"])] for r in rows],
                  id_="phases")


def flags_html(flags: dict) -> str:
    return _table(["flag", "value", "version", "changed", "by", "why"],
                  [[f"<code>{escape(name)}</code>", f"<b>{escape(f['value'])}</b>", _n(f["version"]),
                    _t(f["changed_at"]), escape(f["changed_by"] or "—"), escape(f["reason"] or "—")]
                   for name, f in flags.items()], id_="flags", numeric={2})


def backfill_html(b: dict) -> str:
    share = b["done_share"]
    head = (f'<p><span class="big">{_n(b["by_status"].get("done", 0))} of {_n(b["ranges"])} ranges done'
            f' ({share:.1%})</span> <span class="bar"><span style="width:{share * 100:.2f}%"></span></span>'
            f' {badge("completed" if b["complete"] else "running" if b["ranges"] else "pending")}</p>'
            f'<p class="sub">backfill <code>{escape(b["backfill_id"])}</code>: rows read {_n(b["rows_read"])},'
            f' written {_n(b["rows_written"])}, rejected {_n(b["rows_rejected"])}; attempts {_n(b["attempts"])}</p>')
    if b["coverage_error"]:
        head += f'<p>{badge("failed")} the ranges do not cover the ring: {escape(b["coverage_error"])}</p>'
    counts = _table(["status", "ranges"], [[badge(k), _n(v)] for k, v in b["by_status"].items()],
                    id_="range-counts", numeric={1})
    slow = _table(["slowest ranges", "seconds", "rows read"],
                  [[f"<code>{escape(s['range'])}</code>", f"{s['seconds']:.3f}", _n(s["rows_read"])]
                   for s in b["slowest"]],
                  id_="slowest", numeric={1, 2}) if b["slowest"] else "<p>no range finished yet</p>"
    if b["failed_total"]:
        shown = (f" (the first {len(b['failed'])} in token order)" if b["failed_total"] > len(b["failed"]) else "")
        failed = (f'<p id="failed-count">{_n(b["failed_total"])} failed ranges{shown}; clear their mapped'
                  f' tasks, or rerun the backfill with the same backfill_id, to resume them</p>'
                  + _table(["failed range", "last error"],
                           [[f"<code>{escape(f['range'])}</code>", escape(f["error"] or "—")] for f in b["failed"]],
                           id_="failed"))
    else:
        failed = '<p id="failed-count">no failed ranges</p>'
    return head + f'<div class="grid"><div>{counts}</div><div>{slow}</div></div>' + failed


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


def cleanup_html(c: dict) -> str:
    if c["finished"]:
        head = f'<p class="big">{badge("completed")} the migration is over: settled_trades was dropped</p>'
    elif c["passed"]:
        head = (f'<p class="big">{badge("pass")} every gate passes: user_trades_cleanup will ask for approval</p>')
    else:
        failed = [g["name"] for g in c["gates"] if not g["passed"]]
        head = (f'<p class="big">{badge("FAIL")} {len(failed)} of {len(c["gates"])} gates fail:'
                f' {escape(", ".join(failed))}</p>')
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


def render(status: dict, *, json_href: str = "status.json") -> str:
    """The whole page."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Trade migration</title>'
        f"<style>{CSS}</style></head><body>"
        f"<h1>Trade migration: settled_trades → user_trades</h1>"
        f'<p class="sub">keyspace <code>{escape(status["keyspace"])}</code>, read {_t(status["checked_at"])}'
        f' · <a href="{escape(json_href)}">JSON</a></p>'
        f'<section id="phases-section"><h2>Phases</h2>{phases_html(status["phases"])}</section>'
        f'<section id="flags-section"><h2>Flags</h2>{flags_html(status["flags"])}</section>'
        f'<section id="backfill-section"><h2>Backfill by token range</h2>{backfill_html(status["backfill"])}</section>'
        f'<section id="parity-section"><h2>Last parity runs</h2>{parity_svg(status["parity"])}</section>'
        f'<section id="cleanup-section"><h2>Cleanup gates</h2>{cleanup_html(status["cleanup"])}</section>'
        "</body></html>")


def render_error(keyspace: str, error: str) -> str:
    """What the page shows when the state cannot be read (no keyspace yet, the cluster down)."""
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Trade migration</title>'
            f"<style>{CSS}</style></head><body><h1>Trade migration</h1>"
            f'<p>{badge("failed")} the migration state in keyspace <code>{escape(keyspace)}</code> cannot be read:'
            f" {escape(error)}</p>"
            "<p>Before phase 1 there is nothing to show: run <code>user_trades_create_table</code>.</p>"
            "</body></html>")
