"""The page's progress figures from ledger rows alone (no node needed)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from trade_migration.state.ledger import DONE, RUNNING, RangeState
from trade_migration.ui.progress import current_pass, rate_and_eta


def test_ranges_started_in_the_same_millisecond_are_one_pass():
    """Mapped tasks start ranges together: equal start times (the ledger keeps milliseconds) must not
    make the page compare ledger rows (it failed with "'<' not supported between RangeState")."""
    at = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    states = [RangeState(start, start + 100, status=status, checkpoint=start + 50, rows_read=500, started_at=at,
                         updated_at=at + timedelta(seconds=10))
              for start, status in ((0, RUNNING), (100, DONE), (200, RUNNING))]
    assert current_pass(states) == states
    assert rate_and_eta(states, at + timedelta(seconds=10))["rows_per_s"] == 150.0
