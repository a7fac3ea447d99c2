"""Asynchronous writes with a bounded number in flight, and per-group completion tracking.

The backfill submits a page's rows and moves on to read the next page; a page counts as
written (and may be checkpointed) only when every write of it, and of every page before it,
has been acknowledged.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

from cassandra import OperationTimedOut, Unavailable, WriteTimeout
from cassandra.cluster import NoHostAvailable, Session

from trade_migration.core.settings import IN_FLIGHT

TRANSIENT = (WriteTimeout, Unavailable, OperationTimedOut, NoHostAvailable)


class BoundedWriter:
    def __init__(self, session: Session, max_in_flight: int = IN_FLIGHT, retries: int = 3):
        self.session = session
        self.retries = retries
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._outstanding: OrderedDict[object, int] = OrderedDict()
        self._in_flight = 0
        self._error: BaseException | None = None

    def open_group(self, group: object) -> None:
        with self._lock:
            self._outstanding[group] = 1  # held open until close_group

    def close_group(self, group: object) -> None:
        self._done(group)

    def submit(self, stmt, params, group: object) -> None:
        if self._error is not None:
            raise self._error
        self._slots.acquire()
        with self._lock:
            self._outstanding[group] += 1
            self._in_flight += 1
        self._send(stmt, params, group, 0)

    def _send(self, stmt, params, group, attempt: int) -> None:
        future = self.session.execute_async(stmt, params)
        future.add_callbacks(self._ok, self._failed, callback_args=(group,),
                             errback_args=(stmt, params, group, attempt))

    def _ok(self, _result, group) -> None:
        self._slots.release()
        with self._lock:
            self._in_flight -= 1
        self._done(group)

    def _failed(self, exc, stmt, params, group, attempt) -> None:
        if isinstance(exc, TRANSIENT) and attempt < self.retries:
            # Not in the driver's event-loop thread: a sleep there would stall every connection.
            threading.Timer(0.05 * 2**attempt, self._send, (stmt, params, group, attempt + 1)).start()
            return
        with self._lock:
            self._error = self._error or exc
        self._ok(None, group)

    def _done(self, group) -> None:
        with self._lock:
            self._outstanding[group] -= 1
            self._idle.notify_all()

    def completed(self) -> list:
        """Pop and return the groups, oldest first, whose writes (and all earlier ones) are done."""
        out = []
        with self._lock:
            while self._outstanding:
                group, left = next(iter(self._outstanding.items()))
                if left:
                    break
                self._outstanding.popitem(last=False)
                out.append(group)
        return out

    def drain(self) -> list:
        """Wait for every write; raise the first failure; return the completed groups."""
        with self._lock:
            while self._in_flight:
                self._idle.wait(1.0)
        if self._error is not None:
            raise self._error
        return self.completed()
