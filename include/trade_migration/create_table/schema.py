"""Apply schema/ idempotently and check that the live user_trades is the contract's table."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from cassandra.cluster import Session

from trade_migration.core.config import TARGET_TABLE, Config
from trade_migration.core.errors import SchemaDriftError

# The package data: a link to schema/ at the repository root, so the DDL has one home.
SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schema"


def _replication_literal(replication: dict) -> str:
    parts = [f"'{k}': '{v}'" if k == "class" else f"'{k}': {v}" for k, v in replication.items()]
    return "{" + ", ".join(parts) + "}"


def statements_from_files(config: Config, schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """Every DDL statement in schema/*.cql, in file order, with the keyspace filled in."""
    out = []
    for path in sorted(schema_dir.glob("*.cql")):
        text = Template(path.read_text()).substitute(
            keyspace=config.keyspace, replication=_replication_literal(config.replication))
        text = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
        out += [s.strip() for s in text.split(";") if s.strip()]
    return out


# What each schema/ statement creates, to skip it when that is already there: Cassandra authorizes a
# CREATE ... IF NOT EXISTS before it looks, so running it needs CREATE on the keyspace (or on all
# keyspaces, or ALTER on settled_trades for its indexes) even when it changes nothing. Skipped, phase 1
# needs only what it really creates (README: Auth).
_CREATES = (
    (re.compile(r"CREATE\s+KEYSPACE\s+IF\s+NOT\s+EXISTS\s+(\w+)\b"), lambda ks, m: ks.get(m[1]) is not None),
    (re.compile(r"CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+(\w+)\.(\w+)\b"), lambda ks, m: m[2] in _tables(ks, m[1])),
    (re.compile(r"CREATE\s+INDEX\s+IF\s+NOT\s+EXISTS\s+(\w+)\s+ON\s+(\w+)\.(\w+)\b"),
     lambda ks, m: m[2] in ks and m[1] in ks[m[2]].indexes),
    (re.compile(r"ALTER\s+TABLE\s+(\w+)\.(\w+)\s+ADD\s+IF\s+NOT\s+EXISTS\s*\(([^)]*)\)"),
     lambda ks, m: m[2] in _tables(ks, m[1]) and all(
         col.split()[0] in ks[m[1]].tables[m[2]].columns for col in m[3].split(",") if col.strip())),
)


def _tables(keyspaces: dict, keyspace: str) -> dict:
    return keyspaces[keyspace].tables if keyspace in keyspaces else {}


def already_there(session: Session, stmt: str) -> bool:
    """Whether what `stmt` creates exists (per the driver's schema metadata); False for anything else."""
    keyspaces = session.cluster.metadata.keyspaces
    for pattern, exists in _CREATES:
        match = pattern.match(stmt)
        if match:
            return exists(keyspaces, match)
    return False


def apply(session: Session, config: Config, *, agreement_timeout: float = 60.0) -> int:
    """Run every CREATE ... IF NOT EXISTS whose object is missing and wait for schema agreement;
    returns the number of statements in schema/ (now all in place)."""
    stmts = statements_from_files(config)
    session.cluster.refresh_schema_metadata()
    for stmt in stmts:
        if not already_there(session, stmt):
            session.execute(stmt, timeout=120)
    if not session.wait_for_schema_agreement(wait_time=agreement_timeout):
        raise SchemaDriftError(f"schema agreement not reached within {agreement_timeout}s")
    return len(stmts)


# The floor of gc_grace_seconds. A bust or correction deletes user_trades rows; a replica that missed
# the delete keeps the old row, and once the tombstone is purged (gc_grace after the delete) before a
# repair has carried it there, the row comes back. So gc_grace must outlast the cluster's repair cycle
# (and the hint window, 3 h by default). The check cannot see the repair schedule; a day is the
# shortest cycle a full repair realistically keeps, so below it no schedule is safe (0 and hours are
# common on TTL'd time-series tables). Cassandra's default is 10 days, for weekly repairs.
MIN_GC_GRACE_S = 86400
# Compaction strategies that drop whole sstables once they are old enough: history must never go.
DROPS_BY_AGE = ("TimeWindowCompactionStrategy", "DateTieredCompactionStrategy")


@dataclass(frozen=True)
class TableOptions:
    """The options that change what the table keeps (the rest only tune how it performs)."""
    default_time_to_live: int
    gc_grace_seconds: int
    compaction: str          # the strategy's class

    def problems(self) -> list[str]:
        lines = []
        if self.default_time_to_live != 0:
            lines.append(f"default_time_to_live: expected 0 (history must not expire), found"
                         f" {self.default_time_to_live}")
        if self.gc_grace_seconds < MIN_GC_GRACE_S:
            lines.append(f"gc_grace_seconds: expected at least {MIN_GC_GRACE_S} (tombstones must outlive repairs),"
                         f" found {self.gc_grace_seconds}")
        if any(name in self.compaction for name in DROPS_BY_AGE):
            lines.append(f"compaction: expected a strategy that keeps old sstables (not time-window or"
                         f" date-tiered), found {self.compaction}")
        return lines


@dataclass(frozen=True)
class TableShape:
    columns: dict[str, str]
    partition_key: tuple[str, ...]
    clustering: tuple[tuple[str, str], ...]  # (column, ASC|DESC)
    options: TableOptions | None = field(default=None, compare=False)   # the live table's; checked by rule

    def diff(self, live: TableShape) -> list[str]:
        lines = []
        for name, typ in self.columns.items():
            if name not in live.columns:
                lines.append(f"column {name}: expected {typ}, missing")
            elif live.columns[name] != typ:
                lines.append(f"column {name}: expected {typ}, found {live.columns[name]}")
        lines += [f"column {n}: unexpected ({t})" for n, t in live.columns.items() if n not in self.columns]
        if self.partition_key != live.partition_key:
            lines.append(f"partition key: expected {self.partition_key}, found {live.partition_key}")
        if self.clustering != live.clustering:
            lines.append(f"clustering: expected {self.clustering}, found {live.clustering}")
        if live.options is not None:
            lines += live.options.problems()
        return lines


def expected_user_trades(schema_dir: Path = SCHEMA_DIR) -> TableShape:
    """Parse the contract's CREATE TABLE (schema/02_user_trades.cql): one source of truth."""
    text = "\n".join(ln.split("--", 1)[0] for ln in (schema_dir / "02_user_trades.cql").read_text().splitlines())
    body = text[text.index("(") + 1:]
    columns = dict(re.findall(r"^\s*([a-z_]+)\s+([a-z]+)\s*,\s*$", body, re.M))
    pk = re.search(r"PRIMARY KEY\s*\(\(([^)]*)\)\s*,([^)]*)\)", body)
    partition = tuple(c.strip() for c in pk.group(1).split(","))
    order = dict((c, d.upper()) for c, d in re.findall(r"(\w+)\s+(ASC|DESC)", text.split("CLUSTERING ORDER BY")[1]))
    clustering = tuple((c.strip(), order.get(c.strip(), "ASC")) for c in pk.group(2).split(","))
    return TableShape(columns, partition, clustering)


def live_shape(session: Session, keyspace: str, table: str = TARGET_TABLE) -> TableShape | None:
    cluster = session.cluster
    cluster.refresh_schema_metadata()
    ks = cluster.metadata.keyspaces.get(keyspace)
    meta = ks.tables.get(table) if ks else None
    if meta is None:
        return None
    return TableShape(
        columns={name: col.cql_type for name, col in meta.columns.items()},
        partition_key=tuple(c.name for c in meta.partition_key),
        clustering=tuple((c.name, "DESC" if c.is_reversed else "ASC") for c in meta.clustering_key),
        options=TableOptions(default_time_to_live=meta.options.get("default_time_to_live") or 0,
                             gc_grace_seconds=meta.options.get("gc_grace_seconds", 0),
                             compaction=dict(meta.options.get("compaction") or {}).get("class", "")),
    )


def verify_user_trades(session: Session, config: Config) -> TableShape:
    """Raise SchemaDriftError with a readable diff unless user_trades matches the contract: its
    columns and keys, and options that keep history (TableOptions)."""
    live = live_shape(session, config.keyspace)
    if live is None:
        raise SchemaDriftError(f"{config.keyspace}.{TARGET_TABLE} does not exist")
    problems = expected_user_trades().diff(live)
    if problems:
        raise SchemaDriftError(f"{config.keyspace}.{TARGET_TABLE} differs from the contract:\n  - "
                               + "\n  - ".join(problems))
    return live
