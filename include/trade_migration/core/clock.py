"""Time, one way: aware UTC datetimes in the code, epoch microseconds for write times.

The driver returns timestamps as naive UTC datetimes and stores them to the millisecond; write
times (USING TIMESTAMP, WRITETIME) are epoch microseconds. Conversions are exact integers, so a
write time turned into a datetime and back is the same number.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US, _MS = timedelta(microseconds=1), timedelta(milliseconds=1)


def now() -> datetime:
    return datetime.now(UTC)


def now_micros() -> int:
    """Now as a write time."""
    return time.time_ns() // 1000


def utc(at: datetime | None) -> datetime | None:
    """Aware UTC; a naive datetime (the driver's) is taken as UTC."""
    if at is None:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def naive_utc(at: datetime) -> datetime:
    """Naive UTC, as the driver returns timestamps (to compare with them)."""
    return utc(at).replace(tzinfo=None)


def micros(at: datetime) -> int:
    """Epoch microseconds (a write time) of a datetime, naive (UTC) or aware."""
    return (utc(at) - EPOCH) // _US


def from_micros(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def millis(at: datetime) -> int:
    """Epoch milliseconds, as a CQL timestamp stores it."""
    return (utc(at) - EPOCH) // _MS


def as_stored(at: datetime) -> datetime:
    """`at` cut to the millisecond, as a CQL timestamp keeps it."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)
