"""What an archive holds: one Parquet object per token range, then manifest.json, written last.

An object store has no rename, so completeness is the manifest: a folder without one (or with one
that does not parse) is an incomplete archive. The manifest names, per range, its object, rows,
bytes and sha256, and the Parquet schema, so a check or a restore needs nothing but the folder.
Each row keeps its source write time (microseconds) and, if it has a TTL, when it expires, so a
restore writes it back as it was.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from trade_migration.archive.store import Store
from trade_migration.core import clock
from trade_migration.core.errors import ArchiveMismatch
from trade_migration.core.model import SETTLED_COLUMNS, SettledTrade
from trade_migration.core.tokens import TokenRange

FORMAT = "trade_migration settled_trades archive v2"
MANIFEST = "manifest.json"
WRITE_TIME = "write_time"
EXPIRES_AT = "expires_at"
_TS = pa.timestamp("ms", tz="UTC")
_TYPES = {"symbol": pa.string(), "taker_side": pa.string(), "matched_at": _TS, "settled_at": _TS}
SCHEMA = pa.schema([(c, _TYPES.get(c, pa.int64())) for c in SETTLED_COLUMNS]
                   + [(WRITE_TIME, pa.int64()), (EXPIRES_AT, _TS)])
COLUMN_NOTES = {WRITE_TIME: "the row's newest write time (WRITETIME), microseconds since the epoch",
                EXPIRES_AT: "when the row's soonest-expiring column expires (now + TTL when read); null: no TTL"}


class Archived(NamedTuple):
    """One archived row: the trade as settled_trades had it, its write time and expiry."""
    trade: SettledTrade
    write_time: int | None
    expires_at: datetime | None


def read_rows(path: Path) -> list[Archived]:
    """Every row of one Parquet object, timestamps as the driver gives them (naive UTC)."""
    table = pq.read_table(path, schema=SCHEMA)
    rows = []
    for values in zip(*(table.column(n).to_pylist() for n in SCHEMA.names), strict=True):
        values = [clock.naive_utc(v) if isinstance(v, datetime) else v for v in values]
        trade = SettledTrade._make(values[:len(SETTLED_COLUMNS)])
        expiry = values[-1]
        rows.append(Archived(trade, values[-2], None if expiry is None else clock.utc(expiry)))
    return rows


def object_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def schema_json(schema: pa.Schema = SCHEMA) -> list[dict]:
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


def expires_at(ttl: int | None, now: datetime) -> datetime | None:
    return None if ttl is None else datetime.fromtimestamp(int(now.timestamp()) + ttl, UTC)


def write_manifest(store: Store, manifest: dict) -> None:
    store.fs.pipe_file(store.at(MANIFEST), json.dumps(manifest, indent=1).encode())


def read_manifest(store: Store) -> dict:
    """The archive's manifest; ArchiveMismatch (the archive is incomplete) when there is none."""
    try:
        raw = store.fs.cat_file(store.at(MANIFEST))
    except FileNotFoundError as exc:
        raise ArchiveMismatch(f"archive {store.url} has no {MANIFEST}: it is incomplete (the manifest is"
                              " written last)") from exc
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise ArchiveMismatch(f"archive {store.url}: {MANIFEST} does not parse ({exc}): it is incomplete") from exc
    if manifest.get("format") != FORMAT:
        raise ArchiveMismatch(f"archive {store.url}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    if manifest.get("schema") != schema_json():
        raise ArchiveMismatch(f"archive {store.url}: its schema {manifest.get('schema')} is not this version's")
    return manifest


def token_range(part: dict) -> TokenRange:
    return TokenRange(int(part["start"]), int(part["end"]))
