"""The rejects a verification run lists: the `cap` lowest trade ids of all it saw, whatever order
its threads and tasks saw them in, so two runs over the same tables list the same ones (their
counts by reason are kept whole, beside the list)."""
from __future__ import annotations

import heapq
import itertools
import threading
from collections import Counter

from trade_migration.core.convert import Reject

# A listed reject, JSON-ready: [trade_id, range index, reason]. A triple rather than a dict: the list
# holds up to `cap` (10,000 by default) of them from the survey to the report; 10,000 take 3.3 MB so
# against 4.7 MB as dicts, the reason strings being most of the rest.
TRADE_ID = 0


class Rejects:
    """At most `cap` entries; past that, an entry with a lower trade id pushes out the highest one
    kept. `note` may be called from several threads: rejects are rare, so one list under a lock
    costs little and holds `cap` entries whatever the threads."""

    def __init__(self, cap: int):
        self.cap = cap
        self.by_reason: Counter = Counter()             # every reject, by code
        self._heap: list[tuple[int, int, tuple]] = []   # (-trade_id, arrival, entry): the highest id on top
        self._arrival = itertools.count()               # orders equal ids without comparing entries
        self._lock = threading.Lock()

    def note(self, i: int, trade_id: int, out: Reject) -> None:
        """A trade of range `i` the conversion rejected: counted by reason, listed if among the lowest."""
        with self._lock:
            self.by_reason[out.code] += 1
            item = (-trade_id, next(self._arrival), (trade_id, i, out.reason))
            if len(self._heap) < self.cap:
                heapq.heappush(self._heap, item)
            elif self._heap and item[0] > self._heap[0][0]:
                heapq.heapreplace(self._heap, item)

    def sorted(self) -> list[tuple[int, int, str]]:
        """The entries kept, by trade id."""
        return [entry for _, _, entry in sorted(self._heap, key=lambda item: (-item[0], item[1]))]
