"""Reads for verification: paged range scans that fetch ahead, and many key lookups at once."""
from __future__ import annotations

from collections.abc import Iterator

from cassandra import OperationTimedOut, ReadFailure, ReadTimeout
from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent, execute_concurrent_with_args

from trade_migration.core.settings import IN_FLIGHT, PAGE_TIMEOUT_S

# A read the replicas did not finish in time (server-side timeout or failure, or the client's own):
# a narrower range may pass where this one did not.
READ_TIMEOUTS = (ReadTimeout, ReadFailure, OperationTimedOut)


def paged(session: Session, stmt, params: tuple, *, timeout: float = PAGE_TIMEOUT_S) -> Iterator[tuple[list, bool]]:
    """A scan's pages, each with whether it is the last; the next page is requested before the
    caller works on this one."""
    future = session.execute_async(stmt, params, timeout=timeout)
    while True:
        rows = future.result().current_rows
        more = future.has_more_pages
        if more:
            future.start_fetching_next_page()
        yield rows, not more
        if not more:
            return


def pages(session: Session, stmt, params: tuple, *, timeout: float = PAGE_TIMEOUT_S) -> Iterator[list]:
    """A scan's pages, read ahead as paged() reads them."""
    for rows, _ in paged(session, stmt, params, timeout=timeout):
        yield rows


def pages_of_each(session: Session, stmt, params: list[tuple], *, timeout: float = PAGE_TIMEOUT_S) -> Iterator[list]:
    """The pages of several scans of one statement (a range once per window), one scan after another."""
    for one in params:
        yield from pages(session, stmt, one, timeout=timeout)


def lookup(session: Session, stmt, params: list[tuple], *, concurrency: int = IN_FLIGHT) -> list:
    """The single row (or None) each parameter tuple selects, in order, `concurrency` in flight."""
    if not params:
        return []
    results = execute_concurrent_with_args(session, stmt, params, concurrency=concurrency,
                                           raise_on_first_error=True)
    return [result.one() for _, result in results]


def rows_of(session: Session, stmt, params: list[tuple], *, concurrency: int = IN_FLIGHT) -> Iterator:
    """Every row of every request (a request may select many rows), `concurrency` requests in flight."""
    for result in execute_all(session, [(stmt, p) for p in params], concurrency=concurrency):
        yield from result


def chunked(items: list, size: int) -> Iterator[list]:
    """`items` in consecutive lists of at most `size`."""
    for at in range(0, len(items), size):
        yield items[at:at + size]


def execute_all(session: Session, work: list[tuple], *, concurrency: int = IN_FLIGHT) -> list:
    """Run (statement, params) pairs, `concurrency` in flight; their results in order."""
    if not work:
        return []
    return [result for _, result in execute_concurrent(session, work, concurrency=concurrency,
                                                       raise_on_first_error=True)]
