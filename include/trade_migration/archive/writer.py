"""settled_trades into an archive: streamed by token range, one Parquet object per range, each
range's rows checked against a COUNT(*) of the range, the manifest written last.

A range is read page by page into a local Parquet file in row groups (memory bounded by the batch
size), hashed and uploaded; the local file is then removed, so disk is bounded by the ranges in
flight. A rerun of the same run first removes the manifest, then whatever the earlier attempt
left, so an archive that has a manifest is always a complete one.
"""
from __future__ import annotations

import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from cassandra.cluster import Session

from trade_migration.archive import layout
from trade_migration.archive.store import Store, probe, sha256_of
from trade_migration.core import clock, tokens
from trade_migration.core.config import LEGACY_TABLE, Config
from trade_migration.core.errors import ArchiveError
from trade_migration.core.prepared import prepared
from trade_migration.core.settings import COUNTS_IN_FLIGHT, FETCH_SIZE
from trade_migration.core.splits import ring_ranges
from trade_migration.core.tokens import TokenRange
from trade_migration.statements.settled_trades import decode_scanned_trade, scan_settled
from trade_migration.verify.counts import settled_counts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchiveOptions:
    parallelism: int = 4        # ranges read and written at once
    fetch_size: int = FETCH_SIZE    # rows per page
    batch_rows: int = 10_000    # rows per Parquet row group


def _archive_range(session: Session, stmt, index: int, rng: TokenRange, store: Store, workdir: Path,
                   options: ArchiveOptions) -> dict:
    """Stream one range into its object (none when the range is empty); the manifest's entry."""
    name = layout.object_name(index)
    local = workdir / name
    columns: list[list] = [[] for _ in layout.SCHEMA.names]
    rows, newest, writer = 0, None, None
    read_at = clock.now()

    def flush():
        nonlocal writer
        if not columns[0]:
            return
        if writer is None:
            writer = pq.ParquetWriter(local, layout.SCHEMA, compression="zstd")
        writer.write_batch(pa.record_batch(
            [pa.array(c, type=t) for c, t in zip(columns, layout.SCHEMA.types, strict=True)], schema=layout.SCHEMA))
        for c in columns:
            c.clear()

    try:
        for row in session.execute(stmt, (rng.start, rng.end)):
            scanned = decode_scanned_trade(row)
            written = scanned.written or None   # none when every column is null
            for k, value in enumerate(scanned.trade):
                columns[k].append(value)
            columns[-2].append(written)
            columns[-1].append(layout.expires_at(scanned.ttl, clock.now()) if scanned.ttl is not None else None)
            rows += 1
            if written is not None and (newest is None or written > newest):
                newest = written
            if len(columns[0]) >= options.batch_rows:
                flush()
        flush()
    finally:
        if writer is not None:
            writer.close()
    part = {"start": rng.start, "end": rng.end, "object": None, "rows": rows, "bytes": 0, "sha256": None,
            "newest_write_time": newest, "read_at": read_at.isoformat()}
    if rows:
        part.update(object=name, bytes=local.stat().st_size, sha256=sha256_of(local))
        store.fs.put_file(str(local), store.at(name))
        local.unlink()
    return part


def clear(store: Store) -> None:
    """Remove an earlier attempt's objects, the manifest first (never a complete-looking archive)."""
    fs = store.fs
    if fs.exists(store.at(layout.MANIFEST)):
        fs.rm_file(store.at(layout.MANIFEST))
    for leftover in fs.find(store.path) if fs.exists(store.path) else []:
        fs.rm_file(leftover)     # one by one: rm() would read glob characters in a path as a pattern
    if store.scheme == "file":
        fs.makedirs(store.path, exist_ok=True)


def write_archive(session: Session, config: Config, store: Store, *, run_id: str,
                  written_before: datetime | None = None, options: ArchiveOptions = ArchiveOptions(),
                  ranges: list[TokenRange] | None = None) -> dict:
    """Archive settled_trades into `store`; returns the manifest. Raises ArchiveStoreError before
    anything is read when the store cannot be used, and ArchiveError (no manifest written) unless
    every range's object holds exactly the range's COUNT(*) and, with `written_before`, no row was
    written after it (the moment the settlement service was to stop writing the table, plus its
    flag refresh bound)."""
    ks = config.keyspace
    probe(store)
    ranges = ranges or ring_ranges(session, config.keyspace)
    tokens.check_coverage(ranges)
    clear(store)
    started = clock.now()
    counts = settled_counts(session, config, ranges, concurrency=COUNTS_IN_FLIGHT)
    scan = prepared(session, scan_settled(ks), consistency=config.read_cl, fetch_size=options.fetch_size)
    with tempfile.TemporaryDirectory(prefix="tm-archive-") as tmp, \
            ThreadPoolExecutor(max_workers=options.parallelism, thread_name_prefix="archive") as pool:
        parts = list(pool.map(lambda item: _archive_range(session, scan, item[0], item[1], store, Path(tmp), options),
                              enumerate(ranges)))
    for part, count in zip(parts, counts, strict=True):
        part["count"] = count
    wrong = [p for p in parts if p["rows"] != p["count"]]
    if wrong:
        raise ArchiveError(f"{len(wrong)} ranges archived a different number of rows than COUNT(*) gives: "
                           + "; ".join(f"({p['start']}, {p['end']}]: wrote {p['rows']}, count {p['count']}"
                                       for p in wrong[:10]) + f"; {store.url} has no manifest: it is incomplete")
    newest = max((p["newest_write_time"] for p in parts if p["newest_write_time"] is not None), default=None)
    if written_before is not None and newest is not None and newest > clock.micros(written_before):
        raise ArchiveError(f"{ks}.{LEGACY_TABLE} has rows written at {clock.from_micros(newest):%Y-%m-%d %H:%M:%S} UTC,"
                           f" after {written_before:%Y-%m-%d %H:%M:%S} UTC when the settlement service should have"
                           f" stopped writing it: it still writes {LEGACY_TABLE}; nothing may be dropped")
    manifest = {
        "format": layout.FORMAT, "keyspace": ks, "table": LEGACY_TABLE, "run_id": run_id, "url": store.url,
        "schema": layout.schema_json(), "columns": layout.COLUMN_NOTES,
        "started_at": started.isoformat(), "finished_at": clock.now().isoformat(),
        "rows": sum(p["rows"] for p in parts), "counted": sum(counts),
        "objects": sum(1 for p in parts if p["object"]), "bytes": sum(p["bytes"] for p in parts),
        "newest_write_time": newest, "ranges": parts,
    }
    layout.write_manifest(store, manifest)
    log.info("archived %d rows of %s.%s into %d objects under %s", manifest["rows"], ks, LEGACY_TABLE,
             manifest["objects"], store.url)
    return manifest
