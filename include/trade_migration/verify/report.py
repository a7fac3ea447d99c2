"""A verification run's files: the differences (CSV, capped; column repair says how each was
fixed, or why not), the rejects, and a summary (what was found, healed, repaired and resolved)
with a per-range chart (HTML, drawn with pandas' Styler bars: matplotlib is not in the environment).

Files go to $TM_REPORT_DIR/verify/<run id>/ (default ./reports), a folder any later process can
find from the run id alone (the failure notifier does).
"""
from __future__ import annotations

import csv
import html
import json
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from trade_migration.core import clock
from trade_migration.core.settings import report_root
from trade_migration.verify.parity import Outcome
from trade_migration.verify.parity_run import SAMPLED, Run
from trade_migration.verify.windows import MAX_MS, MIN_MS

DIFF_COLUMNS = ("kind", "direction", "range", "trade_id", "user_id", "symbol_id", "settled_at", "side",
                "columns", "expected", "actual", "detail", "source_written_at", "origin", "repair")
CHART_COLUMNS = ("missing", "mismatched", "orphans", "repaired", "resolved", "rejected", "late")


# Where the migration page's plugin serves the reports, below the Airflow UI's base URL.
SERVED_AT = "/trade-migration/"


def _folder_name(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)


def report_dir(run_id: str, env: Mapping[str, str] | None = None) -> Path:
    return report_root(env) / "verify" / _folder_name(run_id)


def report_href(run_id: str, name: str) -> str:
    """The report file's path as the plugin serves it, relative to the page (report_dir's folder)."""
    return f"reports/verify/{quote(_folder_name(run_id), safe='')}/{name}"


def origin(run: Run, written_us: int | None) -> str:
    """Whether the trade was written while dual writes were on (a dual-write failure) or before (the backfill's)."""
    if written_us is None or run.dual_write_since_us is None:
        return ""
    return "dual_write" if written_us >= run.dual_write_since_us else "backfill"


def _when(us: int | None) -> str:
    return clock.from_micros(us).isoformat() if us else ""


def checked_rows(run: Run) -> str:
    """Which rows a run checks, in words: every row, or those settled in its windows (UTC)."""
    if not run.windows:
        return "every row"
    spans = []
    for (start, end), (low, high) in zip(run.windows, run.window_bounds, strict=True):
        if start == MIN_MS:   # (a window open at both ends would be every row: no windows)
            spans.append(f"before {high:%Y-%m-%d %H:%M:%S}")
        elif end == MAX_MS:
            spans.append(f"from {low:%Y-%m-%d %H:%M:%S} on")
        else:
            spans.append(f"from {low:%Y-%m-%d %H:%M:%S} until {high:%Y-%m-%d %H:%M:%S}")
    return "the rows settled " + " and ".join(spans) + " (UTC)"


def _instant(at: datetime) -> str:
    return at.isoformat() + "Z"


def write(run: Run, outcome: Outcome, directory: Path | None = None) -> dict[str, Path]:
    """Write every file of the run's report; returns their paths."""
    folder = Path(directory or report_dir(run.run_id))
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"differences": folder / "differences.csv", "rejected": folder / "rejected.csv",
             "summary": folder / "summary.json", "chart": folder / "summary.html"}
    with paths["differences"].open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(DIFF_COLUMNS)
        for d in outcome.diffs:
            out.writerow([d["kind"], d["direction"], run.ranges[d["range"]].label, d["trade_id"], d["user_id"],
                          d["symbol_id"], d["settled_at"], d["side"], ";".join(d["columns"]),
                          json.dumps(d["expected"], sort_keys=True), json.dumps(d["actual"], sort_keys=True),
                          d["detail"], _when(d["source_written_us"]), origin(run, d["source_written_us"]),
                          d["repair"]])
    with paths["rejected"].open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(("trade_id", "range", "reason"))
        for trade_id, i, reason in outcome.rejects:
            out.writerow((trade_id, run.ranges[i].label, reason))
    facts = run_facts(run)
    summary = {**facts, **outcome.summary(), "capped_at": run.report_cap,
               "files": {k: str(p) for k, p in paths.items()}}
    paths["summary"].write_text(json.dumps(summary, indent=2, default=str))
    paths["chart"].write_text(summary_html(run, outcome, summary))
    return paths


def run_facts(run: Run) -> dict:
    """What is needed to reproduce the run: mode, seed, share, the ranges and the windows checked."""
    sampled = run.mode == SAMPLED
    return {"run_id": run.run_id, "mode": run.mode, "started_at": run.started_at.isoformat(), "seed": run.seed,
            "sample_share": run.sample_share if sampled else None, "splits": len(run.ranges),
            "recent_hours": run.recent_hours if sampled else None,
            "settled_windows": [[_instant(a), _instant(b)] for a, b in run.window_bounds] if sampled else "all",
            "repair": run.repair, "resolve_orphans": run.resolve_orphans, "resolve_limit": run.resolve_limit,
            "narrowed_by_digests": run.narrow,
            "dual_write_since": _when(run.dual_write_since_us) or None,
            "new_only_since": _when(run.new_only_since_us) or None}


def per_range(run: Run, outcome: Outcome) -> pd.DataFrame:
    rows = [{"range": run.ranges[i].label, "settled_trades": t.settled, "user_trades": t.user_trades,
             "source_rows_checked": t.source_rows, "target_rows_checked": t.target_rows,
             **{c: getattr(t, c) for c in CHART_COLUMNS}}
            for i, t in sorted(outcome.tallies.items())]
    return pd.DataFrame(rows).set_index("range") if rows else pd.DataFrame()


STATUS_STYLE = {"clean": ("#116329", "#dafbe1", "clean: user_trades equals the conversion of settled_trades"),
                "repaired": ("#7d4e00", "#fff8c5", "repaired: differences were found and written back, each read"
                                                    " back before the run concluded"),
                "broken": ("#a40e26", "#ffebe9", "broken: user_trades differs from settled_trades")}
DIFFS_SHOWN = 50      # differences listed in the HTML (the CSV has up to report_cap)


def summary_html(run: Run, outcome: Outcome, summary: dict) -> str:
    """The run at a glance: its verdict in its colour, the figures, the first differences and the
    per-range chart; the CSVs sit beside it (relative links, as the migration page serves them)."""
    frame = per_range(run, outcome)
    if frame.empty:
        table = "<p>No range was read.</p>"
    else:
        style = frame.style.set_caption("Per token range: rows counted and differences found"
                                        " (each column's bars scale to its largest value)")
        for column in frame.columns:
            color = "#e07b7b" if column in CHART_COLUMNS else "#9ec5e8"
            style = style.bar(subset=[column], color=color, vmin=0, vmax=max(1, int(frame[column].max())))
        table = style.to_html()
    fg, bg, verdict = STATUS_STYLE.get(outcome.status, ("#424a53", "#eaeef2", outcome.status))
    figures = ("rows_checked", "missing", "mismatched", "orphans", "new_only", "rejected", "repaired", "resolved",
               "healed", "late", "duration_s")
    facts = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(summary.get(k, '')))}</td></tr>"
                    for k in figures)
    setup = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v, default=str))}</td></tr>"
                    for k, v in run_facts(run).items())
    shown = outcome.diffs[:DIFFS_SHOWN]
    diffs = ("<p>No differences.</p>" if not outcome.diffs else
             f"<p>{len(outcome.diffs):,} differences listed"
             f"{f', the first {len(shown)} here' if len(outcome.diffs) > len(shown) else ''}"
             " (all of them in <a href='differences.csv'>differences.csv</a>):</p><table><tr>"
             + "".join(f"<th>{c}</th>" for c in ("kind", "range", "trade_id", "user_id", "columns", "repair"))
             + "</tr>" + "".join(
                 "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
                     d["kind"], run.ranges[d["range"]].label, d["trade_id"], d["user_id"], ";".join(d["columns"]),
                     d["repair"] or "")) + "</tr>" for d in shown) + "</table>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>user_trades parity {html.escape(run.run_id)}"
            f"</title><style>body{{font-family:sans-serif;margin:16px 24px}} td,th{{padding:2px 8px;"
            f"border:1px solid #d0d7de}} table{{border-collapse:collapse;margin:6px 0}}"
            f" .verdict{{color:{fg};background:{bg};border:2px solid {fg};padding:8px 14px;font-size:18px}}</style>"
            f"</head><body><h1>user_trades parity: {html.escape(outcome.status)}</h1>"
            f"<p id='verdict' class='verdict {html.escape(outcome.status)}'>{html.escape(verdict)}</p>"
            f"<p>run <code>{html.escape(run.run_id)}</code> · <a href='differences.csv'>differences.csv</a> ·"
            f" <a href='rejected.csv'>rejected.csv</a> · <a href='summary.json'>summary.json</a></p>"
            f"<h2>Figures</h2><table>{facts}</table><h2>First differences</h2>{diffs}"
            f"<h2>Per range</h2>{table}<h2>How the run was set up</h2><table>{setup}</table></body></html>")


def format_summary(run: Run, outcome: Outcome) -> str:
    """One log line."""
    s = outcome.summary()
    return (f"parity {s['status']} ({run.mode}, seed {run.seed}, {len(run.ranges)} ranges, {checked_rows(run)}):"
            f" {s['rows_checked']:,} rows checked, missing {s['missing']}, mismatched {s['mismatched']},"
            f" orphans {s['orphans']}, settled in new_only {s['new_only']}, rejected {s['rejected']},"
            f" repaired {s['repaired']}, resolved {s['resolved']},"
            f" healed {s['healed'] if s['healed'] is not None else '-'},"
            f" written during the run {s['late']}, {s['duration_s']}s")
