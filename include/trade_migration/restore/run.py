"""An archive restored into a table with settled_trades' columns, range by range, resumable.

Each row is written with its source write time (USING TIMESTAMP) and the TTL it has left (a row
whose TTL ran out since it was archived is counted as expired, not written); null columns stay
unset, never tombstones. Each object's sha256 is checked before a row of it is written. A range
is marked started in restore_ranges (the migration's keyspace) before anything is written, and
finished once every write of it is acknowledged, so a rerun with the same archive and target skips
the ranges finished. A target that already holds rows is refused unless this restore started it or
allow_non_empty says so.
"""
from __future__ import annotations

import logging
import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cassandra.cluster import Session
from cassandra.query import UNSET_VALUE

from trade_migration.archive import layout
from trade_migration.archive.store import Store, fetch, probe
from trade_migration.cleanup.drop import table_exists
from trade_migration.core import clock
from trade_migration.core.config import Config, identifier
from trade_migration.core.errors import ConfigError, RestoreRefused
from trade_migration.core.prepared import prepared
from trade_migration.core.settings import IN_FLIGHT
from trade_migration.core.writes import BoundedWriter
from trade_migration.state import phases
from trade_migration.statements.restore import (
    any_row,
    create_settled_like,
    insert_restored,
    range_restored,
    restored_ranges,
)

log = logging.getLogger(__name__)
SCHEMA_AGREEMENT_S = 60
RESTORE = "restore"    # the audit log's phase column for a restore (not a migration phase)
_LABEL = re.compile(r"\(\s*(-?\d+)\s*,\s*(-?\d+)\s*\]")


@dataclass(frozen=True)
class Target:
    keyspace: str
    table: str

    @classmethod
    def parse(cls, text: str) -> Target:
        """KEYSPACE.TABLE, both plain identifiers."""
        keyspace, dot, table = str(text).strip().partition(".")
        if not dot:
            raise ConfigError(f"the target must be KEYSPACE.TABLE (got {text!r})")
        return cls(identifier(keyspace, what="target keyspace"), identifier(table, what="target table"))

    def __str__(self) -> str:
        return f"{self.keyspace}.{self.table}"


def select_parts(parts: list[dict], only: list[str] | None) -> list[dict]:
    """The manifest's ranges named by labels "(start, end]" or start tokens (all when none)."""
    if not only:
        return parts
    by_start = {int(p["start"]): p for p in parts}
    chosen = {}
    for item in only:
        text = str(item).strip()
        label = _LABEL.fullmatch(text)
        start = int(label.group(1)) if label else (int(text) if re.fullmatch(r"-?\d+", text) else None)
        part = by_start.get(start)
        if part is None or (label and int(label.group(2)) != int(part["end"])):
            raise ConfigError(f"range {text!r} is not in the archive; give a label like"
                              f" '({parts[0]['start']}, {parts[0]['end']}]' or a start token")
        chosen[start] = part
    return [chosen[s] for s in sorted(chosen)]


def _ttl(expires_at, now) -> int | None:
    """Seconds left (0: no TTL), None when the row has expired."""
    if expires_at is None:
        return 0
    left = math.ceil((expires_at - now).total_seconds())
    return left if left > 0 else None


def _restore_part(session: Session, insert, store: Store, part: dict, workdir: Path, max_in_flight: int) -> tuple:
    """(rows written, rows expired) of one range."""
    if part["object"] is None:
        return 0, 0
    local = fetch(store, part["object"], workdir / part["object"], size=part["bytes"], sha256=part["sha256"])
    rows = layout.read_rows(local)
    local.unlink()
    writer, written, expired = BoundedWriter(session, max_in_flight), 0, 0
    writer.open_group(0)
    now = clock.now()
    for row in rows:
        ttl = _ttl(row.expires_at, now)
        if ttl is None:
            expired += 1
            continue
        values = [UNSET_VALUE if v is None else v for v in row.trade]
        writer.submit(insert, (*values, UNSET_VALUE if row.write_time is None else row.write_time, ttl), 0)
        written += 1
    writer.close_group(0)
    writer.drain()
    return written, expired


def restore_archive(session: Session, config: Config, store: Store, target: Target, *, ranges: list[str] | None = None,
                    allow_non_empty: bool = False, max_in_flight: int = IN_FLIGHT, actor: str = "",
                    reason: str = "") -> dict:
    """Write the archive at `store` into `target` (created with settled_trades' columns if missing);
    its start and end are audited with who and why."""
    probe(store)
    manifest = layout.read_manifest(store)
    parts = select_parts(manifest["ranges"], ranges)
    ks = config.keyspace
    key = (str(target), store.url)
    # Each step needs one more permission than the one before, and none writes a row of data before
    # all are proven: reading the progress (SELECT restore_ranges), the emptiness check (SELECT on the
    # target), the ranges marked started (MODIFY restore_ranges), the table created if missing (CREATE).
    marks = list(session.execute(prepared(session, restored_ranges(ks)), key))
    done = {r.range_start for r in marks if r.finished_at is not None}
    exists = table_exists(session, target.keyspace, target.table)
    if exists and not marks and not allow_non_empty and session.execute(
            prepared(session, any_row(target.keyspace, target.table), consistency=config.read_cl)).one():
        raise RestoreRefused(f"{target} is not empty and no restore of {store.url} into it was started; nothing"
                             " was written (restore into an empty table, or allow non-empty to merge: each row"
                             " keeps its write time, so a newer row in the table wins)")
    mark = prepared(session, range_restored(ks), consistency=config.write_cl)
    pending = [p for p in parts if int(p["start"]) not in done]
    for part in pending:
        session.execute(mark, (*key, int(part["start"]), int(part["end"]), UNSET_VALUE, UNSET_VALUE, UNSET_VALUE))
    if not exists:
        session.execute(create_settled_like(target.keyspace, target.table), timeout=120)
        if not session.wait_for_schema_agreement(wait_time=SCHEMA_AGREEMENT_S):
            raise RuntimeError(f"schema agreement not reached within {SCHEMA_AGREEMENT_S} s after creating {target}")
    insert = prepared(session, insert_restored(target.keyspace, target.table), consistency=config.write_cl)
    audit = phases.State(session, config)
    audit.audit(RESTORE, "restore started", actor=actor or "restore", reason=reason,
                details={"archive": store.url, "target": str(target), "ranges": len(parts)})
    written = expired = restored = 0
    with tempfile.TemporaryDirectory(prefix="tm-restore-") as tmp:
        for part in pending:
            rows, gone = _restore_part(session, insert, store, part, Path(tmp), max_in_flight)
            session.execute(mark, (*key, int(part["start"]), int(part["end"]), rows, gone, clock.now()))
            written, expired, restored = written + rows, expired + gone, restored + 1
            log.info("restored range (%s, %s]: %d rows, %d expired", part["start"], part["end"], rows, gone)
    result = {"archive": store.url, "target": str(target), "ranges": len(parts), "restored_ranges": restored,
              "skipped_ranges": len(parts) - restored, "rows": written, "expired": expired,
              "archived_rows": sum(p["rows"] for p in parts)}
    audit.audit(RESTORE, "restored", actor=actor or "restore", reason=reason, details=result)
    log.info("restore of %s into %s: %s", store.url, target, result)
    return result
