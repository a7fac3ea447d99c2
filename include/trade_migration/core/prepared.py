"""Prepared statements, prepared once per session and marked idempotent where they are."""
from __future__ import annotations

import weakref

from cassandra.cluster import Session
from cassandra.query import PreparedStatement

_CACHE: weakref.WeakKeyDictionary[Session, dict] = weakref.WeakKeyDictionary()


def prepared(session: Session, cql: str, *, consistency: int | None = None,
             idempotent: bool = True, fetch_size: int | None = None) -> PreparedStatement:
    per_session = _CACHE.setdefault(session, {})
    key = (cql, consistency, idempotent, fetch_size)
    stmt = per_session.get(key)
    if stmt is None:
        stmt = session.prepare(cql)
        stmt.is_idempotent = idempotent
        if consistency is not None:
            stmt.consistency_level = consistency
        if fetch_size is not None:
            stmt.fetch_size = fetch_size
        per_session[key] = stmt
    return stmt
