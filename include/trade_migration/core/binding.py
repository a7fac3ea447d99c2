"""Binding rows to a prepared insert at a fraction of the driver's cost per row.

The driver's PreparedStatement.bind() looks up each column's type, encryption policy and
serializer for every value: the largest single cost of the backfill's write path in a profile.
A Binder picks each column's encoder once and writes the same bytes the driver
writes (tests/integration/test_binding.py compares them) for the types user_trades holds: bigint,
int, timestamp, text, boolean. Anything else (a null, UNSET_VALUE, an aware datetime, a value of
another type, column encryption) goes through the driver's bind(), errors included.
"""
from __future__ import annotations

import struct
from datetime import datetime, timedelta

from cassandra import cqltypes
from cassandra.query import BoundStatement

_EPOCH = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)
_bigint = struct.Struct(">q").pack
_int = struct.Struct(">i").pack


def _timestamp(v: datetime) -> bytes:
    """Milliseconds since the epoch, as the driver's DateType computes them for a naive (UTC) time."""
    if type(v) is not datetime or v.tzinfo is not None:
        raise TypeError("not a naive datetime")
    return _bigint(((v - _EPOCH) // _SECOND) * 1000 + v.microsecond // 1000)


def _text(v: str) -> bytes:
    if type(v) is not str:
        raise TypeError("not a str")
    return v.encode("utf-8")


def _boolean(v: bool) -> bytes:
    if type(v) is not bool:
        raise TypeError("not a bool")
    return b"\x01" if v else b"\x00"


def _integer(pack):
    def encode(v: int) -> bytes:
        if type(v) is not int:
            raise TypeError("not an int")
        return pack(v)
    return encode


ENCODERS = {cqltypes.LongType: _integer(_bigint), cqltypes.Int32Type: _integer(_int),
            cqltypes.DateType: _timestamp, cqltypes.VarcharType: _text, cqltypes.UTF8Type: _text,
            cqltypes.BooleanType: _boolean}


class Binder:
    """bind(values) -> a BoundStatement of `stmt`, like stmt.bind(values)."""

    __slots__ = ("stmt", "_encoders", "_template")

    def __init__(self, stmt):
        self.stmt = stmt
        encoders = [ENCODERS.get(c.type) for c in stmt.column_metadata or ()]
        usable = encoders and None not in encoders and not stmt.column_encryption_policy
        self._encoders = encoders if usable else None
        self._template = dict(BoundStatement(stmt).__dict__)   # what the constructor sets, copied per row

    def bind(self, values) -> BoundStatement:
        encoders = self._encoders
        if encoders is None or len(values) != len(encoders):
            return self.stmt.bind(values)
        try:
            encoded = [encode(v) for encode, v in zip(encoders, values, strict=True)]
        except (TypeError, struct.error):
            return self.stmt.bind(values)   # None, UNSET_VALUE or another type: the driver's own way
        bound = object.__new__(BoundStatement)
        bound.__dict__.update(self._template)
        bound.raw_values, bound.values = values, encoded
        return bound
