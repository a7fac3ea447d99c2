"""What a verification run does when nobody says: the nightly schedule samples, heals, repairs and
resolves orphans; a run started by hand or by a finished backfill checks everything and only reports.

Param defaults apply to every run of a DAG, so the choice is made from the run's type; a Param
given for the run always wins. Each nightly default is a setting of the deployment
(TM_NIGHTLY_MODE, TM_NIGHTLY_REPAIR, TM_NIGHTLY_RESOLVE_ORPHANS).
"""
from __future__ import annotations

from collections.abc import Mapping

from trade_migration.core.errors import ConfigError
from trade_migration.core.settings import NIGHTLY_MODE, NIGHTLY_REPAIR, NIGHTLY_RESOLVE_ORPHANS, Setting
from trade_migration.verify.parity_run import FULL, MODES

# Airflow's run types of the timetable: its own runs, and the same intervals run again by a backfill.
NIGHTLY_RUN_TYPES = ("scheduled", "backfill")


def nightly(run_type: str) -> bool:
    return str(run_type) in NIGHTLY_RUN_TYPES


def default_mode(run_type: str, env: Mapping[str, str] | None = None) -> str:
    """The mode of a run started without one. A manual run, or one triggered by a finished
    backfill, checks everything; the nightly schedule runs TM_NIGHTLY_MODE, sampled unless set
    (bench/verify_speed.py measures what a sample costs against a full run)."""
    if not nightly(run_type):
        return FULL
    mode = NIGHTLY_MODE.get(env)
    if mode not in MODES:
        raise ConfigError(f"{NIGHTLY_MODE.name} must be one of {', '.join(MODES)} (got {mode!r})")
    return mode


def _switch(param: bool | None, run_type: str, setting: Setting, env: Mapping[str, str] | None) -> bool:
    """The Param when given; else the deployment's setting for a nightly run, off for any other."""
    if param is not None:
        return bool(param)
    return nightly(run_type) and bool(setting.get(env))


def repairs(param: bool | None, run_type: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether the run heals queued dual writes and rewrites missing and mismatched rows."""
    return _switch(param, run_type, NIGHTLY_REPAIR, env)


def resolves_orphans(param: bool | None, run_type: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether the run deletes the orphans it confirms (verify/resolve.py says when it still will not)."""
    return _switch(param, run_type, NIGHTLY_RESOLVE_ORPHANS, env)
