"""settled_trades to Parquet before the drop: streamed by token range, one file per range, and
every file's row count checked against a COUNT(*) of its range.

A range is read page by page and written in row groups, so memory is bounded by the batch size
whatever the table's size. The archive is built in `<dir>.partial` and renamed to `<dir>` only
when every count matches, so a directory without that suffix is always a complete archive. Each
row keeps its newest write time (microseconds), so a restore can write it back with USING
TIMESTAMP; the same write times prove the settlement service stopped writing the table.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from cassandra.cluster import Session

from trade_migration.core import clock, tokens
from trade_migration.core.config import LEGACY_TABLE, TARGET_TABLE, Config
from trade_migration.core.errors import ArchiveError, ConfigError
from trade_migration.core.model import SETTLED_COLUMNS
from trade_migration.core.prepared import prepared
from trade_migration.core.settings import FETCH_SIZE, report_root
from trade_migration.core.splits import ring_ranges
from trade_migration.core.tokens import TokenRange
from trade_migration.statements.settled_trades import decode_scanned_trade, scan_settled
from trade_migration.verify.counts import range_counts, settled_counts

log = logging.getLogger(__name__)

WRITE_TIME = "write_time"
_TS = pa.timestamp("ms", tz="UTC")
_TYPES = {"symbol": pa.string(), "taker_side": pa.string(), "matched_at": _TS, "settled_at": _TS}
SCHEMA = pa.schema([(c, _TYPES.get(c, pa.int64())) for c in SETTLED_COLUMNS] + [(WRITE_TIME, pa.int64())])
MANIFEST = "manifest.json"
PARTIAL = ".partial"
COUNTS_IN_FLIGHT = 16


@dataclass(frozen=True)
class ArchiveOptions:
    parallelism: int = 4        # ranges read and written at once
    fetch_size: int = FETCH_SIZE    # rows per page
    batch_rows: int = 10_000    # rows per Parquet row group


# --- where ---------------------------------------------------------------------------------------
def archive_root(value: str | None, env: Mapping[str, str] | None = None) -> Path:
    """The archive_dir Param if given (an absolute path, no '..'), else $TM_REPORT_DIR/archive."""
    if value and value.strip():
        raw = value.strip()
        if "\x00" in raw or not os.path.isabs(raw) or ".." in Path(raw).parts or Path(raw) == Path("/"):
            raise ConfigError(f"archive_dir must be an absolute path below / without '..' (got {value!r})")
        return Path(os.path.normpath(raw))
    return report_root(env) / "archive"


def run_dir(root: Path, run_id: str) -> Path:
    """One directory per Airflow run, named after the run id (made filesystem-safe)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id).strip(".")[:150]
    if not name:
        raise ConfigError(f"run id {run_id!r} gives no directory name")
    return root / name


# --- counting ------------------------------------------------------------------------------------
def table_counts(session: Session, config: Config) -> dict:
    """Rows of both tables, each counted by token range in parallel (for the approval's summary)."""
    ranges = ring_ranges(session, config.keyspace)
    counts = range_counts(session, config, ranges, concurrency=COUNTS_IN_FLIGHT)
    return {LEGACY_TABLE: sum(s for s, _ in counts), TARGET_TABLE: sum(t for _, t in counts), "ranges": len(ranges)}


# --- writing -------------------------------------------------------------------------------------
def _archive_range(session: Session, stmt, index: int, rng: TokenRange, directory: Path,
                   options: ArchiveOptions) -> dict:
    """Stream one range into part-<index>.parquet (no file when the range is empty)."""
    path = directory / f"part-{index:05d}.parquet"
    columns: list[list] = [[] for _ in SCHEMA.names]
    rows, newest, writer = 0, None, None

    def flush():
        nonlocal writer
        if not columns[0]:
            return
        if writer is None:
            writer = pq.ParquetWriter(path, SCHEMA, compression="zstd")
        writer.write_batch(pa.record_batch([pa.array(c, type=t) for c, t in zip(columns, SCHEMA.types, strict=True)],
                                           schema=SCHEMA))
        for c in columns:
            c.clear()

    try:
        for row in session.execute(stmt, (rng.start, rng.end)):
            _, trade, written, _ = decode_scanned_trade(row)
            written = written or None   # none when every column is null
            for k, value in enumerate(trade):
                columns[k].append(value)
            columns[-1].append(written)
            rows += 1
            if written is not None and (newest is None or written > newest):
                newest = written
            if len(columns[0]) >= options.batch_rows:
                flush()
        flush()
    finally:
        if writer is not None:
            writer.close()
    return {"start": rng.start, "end": rng.end, "file": path.name if rows else None, "rows": rows,
            "newest_write_time": newest}


def write_archive(session: Session, config: Config, directory: Path, *, run_id: str,
                  written_before: datetime | None = None, options: ArchiveOptions = ArchiveOptions(),
                  ranges: list[TokenRange] | None = None) -> dict:
    """Archive settled_trades under `directory`; returns the manifest. Raises ArchiveError unless
    every range's file holds exactly the range's COUNT(*) and, with `written_before`, no row was
    written after it (the moment the settlement service was to stop writing the table, plus its
    flag refresh bound)."""
    ks = config.keyspace
    ranges = ranges or ring_ranges(session, config.keyspace)
    tokens.check_coverage(ranges)
    partial = directory.with_name(directory.name + PARTIAL)
    if partial.exists():
        shutil.rmtree(partial)        # an earlier attempt's leftovers; never a complete archive
    partial.mkdir(parents=True)
    started = clock.now()
    counts = settled_counts(session, config, ranges, concurrency=COUNTS_IN_FLIGHT)
    scan = prepared(session, scan_settled(ks), consistency=config.read_cl, fetch_size=options.fetch_size)
    with ThreadPoolExecutor(max_workers=options.parallelism, thread_name_prefix="archive") as pool:
        parts = list(pool.map(lambda item: _archive_range(session, scan, item[0], item[1], partial, options),
                              enumerate(ranges)))
    for part, count in zip(parts, counts, strict=True):
        part["count"] = count
    wrong = [p for p in parts if p["rows"] != p["count"]]
    if wrong:
        raise ArchiveError(f"{len(wrong)} ranges archived a different number of rows than COUNT(*) gives: "
                           + "; ".join(f"({p['start']}, {p['end']}]: wrote {p['rows']}, count {p['count']}"
                                       for p in wrong[:10]) + f"; the partial archive is in {partial}")
    newest = max((p["newest_write_time"] for p in parts if p["newest_write_time"] is not None), default=None)
    if written_before is not None and newest is not None and newest > clock.micros(written_before):
        raise ArchiveError(f"{ks}.{LEGACY_TABLE} has rows written at {clock.from_micros(newest):%Y-%m-%d %H:%M:%S} UTC,"
                           f" after {written_before:%Y-%m-%d %H:%M:%S} UTC when the settlement service should have"
                           f" stopped writing it: it still writes {LEGACY_TABLE}; nothing may be dropped")
    manifest = {
        "keyspace": ks, "table": LEGACY_TABLE, "run_id": run_id, "format": "parquet",
        "columns": SCHEMA.names, "write_time": "newest write time of the row's columns, microseconds",
        "started_at": started.isoformat(), "finished_at": clock.now().isoformat(),
        "rows": sum(p["rows"] for p in parts), "counted": sum(counts),
        "files": sum(1 for p in parts if p["file"]), "ranges": parts,
        "newest_write_time": newest,
    }
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=1))
    if directory.exists():
        shutil.rmtree(directory)      # an earlier complete archive of this same run, now replaced
    partial.rename(directory)
    log.info("archived %d rows of %s.%s into %d files under %s", manifest["rows"], ks, LEGACY_TABLE,
             manifest["files"], directory)
    return manifest


def read_manifest(directory: Path) -> dict:
    return json.loads((Path(directory) / MANIFEST).read_text())
