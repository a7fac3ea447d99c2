"""Who hears about an alert (core/alerts.py) or a parity run that is broken, or that healed,
repaired or resolved anything: pluggable, the log by default.

TM_NOTIFIER (else TM_PARITY_NOTIFIER, its older name, which still works) names a callable taking
a Notice ("package.module:function" or "package.module.function"), e.g. the webhook notifier
`migration_alerts:webhook` of dags/, a pager or chat hook; a notifier that fails is logged and
the notice goes to the log as well, so a broken run is never silent. Each notice sent counts in
the metric trade_migration.notices.<alert>.
"""
from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from trade_migration.core import metrics
from trade_migration.core.settings import NOTIFIER, PARITY_NOTIFIER

log = logging.getLogger(__name__)
# A run's figures a notice names (those its summary has, and not null).
FIGURES = ("missing", "mismatched", "orphans", "rejected", "repaired", "resolved", "healed")
PARITY_FAILED, PARITY_FIXED = "parity_failed", "parity_fixed"   # the alert names of the two parity notices


@dataclass(frozen=True)
class Notice:
    subject: str
    body: str
    details: dict = field(default_factory=dict)

    @property
    def alert(self) -> str:
        """Which alert this is (a name fixed in code, so it may name a metric)."""
        return self.details.get("alert") or "notice"


Notifier = Callable[[Notice], None]


def log_notifier(notice: Notice) -> None:
    log.error("%s\n%s", notice.subject, notice.body)


def resolve(path: str | None) -> Notifier:
    """The notifier a dotted path names; the log notifier when none is given."""
    if not path:
        return log_notifier
    module, _, name = path.partition(":") if ":" in path else path.rpartition(".")
    if not module or not name:
        raise ValueError(f"{NOTIFIER.name} must name a callable as 'package.module:function', got {path!r}")
    target = getattr(importlib.import_module(module), name)
    if not callable(target):
        raise ValueError(f"{NOTIFIER.name}={path!r} is not callable")
    return target


def notifier_path(env: Mapping[str, str] | None = None) -> str | None:
    """The notifier named by TM_NOTIFIER, else by TM_PARITY_NOTIFIER; None: the log."""
    return NOTIFIER.get(env) or PARITY_NOTIFIER.get(env)


def send(notice: Notice, env: Mapping[str, str] | None = None) -> None:
    path = notifier_path(env)
    metrics.incr(f"notices.{notice.alert}")
    try:
        resolve(path)(notice)
    except Exception as exc:  # noqa: BLE001 - the notice must still be seen
        # no traceback: a notifier's locals and frames could show its URL or headers
        log.error("notifier %r failed (%s: %s); logging the notice instead", path, type(exc).__name__, exc)
        metrics.incr("notices.failed")
        log_notifier(notice)


def failure_notice(*, dag_id: str, run_id: str, reason: str | None, failed_task: str | None,
                   report_folder: Path, range_label: str | None = None) -> Notice:
    """The notice for a failed verification run (a task of it failed for good: `reason` is its
    error), with the run's summary when its report exists."""
    summary_path = Path(report_folder) / "summary.json"
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError):
        summary = {}
    figures = _figures(summary)
    status = summary.get("status", "not checked")
    subject = f"user_trades parity {status}: {dag_id} run {run_id}"
    body = "\n".join(line for line in (
        f"reason: {reason or 'a task failed'}" + (f" (task {failed_task})" if failed_task else ""),
        f"figures: {figures}" if figures else "",
        f"report: {report_folder}" if summary else "no report was written (the run failed before concluding)",
    ) if line)
    return Notice(subject, body, {**summary, "alert": PARITY_FAILED, "dag_id": dag_id, "run_id": run_id,
                                  "phase": "verify", "task": failed_task, "range": range_label, "error": reason,
                                  "failed_task": failed_task, "report_folder": str(report_folder)})


def _figures(summary: dict) -> str:
    return ", ".join(f"{k} {summary[k]}" for k in FIGURES if summary.get(k) is not None)


def fixes_notice(*, run_id: str, summary: dict, report_folder: Path) -> Notice:
    """The notice for a run that ended well but changed user_trades on its way (healed, repaired
    or resolved): somebody should know why rows were written or deleted."""
    subject = (f"user_trades parity {summary['status']}: run {run_id} healed {summary.get('healed') or 0},"
               f" repaired {summary['repaired']}, resolved {summary['resolved']}")
    body = "\n".join((f"figures: {_figures(summary)}", f"report: {report_folder}"))
    return Notice(subject, body, {**summary, "alert": PARITY_FIXED, "run_id": run_id, "phase": "verify",
                                  "report_folder": str(report_folder)})
