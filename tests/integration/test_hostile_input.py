"""Hostile input against the real node: every identifier that can come from config, the
environment, a connection or a Param is checked against the strict pattern before any CQL text
is built; everything else is bound as a value, stored literally, never executed; and the cleanup
can drop settled_trades of its own keyspace and nothing else.

After every attempt the cluster's schema (every keyspace, every table) is compared with a
snapshot taken before: an injection that got through would show up there.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from datetime import UTC, datetime

import pytest
from conftest import REPO, load_trades
from testkit import statements as testkit_statements
from testkit import synthetic_ledger
from testkit.statements import count_all

from trade_migration import statements
from trade_migration.archive import store
from trade_migration.backfill import plan
from trade_migration.cleanup import drop, gates
from trade_migration.core.config import Config
from trade_migration.core.errors import ConfigError
from trade_migration.create_table import schema
from trade_migration.dual_write.writer import WriterOptions
from trade_migration.state import flags, phases
from trade_migration.state.flags import DUAL_WRITE, NEW_ONLY, Flags
from trade_migration.state.ledger import Ledger
from trade_migration.statements.system import drop_table
from trade_migration.statements.user_trades import insert_user_trade_into
from trade_migration.ui import status

# Strings an attacker (or a typo) could put where a keyspace, table or ledger name goes.
INJECTIONS = [
    "trading; DROP KEYSPACE trading",
    "trading.settled_trades",
    "user_trades WITH comment = 'x'",
    "x' OR '1'='1",
    'settled_trades"; DROP TABLE trading.user_trades; --',
    "trading --",
    "Trading",
    "TRADING",
    "trading\n",
    " trading",
    "t" * 49,
    "1trading",
    "_trading",
    "trad-ing",
    "trädïng",
    "trading\x00",
    "{ks}",
    "%s",
    "",
    None,
    42,
    ["trading"],
]
TRIED: dict[str, int] = {}


def tried(what: str, n: int = 1) -> None:
    TRIED[what] = TRIED.get(what, 0) + n


MINE = "t_test_hostile_input"   # this module's keyspaces start so (others share the node and change theirs)


def schema_snapshot(db) -> dict:
    """Every keyspace of this module and every system keyspace, with its replication; every table
    in them with its columns."""
    def ours(ks: str) -> bool:
        return ks.startswith(MINE) or ks.startswith("system")

    out = {}
    for r in db.execute("SELECT keyspace_name, replication FROM system_schema.keyspaces"):
        if ours(r.keyspace_name):
            out[("keyspace", r.keyspace_name)] = dict(r.replication)
    for r in db.execute("SELECT keyspace_name, table_name, column_name, type FROM system_schema.columns"):
        if ours(r.keyspace_name):
            out.setdefault(("table", r.keyspace_name, r.table_name), {})[r.column_name] = r.type
    return out


def aimed_at(ks: str) -> list[str]:
    """Injections aimed at this module's own keyspace, so that one that got through would show."""
    return [f"{ks}; DROP TABLE {ks}.settled_trades", f"{ks}.settled_trades", f"{ks} WITH x = 1",
            f"settled_trades; DROP KEYSPACE {ks}", f"{ks}' --"]


@pytest.fixture
def unchanged(cluster_session, cfg):
    """Fails the test if the schema of this module's keyspaces (or a system keyspace) differs after it."""
    assert cfg.keyspace.startswith(MINE)
    before = schema_snapshot(cluster_session)
    assert ("table", cfg.keyspace, "settled_trades") in before
    yield
    after = schema_snapshot(cluster_session)
    assert after == before, {k: (before.get(k), after.get(k)) for k in before.keys() | after.keys()
                             if before.get(k) != after.get(k)}


def keyspace_builders():
    """Every statement builder (of the product and of the test kit) whose first parameter is the keyspace."""
    modules = [importlib.import_module(f"trade_migration.statements.{m.name}")
               for m in pkgutil.iter_modules(statements.__path__)] + [testkit_statements]
    for module in modules:
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            params = list(inspect.signature(fn).parameters)
            if fn.__module__ == module.__name__ and params and params[0] == "keyspace" and not name.startswith("_"):
                yield f"{module.__name__}.{name}", fn, params


def test_every_keyspace_entry_point_refuses_what_is_not_an_identifier(db, cfg, unchanged):
    builders = list(keyspace_builders())
    assert len(builders) >= 40            # the whole module, not a sample
    for bad in INJECTIONS + aimed_at(cfg.keyspace):
        with pytest.raises(ConfigError, match="keyspace must match"):
            Config(keyspace=bad)
        if isinstance(bad, str) and "\x00" not in bad:
            with pytest.raises(ConfigError, match="keyspace must match"):
                Config.from_env({"TM_KEYSPACE": bad})
        for _name, fn, params in builders:
            args = [bad] + ["user_trades"] * len([p for p in params if p == "table"])
            with pytest.raises(ConfigError, match="keyspace must match"):
                fn(*args)
        tried("keyspace", 2 + len(builders))


def test_every_table_name_entry_point_refuses_what_is_not_an_identifier(db, cfg, unchanged):
    for bad in INJECTIONS + aimed_at(cfg.keyspace):
        for fn in (count_all, drop_table, insert_user_trade_into):
            with pytest.raises(ConfigError, match="table must match"):
                fn(cfg.keyspace, bad)
        with pytest.raises(ConfigError, match="user_trades_table must match"):
            WriterOptions(user_trades_table=bad)
        tried("table", 4)


def test_every_ledger_name_entry_point_refuses_what_is_not_an_identifier(db, cfg, unchanged):
    at = datetime.now(UTC)
    for bad in INJECTIONS + aimed_at(cfg.keyspace):
        with pytest.raises(ConfigError, match="backfill_id must match"):
            Ledger(db, cfg, bad)
        with pytest.raises(ConfigError, match="backfill_id must match"):
            gates.GateOptions(backfill_id=bad)
        if bad is not None:     # the page's None means "the latest run's ledger"
            with pytest.raises(ConfigError, match="backfill_id must match"):
                status.migration_status(db, cfg, backfill_id=bad)
        with pytest.raises(ConfigError, match="backfill_id must match"):
            synthetic_ledger.plant(db, cfg, bad, 4, at=at)
        tried("backfill_id", 4)
    assert list(db.execute(f"SELECT * FROM {cfg.keyspace}.backfill_ranges")) == []


def test_replication_and_consistency_refuse_injections(db, cfg, unchanged):
    for bad in ['{"class": "SimpleStrategy", "replication_factor": "1}; DROP KEYSPACE trading; --"}',
                '{"class": "SimpleStrategy\', \'x\': \'y", "replication_factor": 1}',
                '{"class": "NetworkTopologyStrategy", "dc1\': 3, \'dc2": 3}',
                '{"class": "NetworkTopologyStrategy", "dc1": 3.5}',
                '{"class": "NetworkTopologyStrategy", "dc1": true}',
                "{'class': 'SimpleStrategy'}", "SimpleStrategy", "[]", "{}"]:
        with pytest.raises(ConfigError):
            Config(keyspace="t_hostile_never", replication=bad)
        with pytest.raises(ConfigError):
            Config.from_env({"TM_KEYSPACE": "t_hostile_never", "TM_REPLICATION": bad})
        tried("replication", 2)
    for bad in ["QUORUM; DROP", "ALL'", "", "quorum quorum", "TWO_OF_THREE"]:
        for field in ("read_consistency", "write_consistency", "serial_consistency"):
            with pytest.raises(ConfigError):
                Config(keyspace="t_hostile_never", **{field: bad})
            tried("consistency")


def test_values_from_params_are_bound_and_stored_literally(db, cfg, unchanged):
    """actor, reason, range labels and flag values are never part of CQL text: a hostile one is
    either refused by name (flags, ranges) or stored exactly as given."""
    hostile = "x'); DROP TABLE settled_trades; -- {{ 7*7 }} %s ${keyspace}"
    phases.State(db, cfg).mark(phases.CREATE_TABLE, phases.COMPLETED, run_id=hostile, actor=hostile,
                               reason=hostile, details={hostile: hostile})
    changed = Flags(db, cfg).set(DUAL_WRITE, "on", actor=hostile, reason=hostile)
    assert (changed.changed_by, changed.reason) == (hostile, hostile)
    stored = Flags(db, cfg).get(DUAL_WRITE)
    assert (stored.value, stored.changed_by, stored.reason) == ("on", hostile, hostile)
    record = phases.State(db, cfg).phase(phases.CREATE_TABLE)
    assert (record.run_id, record.actor, record.details) == (hostile, hostile, {hostile: hostile})
    assert {(r.actor, r.reason) for r in phases.State(db, cfg).audit_log()} == {(hostile, hostile)}
    tried("bound value", 4)
    for bad in INJECTIONS[:8]:
        with pytest.raises(ConfigError):
            flags.validate(DUAL_WRITE, bad)
        with pytest.raises(ConfigError):
            flags.check_name(bad)
        tried("flag name/value", 2)
    ledger = Ledger(db, cfg, "hostile")
    states = plan.ensure_ledger(db, cfg, ledger, 4)
    for bad in INJECTIONS[:8] + ["(1, 2]", "-1 OR 1=1"]:
        with pytest.raises(ConfigError, match="is not in backfill 'hostile'"):
            plan.select(states, ledger, [bad])
        tried("range label")
    assert [(s.status, s.checkpoint) for s in ledger.load()] == [(s.status, s.checkpoint) for s in states]


def test_archive_url_refuses_relative_and_parent_paths():
    for bad in ["../../etc", "reports/../..", "relative/dir", "/", "/tmp/../etc", "/tmp/x\x00y", "~/archive",
                "s3://bucket/../x", "s3://key:secret@bucket/x", "s3://b/x::file:///etc", "ftp://host/x"]:
        with pytest.raises(ConfigError, match="archive_url"):
            store.archive_url(bad)
        tried("archive_url")


def test_a_system_keyspace_cannot_be_written(cluster_session, cfg, unchanged):
    """'system_schema' and friends match the identifier pattern; the node itself refuses any table
    the migration would create in them, so a connection pointed there fails without a change."""
    from cassandra import InvalidRequest, Unauthorized

    for ks in ("system", "system_schema", "system_auth", "system_distributed", "system_traces"):
        config = Config(keyspace=ks)
        with pytest.raises((InvalidRequest, Unauthorized)):
            schema.apply(cluster_session, config)
        tried("system keyspace")


def test_the_cleanup_drops_settled_trades_of_its_keyspace_and_nothing_else(cluster_session, cfg):
    """Whatever the operator typed (actor, reason, run id, details), drop_legacy builds its DROP
    from config.LEGACY_TABLE and the validated keyspace only."""
    db = cluster_session
    victim = Config(keyspace=cfg.keyspace + "_victim")
    bystander = Config(keyspace=cfg.keyspace + "_bystander")
    for c in (victim, bystander):
        db.execute(f"DROP KEYSPACE IF EXISTS {c.keyspace}")
        schema.apply(db, c)
        load_trades(db, c, 100, seed=9)
    db.execute(f"CREATE TABLE IF NOT EXISTS {victim.keyspace}.settled_trades_archive (k int PRIMARY KEY)")
    try:
        before = schema_snapshot(db)
        Flags(db, victim).set(DUAL_WRITE, "on", actor="pytest", reason="hostile cleanup test")
        Flags(db, victim).set(DUAL_WRITE, NEW_ONLY, actor="pytest", reason="hostile cleanup test")
        hostile = "settled_trades; DROP KEYSPACE " + bystander.keyspace + "; --"
        result = drop.drop_legacy(db, victim, actor=hostile, run_id=hostile,
                                     details={"table": "user_trades", "keyspace": bystander.keyspace, "x": hostile})
        tried("cleanup drop")
        after = schema_snapshot(db)
        gone = {k for k in before if k not in after}
        assert gone == {("table", victim.keyspace, "settled_trades")}
        assert after == {k: v for k, v in before.items() if k not in gone}
        assert result["table"] == f"{victim.keyspace}.settled_trades"
        assert db.execute(f"SELECT count(*) FROM {bystander.keyspace}.settled_trades").one()[0] == 100
        with pytest.raises(ConfigError):
            drop_table(victim.keyspace, hostile)
    finally:
        for c in (victim, bystander):
            db.execute(f"DROP KEYSPACE IF EXISTS {c.keyspace}")


def test_no_module_reads_credentials():
    """Credentials come only from the Airflow connection (the provider's hook builds the auth
    provider and TLS); include/ and dags/ never handle a password or build an auth provider. The
    exceptions: the webhook notifier's signing secret, the password field of its own http connection,
    and the archive store's secret key, the password field of its own connection (archive/store.py);
    core/session.py asks whether the Cluster the hook built has TLS, and reads none of it."""
    offenders = []
    for folder in ("include", "dags", "plugins"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text()
            if path == REPO / "dags" / "migration_alerts.py":
                text = re.sub(r"\bconn\.password\b|password (field|=)|connection password", "", text)
            if path in (REPO / "include" / "trade_migration" / "archive" / "store.py",
                        REPO / "dags" / "archive_storage.py"):
                text = re.sub(r"\bconn\.password\b|login(/|, )password|password =", "", text)
            if path == REPO / "include" / "trade_migration" / "core" / "session.py":
                # only asks whether the hook's Cluster has TLS at all (a plaintext client at a TLS-only node)
                text = re.sub(r'getattr\(cluster, "ssl_(context|options)", None\)', "", text)
            for word in ("password", "PlainTextAuthProvider", "auth_provider", "ssl_context", "ssl_options",
                         "TM_PASSWORD", "TM_USER"):
                if re.search(rf"\b{word}\b", text, re.I):
                    offenders.append(f"{path.relative_to(REPO)}: {word}")
    assert offenders == []


def test_zz_report_counts():
    print(f"\nhostile identifiers/values tried: {sum(TRIED.values())} {TRIED}")
