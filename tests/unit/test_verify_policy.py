"""What a verification run does when nobody says, how its status follows from what it fixed, and
the notice of a run that fixed anything."""
from __future__ import annotations

from pathlib import Path

import pytest

from trade_migration.core import notify
from trade_migration.core.errors import ConfigError
from trade_migration.verify import parity
from trade_migration.verify.parity_run import Tally
from trade_migration.verify.policy import repairs, resolves_orphans

RUN_TYPES = ("scheduled", "backfill", "manual", "asset_triggered", "operator_triggered")


def test_only_the_nightly_schedule_heals_repairs_and_resolves_by_default():
    assert [repairs(None, t, {}) for t in RUN_TYPES] == [True, True, False, False, False]
    assert [resolves_orphans(None, t, {}) for t in RUN_TYPES] == [True, True, False, False, False]


def test_the_deployment_turns_each_nightly_fix_off_and_a_param_always_wins():
    off = {"TM_NIGHTLY_REPAIR": "off", "TM_NIGHTLY_RESOLVE_ORPHANS": "no"}
    assert [repairs(None, t, off) for t in RUN_TYPES] == [False] * 5
    assert [resolves_orphans(None, t, off) for t in RUN_TYPES] == [False] * 5
    assert repairs(None, "scheduled", {"TM_NIGHTLY_REPAIR": "off"}) is False
    assert resolves_orphans(None, "scheduled", {"TM_NIGHTLY_REPAIR": "off"}) is True
    for t in RUN_TYPES:
        assert (repairs(True, t, off), repairs(False, t, {}), resolves_orphans(True, t, off),
                resolves_orphans(False, t, {})) == (True, False, True, False)
    assert [repairs(None, "scheduled", {"TM_NIGHTLY_REPAIR": v}) for v in ("ON", " true ", "1", "yes", "0")] == [
        True, True, True, True, False]


def test_a_setting_that_is_neither_on_nor_off_is_refused():
    for bad in ("", "enabled", "2"):
        with pytest.raises(ConfigError, match=f"TM_NIGHTLY_RESOLVE_ORPHANS: expected on or off, got {bad!r}"):
            resolves_orphans(None, "scheduled", {"TM_NIGHTLY_RESOLVE_ORPHANS": bad})
    assert resolves_orphans(True, "scheduled", {"TM_NIGHTLY_RESOLVE_ORPHANS": "bad"}) is True   # not read


def test_repaired_means_every_difference_rewritten_or_resolved():
    assert parity.status_of(Tally(orphans=2, resolved=2), False) == parity.REPAIRED
    assert parity.status_of(Tally(missing=1, orphans=2, repaired=1, resolved=2), True) == parity.REPAIRED
    assert parity.status_of(Tally(missing=1, orphans=2, repaired=1, resolved=1), True) == parity.BROKEN
    assert parity.status_of(Tally(missing=1, orphans=2, repaired=1, resolved=2), False) == parity.BROKEN
    assert parity.status_of(Tally(resolved=0, late=3), True) == parity.CLEAN


def test_a_run_that_fixed_anything_is_told_with_its_figures(tmp_path: Path):
    summary = {"status": "clean", "missing": 0, "mismatched": 0, "orphans": 0, "rejected": 4, "repaired": 0,
               "resolved": 0, "healed": 3}
    notice = notify.fixes_notice(run_id="r7", summary=summary, report_folder=tmp_path)
    assert notice.subject == "user_trades parity clean: run r7 healed 3, repaired 0, resolved 0"
    assert notice.body == ("figures: missing 0, mismatched 0, orphans 0, rejected 4, repaired 0, resolved 0, healed 3"
                           f"\nreport: {tmp_path}")
    assert notice.details == {"alert": "parity_fixed", "phase": "verify", "run_id": "r7",
                              "report_folder": str(tmp_path), **summary}
    not_healed = notify.fixes_notice(run_id="r8", summary={**summary, "healed": None, "repaired": 2},
                                     report_folder=tmp_path)
    assert not_healed.subject == "user_trades parity clean: run r8 healed 0, repaired 2, resolved 0"
    assert "healed" not in not_healed.body
