"""Watches the ranges one copier works on and alerts when one stops checkpointing.

A copier stuck in a page (a replica frozen mid-read, a hung connection) writes nothing and fails
nothing until its page timeout, if ever; the ledger shows it as a range `running` whose checkpoint
does not move. A thread beside the copy reads the ledger every so often and tells the notifier,
once per range and attempt, of any range silent for longer than TM_STALL_AFTER_S (state/ledger.py
stalled()). A worker that dies is Airflow's to see: its task fails (an alert of its own) or retries.
"""
from __future__ import annotations

import logging
import threading

from trade_migration.core import alerts, metrics, notify
from trade_migration.core.clock import now
from trade_migration.core.settings import STALL_AFTER_S
from trade_migration.core.tokens import TokenRange
from trade_migration.state.ledger import Ledger, silent_for, stalled, within

log = logging.getLogger(__name__)


class StallWatch:
    """A context manager: watches while the block runs. check() is one look (the thread's loop)."""

    def __init__(self, ledger: Ledger, spans: list[TokenRange], *, run_id: str | None = None,
                 dag_id: str | None = None, after_s: float | None = None):
        self.ledger, self.spans, self.run_id, self.dag_id = ledger, spans, run_id, dag_id
        self.after_s = float(STALL_AFTER_S.get() if after_s is None else after_s)
        self.every = min(max(self.after_s / 4, 0.2), 60.0)
        self.told: set[tuple[int, int]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="stall-watch", daemon=True)

    def __enter__(self) -> StallWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - watching must never stop the copy
                log.warning("stall check failed (%s); trying again in %.0f s", exc, self.every)

    def check(self) -> list[str]:
        """Alert each newly stalled range of these spans; their labels."""
        at = now()
        new = [rs for rs in stalled(within(self.ledger.load(), self.spans), at=at, after_s=self.after_s)
               if (rs.range_start, rs.attempts) not in self.told]
        for rs in new:
            self.told.add((rs.range_start, rs.attempts))
            metrics.incr("backfill.ranges_stalled")
            notify.send(alerts.range_stalled(
                backfill_id=self.ledger.backfill_id, label=rs.label, seconds=silent_for(rs, at),
                attempts=rs.attempts, checkpoint=rs.checkpoint, run_id=self.run_id, dag_id=self.dag_id))
        return [rs.label for rs in new]
