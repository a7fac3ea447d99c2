"""Names, limits and consistency levels; every identifier is validated once, here.

Identifiers from the environment, Airflow Params or connections are checked against a strict
pattern before they can reach CQL text, so no free text is ever pasted into a statement.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from cassandra import ConsistencyLevel

from trade_migration.core import settings
from trade_migration.core.errors import ConfigError

IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,47}")
LEGACY_TABLE = "settled_trades"
SYMBOLS_TABLE = "symbols"
TARGET_TABLE = "user_trades"
STATE_TABLES = ("migration_flags", "migration_phases", "backfill_ranges", "rejected_trades",
                "parity_runs", "audit_log", "dual_write_retries", "restore_ranges")
REPLICATION_CLASSES = {"SimpleStrategy", "NetworkTopologyStrategy"}


def identifier(value: object, *, what: str) -> str:
    """Return value if it is a safe lower-case CQL identifier, else raise ConfigError."""
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        raise ConfigError(f"{what} must match {IDENTIFIER.pattern} (got {value!r})")
    return value


def consistency(name: str, *, what: str) -> int:
    level = ConsistencyLevel.name_to_value.get(str(name).upper())
    if level is None:
        raise ConfigError(f"{what}: unknown consistency level {name!r}")
    return level


def replication(spec: dict | str) -> dict:
    """Validate a replication map: SimpleStrategy with an RF, or NetworkTopologyStrategy per DC."""
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"replication is not JSON: {exc}") from exc
    if not isinstance(spec, dict) or spec.get("class") not in REPLICATION_CLASSES:
        raise ConfigError(f"replication class must be one of {sorted(REPLICATION_CLASSES)}: {spec!r}")
    out = {"class": spec["class"]}
    for key, val in spec.items():
        if key == "class":
            continue
        if spec["class"] == "SimpleStrategy" and key != "replication_factor":
            raise ConfigError(f"SimpleStrategy takes only replication_factor, not {key!r}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", key):
            raise ConfigError(f"bad datacenter name {key!r}")
        if not isinstance(val, int) or isinstance(val, bool) or not 1 <= int(val) <= 9:
            raise ConfigError(f"replication factor for {key!r} must be an integer 1..9: {val!r}")
        out[key] = int(val)
    if len(out) < 2:
        raise ConfigError("replication needs at least one replication factor")
    return out


@dataclass(frozen=True)
class Config:
    """Where the migration runs. Build it with Config.from_env() or Config(...) in tests; the
    defaults are the settings' (core.settings.CONNECTION)."""

    keyspace: str = settings.KEYSPACE.default
    contact_points: tuple[str, ...] = settings.CONTACT_POINTS.default
    port: int = settings.PORT.default
    replication: dict | str = settings.REPLICATION.default     # a JSON text becomes the validated dict
    read_consistency: str = settings.READ_CONSISTENCY.default
    write_consistency: str = settings.WRITE_CONSISTENCY.default
    serial_consistency: str = settings.SERIAL_CONSISTENCY.default
    local_dc: str | None = settings.LOCAL_DC.default

    def __post_init__(self) -> None:
        identifier(self.keyspace, what="keyspace")
        object.__setattr__(self, "replication", replication(self.replication))
        for what in ("read_consistency", "write_consistency", "serial_consistency"):
            consistency(getattr(self, what), what=what)
        if not 0 < int(self.port) < 65536:
            raise ConfigError(f"port out of range: {self.port}")

    @property
    def read_cl(self) -> int:
        return consistency(self.read_consistency, what="read_consistency")

    @property
    def write_cl(self) -> int:
        return consistency(self.write_consistency, what="write_consistency")

    @property
    def serial_cl(self) -> int:
        return consistency(self.serial_consistency, what="serial_consistency")

    @classmethod
    def from_env(cls, env: dict | None = None, **overrides) -> Config:
        """The TM_* variables (TM_KEYSPACE, TM_CONTACT_POINTS, TM_REPLICATION, ...), then `overrides`."""
        return cls(**{**{name: s.get(env) for name, s in settings.CONNECTION.items()}, **overrides})


def config_from_connection(conn) -> Config:
    """Keyspace and consistency from an Airflow connection (its schema and extras), else TM_*
    variables. Any object with `schema` and `extra_dejson` will do: no Airflow import here."""
    extras = conn.extra_dejson or {}
    overrides = {"keyspace": identifier(conn.schema, what="connection schema (keyspace)")} if conn.schema else {}
    for name in ("read_consistency", "write_consistency", "serial_consistency", "local_dc"):
        if extras.get(name):
            overrides[name] = extras[name]
    return Config.from_env(**overrides)
