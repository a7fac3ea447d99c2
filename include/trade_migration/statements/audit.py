"""audit_log: who did what, when and why."""
from __future__ import annotations

from trade_migration.statements.text import in_keyspace


def audit_insert(keyspace: str) -> str:
    return in_keyspace("INSERT INTO {ks}.audit_log (scope, at, phase, action, actor, reason, details)"
                       " VALUES ('migration', now(), ?, ?, ?, ?, ?)", keyspace)


def audit_select(keyspace: str) -> str:
    return in_keyspace("SELECT toTimestamp(at) AS at, phase, action, actor, reason, details FROM {ks}.audit_log"
                       " WHERE scope = 'migration' LIMIT ?", keyspace)
