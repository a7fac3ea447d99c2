"""The dual_write and read_path flags: read by the live services, changed only by compare-and-set.

The settlement service and the gateway are not Airflow tasks; they read these rows. A change is
a lightweight transaction on the value and version the operator last saw, so two operators can
never race one another into an unknown state: exactly one wins, the other gets FlagConflict
naming who got there first. Rolling back is just setting the previous value the same way.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from cassandra.cluster import Session

from trade_migration.core.clock import as_stored, now, utc
from trade_migration.core.config import Config
from trade_migration.core.errors import ConfigError, FlagConflict
from trade_migration.core.prepared import prepared
from trade_migration.state import phases
from trade_migration.statements.flags import flag_compare_and_set, flag_insert_if_absent, flag_select

log = logging.getLogger(__name__)

DUAL_WRITE, READ_PATH = "dual_write", "read_path"
# dual_write, as the settlement service honours it: off = settled_trades only; on = both tables;
# new_only = user_trades only (settled_trades no longer written: what the cleanup waits for);
# retired = settled_trades is dropped and the migration over (user_trades only; set by cleanup).
NEW_ONLY, RETIRED = "new_only", "retired"
VALUES = {
    DUAL_WRITE: ("off", "on", NEW_ONLY, RETIRED),
    READ_PATH: ("settled_trades", "shadow", "user_trades"),
}
DEFAULTS = {DUAL_WRITE: "off", READ_PATH: "settled_trades"}
PHASE_OF = {DUAL_WRITE: phases.DUAL_WRITE, READ_PATH: phases.READ_PATH}   # audit log grouping
SYSTEM_ACTOR = "migration"
ROLLED_BACK = "rolled_back"   # phase status once its flag is set back to the default
# What a flag value means for its phase record. dual_write "on" completes only once the DAG has
# seen dual writes land; read_path "user_trades" completes the switch.
PHASE_STATUS = {
    (DUAL_WRITE, "on"): phases.RUNNING, (DUAL_WRITE, "off"): ROLLED_BACK,
    (READ_PATH, "shadow"): phases.RUNNING, (READ_PATH, "user_trades"): phases.COMPLETED,
    (READ_PATH, "settled_trades"): ROLLED_BACK,
}


def in_effect_from(changed_at: datetime, refresh_bound_s: float) -> datetime:
    """When a flag change holds for every settlement service: each re-reads the flags within
    `refresh_bound_s`, so a trade settled later was written under the new value."""
    return changed_at + timedelta(seconds=refresh_bound_s)


def check_writer_switch(value: str, current: dict[str, Flag]) -> None:
    """new_only (the writer stops writing settled_trades) only once reads have moved to
    user_trades and dual writes are on: otherwise trades would vanish from some read path."""
    if value != NEW_ONLY:
        return
    if current[READ_PATH].value != "user_trades":
        raise ConfigError(f"dual_write cannot be {NEW_ONLY!r} while read_path is {current[READ_PATH].value!r}:"
                          " switch reads to user_trades first (user_trades_read_path)")
    if current[DUAL_WRITE].value not in ("on", NEW_ONLY):
        raise ConfigError(f"dual_write cannot go from {current[DUAL_WRITE].value!r} to {NEW_ONLY!r}; turn it on first")


@dataclass(frozen=True)
class Flag:
    name: str
    value: str
    version: int
    changed_at: datetime | None = None
    changed_by: str | None = None
    reason: str | None = None


def _flag(row) -> Flag:
    """A stored row; changed_at as an aware UTC time (the driver returns naive UTC)."""
    at = utc(row.changed_at)
    return Flag(row.name, row.value, row.version, at, row.changed_by, row.reason)


def check_name(name: str) -> None:
    if name not in VALUES:
        raise ConfigError(f"unknown flag {name!r}; flags are {', '.join(VALUES)}")


def validate(name: str, value: str) -> None:
    """Raise ConfigError unless name is a known flag and value one of its values."""
    check_name(name)
    if value not in VALUES[name]:
        raise ConfigError(f"flag {name!r} cannot be {value!r}; it takes {', '.join(VALUES[name])}")


class Flags:
    def __init__(self, session: Session, config: Config):
        self.session, self.config, self.ks = session, config, config.keyspace

    def get(self, name: str, *, serial: bool = False) -> Flag:
        """The flag as stored, or its default (version 0) when it was never set.

        serial=True reads through Paxos, so it sees every committed compare-and-set.
        """
        check_name(name)
        cl = self.config.serial_cl if serial else self.config.read_cl
        row = self.session.execute(prepared(self.session, flag_select(self.ks), consistency=cl),
                                   (name,)).one()
        return _flag(row) if row is not None else Flag(name, DEFAULTS[name], 0)

    def all(self) -> dict[str, Flag]:
        rows = self.session.execute(prepared(self.session, flag_select(self.ks, every=True),
                                             consistency=self.config.read_cl))
        found = {r.name: _flag(r) for r in rows if r.name in VALUES}
        return {name: found.get(name, Flag(name, DEFAULTS[name], 0)) for name in VALUES}

    def set(self, name: str, value: str, *, actor: str, reason: str, expected: Flag | None = None) -> Flag:
        """Compare-and-set `name` to `value`; returns the flag as now stored.

        `expected` is the flag as the operator saw it (default: read now); the database applies
        the change only if the flag still has that value and version, else FlagConflict is
        raised and nothing is written. Setting the value the flag already has changes nothing
        and is logged as such (a rerun of the same DAG run is harmless).
        """
        validate(name, value)
        if not actor or not str(actor).strip():
            raise ConfigError(f"changing flag {name!r} needs an actor (who)")
        if not reason or not str(reason).strip():
            raise ConfigError(f"changing flag {name!r} needs a reason (why)")
        self._ensure(name)
        expected = self.get(name, serial=True) if expected is None else expected
        audit = phases.State(self.session, self.config)
        if expected.value == value:
            current = self.get(name, serial=True)
            if (current.value, current.version) != (expected.value, expected.version):
                raise FlagConflict(name, expected, current)
            log.info("flag %s is already %r (version %d): nothing to change", name, value, current.version)
            audit.audit(PHASE_OF[name], f"flag {name} unchanged", actor=actor, reason=reason,
                        details={"flag": name, "value": value, "version": current.version})
            return current
        at = now()
        changed_at = as_stored(at)
        stmt = prepared(self.session, flag_compare_and_set(self.ks),
                        consistency=self.config.write_cl, idempotent=False)
        bound = stmt.bind((value, expected.version + 1, changed_at, actor, reason, name,
                           expected.value, expected.version))
        bound.serial_consistency_level = self.config.serial_cl
        result = self.session.execute(bound)
        if not result.was_applied:
            raise FlagConflict(name, expected, self.get(name, serial=True))
        new = Flag(name, value, expected.version + 1, changed_at, actor, reason)
        log.info("flag %s: %r -> %r (version %d) by %s: %s", name, expected.value, value, new.version,
                 actor, reason)
        audit.audit(PHASE_OF[name], f"flag {name} {expected.value} -> {value}", actor=actor, reason=reason,
                    details={"flag": name, "from": expected.value, "to": value, "version": new.version,
                             "changed_at": changed_at.isoformat()})
        return new

    def _ensure(self, name: str) -> None:
        """Create the flag row with its default (version 0) so the first change has a row to CAS."""
        stmt = prepared(self.session, flag_insert_if_absent(self.ks),
                        consistency=self.config.write_cl, idempotent=False)
        bound = stmt.bind((name, DEFAULTS[name], now(), SYSTEM_ACTOR, "default before the first change"))
        bound.serial_consistency_level = self.config.serial_cl
        self.session.execute(bound)
