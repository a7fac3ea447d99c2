"""An archive checked before the drop: every object against the manifest, a sample read back
against settled_trades.

Every object is fetched and must have the manifest's size, sha256, schema and row count; the
ranges must cover the ring once. Then a seeded sample of ranges (all of them with share 1) is read
back and compared row by row with the same range of settled_trades: values, write time, TTL. What
differs is listed, naming the object or range and the trade, and nothing may be dropped.
"""
from __future__ import annotations

import logging
import math
import random
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
from cassandra.cluster import Session

from trade_migration.archive import layout
from trade_migration.archive.store import Store, fetch, probe
from trade_migration.core import clock, tokens
from trade_migration.core.config import Config
from trade_migration.core.errors import ArchiveMismatch
from trade_migration.core.prepared import prepared
from trade_migration.statements.settled_trades import decode_scanned_trade, scan_settled

log = logging.getLogger(__name__)
EXPIRY_SLACK = timedelta(seconds=2)     # TTLs are whole seconds, read at slightly different moments
SHOWN = 20                              # differences named in the error


@dataclass(frozen=True)
class CheckOptions:
    sample_share: float = 0.1   # share of ranges read back and compared with the table (1: all)
    seed: str = ""              # which ranges the sample takes (the run id: a rerun compares the same)
    parallelism: int = 4


def sample(parts: list[dict], share: float, seed: str) -> set[int]:
    """Indexes of the ranges read back: ceil(share x ranges), at least one, chosen by the seed."""
    if share >= 1:
        return set(range(len(parts)))
    count = max(1, math.ceil(share * len(parts)))
    return set(random.Random(seed).sample(range(len(parts)), min(count, len(parts))))


def _row_differences(archived: list[layout.Archived], session: Session, stmt, part: dict) -> list[str]:
    label = f"range ({part['start']}, {part['end']}]"
    kept = {row.trade.trade_id: row for row in archived}
    out = []
    for raw in session.execute(stmt, (part["start"], part["end"])):
        scanned = decode_scanned_trade(raw)
        row = kept.pop(scanned.trade.trade_id, None)
        if row is None:
            out.append(f"{label}: trade {scanned.trade.trade_id} is in settled_trades, not in the archive")
            continue
        if row.trade != scanned.trade:
            fields = [f for f, a, b in zip(row.trade._fields, row.trade, scanned.trade, strict=True) if a != b]
            out.append(f"{label}: trade {scanned.trade.trade_id} differs in {', '.join(fields)}")
        if (row.write_time or 0) != scanned.written:
            out.append(f"{label}: trade {scanned.trade.trade_id} write time {row.write_time} in the archive,"
                       f" {scanned.written} in settled_trades")
        table_expiry = layout.expires_at(scanned.ttl, clock.now())
        if (row.expires_at is None) != (table_expiry is None) or (
                row.expires_at is not None and abs(row.expires_at - table_expiry) > EXPIRY_SLACK):
            out.append(f"{label}: trade {scanned.trade.trade_id} expires {row.expires_at} in the archive,"
                       f" {table_expiry} in settled_trades")
    out += [f"{label}: trade {trade_id} is in the archive, not in settled_trades" for trade_id in sorted(kept)]
    return out


def _check_part(store: Store, part: dict, compare, workdir: Path) -> tuple[list[str], int]:
    """Problems of one range's object (and of its rows against the table when `compare`)."""
    rows: list[layout.Archived] = []
    if part["object"] is not None:
        local = workdir / part["object"]
        try:
            fetch(store, part["object"], local, size=part["bytes"], sha256=part["sha256"])
        except ArchiveMismatch as exc:
            return [str(exc)], 0
        try:
            meta = pq.ParquetFile(local)
            if not meta.schema_arrow.equals(layout.SCHEMA, check_metadata=False):
                return [f"object {store.at(part['object'])}: schema differs from the manifest's"], 0
            if meta.metadata.num_rows != part["rows"]:
                return [f"object {store.at(part['object'])} holds {meta.metadata.num_rows} rows,"
                        f" the manifest says {part['rows']}"], 0
            if compare:
                rows = layout.read_rows(local)
        finally:
            local.unlink()
    elif part["rows"]:
        return [f"range ({part['start']}, {part['end']}] has {part['rows']} rows but no object"], 0
    if not compare:
        return [], 0
    return compare(rows, part), len(rows)


def check_archive(session: Session, config: Config, store: Store, options: CheckOptions = CheckOptions()) -> dict:
    """The archive at `store` checked; ArchiveMismatch listing every difference found, else what was checked."""
    probe(store)
    manifest = layout.read_manifest(store)
    parts = manifest["ranges"]
    try:
        tokens.check_coverage([layout.token_range(p) for p in parts])
    except ValueError as exc:
        raise ArchiveMismatch(f"archive {store.url}: its ranges do not cover the ring: {exc}") from exc
    sampled = sample(parts, options.sample_share, options.seed)
    stmt = prepared(session, scan_settled(config.keyspace), consistency=config.read_cl)

    def compare(rows, part):
        return _row_differences(rows, session, stmt, part)

    with tempfile.TemporaryDirectory(prefix="tm-check-") as tmp, \
            ThreadPoolExecutor(max_workers=options.parallelism, thread_name_prefix="archive-check") as pool:
        results = list(pool.map(lambda item: _check_part(store, item[1], compare if item[0] in sampled else None,
                                                         Path(tmp)), enumerate(parts)))
    problems = [p for found, _ in results for p in found]
    summary = {"url": store.url, "objects": manifest["objects"], "rows": manifest["rows"], "bytes": manifest["bytes"],
               "ranges": len(parts), "sampled_ranges": len(sampled), "compared_rows": sum(n for _, n in results),
               "sample_share": options.sample_share, "problems": len(problems)}
    if problems:
        raise ArchiveMismatch(f"archive {store.url} does not match ({len(problems)} problems): "
                              + "; ".join(problems[:SHOWN]) + ("; ..." if len(problems) > SHOWN else ""))
    log.info("archive %s checked: %d objects, sha256 and rows as the manifest says; %d of %d ranges"
             " (%d rows) equal to settled_trades", store.url, summary["objects"], len(sampled), len(parts),
             summary["compared_rows"])
    return summary
