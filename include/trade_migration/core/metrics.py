"""The migration's metrics, as StatsD (the format Airflow's own metrics use), so the platform's
Prometheus (through statsd_exporter) or Datadog sees every phase.

Off unless TM_STATSD_HOST is set (TM_STATSD_PORT, 8125 by default); every name is prefixed
`trade_migration.`. Names are fixed in code (phase, status and kind constants), never built from
a connection, a Param or an error, so no secret can reach one. Sending never fails the work:
a host that cannot be resolved is logged once and the metrics stay off for it.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from statsd import StatsClient

from trade_migration.core.settings import STATSD_HOST, STATSD_PORT

log = logging.getLogger(__name__)
PREFIX = "trade_migration"
_clients: dict[tuple[str, int], StatsClient | None] = {}


def client(env: Mapping[str, str] | None = None) -> StatsClient | None:
    """The client for the configured host (one per host and port), or None when metrics are off."""
    host = STATSD_HOST.get(env)
    if not host:
        return None
    key = (str(host), int(STATSD_PORT.get(env)))
    if key not in _clients:
        try:
            _clients[key] = StatsClient(*key, prefix=PREFIX)
        except OSError as exc:   # an unknown host name: no metrics rather than a failed backfill
            log.warning("StatsD host %s:%d cannot be used (%s); no metrics are sent", *key, exc)
            _clients[key] = None
    return _clients[key]


def incr(name: str, count: int = 1) -> None:
    """Add `count` to the counter `name` (nothing is sent for 0)."""
    c = client()
    if c is not None and count:
        c.incr(name, count)


def gauge(name: str, value: float) -> None:
    c = client()
    if c is not None:
        c.gauge(name, value)


def timing(name: str, ms: float) -> None:
    c = client()
    if c is not None:
        c.timing(name, ms)


class _Off:
    """What batch() yields when metrics are off: takes the calls, sends nothing."""

    def incr(self, name: str, count: int = 1) -> None:
        pass

    def gauge(self, name: str, value: float) -> None:
        pass


@contextmanager
def batch() -> Iterator:
    """Several metrics in as few packets as fit (a statsd pipeline), sent when the block ends."""
    c = client()
    if c is None:
        yield _Off()
        return
    with c.pipeline() as pipe:
        yield pipe


def counters(prefix: str, values: Mapping[str, int]) -> None:
    """`prefix.key` += value for each non-zero value, in one batch."""
    with batch() as m:
        for key, value in values.items():
            if value:
                m.incr(f"{prefix}.{key}", value)


def gauges(prefix: str, values: Mapping[str, float | None]) -> None:
    """`prefix.key` = value for each value that is not None, in one batch."""
    with batch() as m:
        for key, value in values.items():
            if value is not None:
                m.gauge(f"{prefix}.{key}", value)
