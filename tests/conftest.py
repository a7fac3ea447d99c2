"""Shared fixtures: a real local Cassandra (started by `make test`), one keyspace per test module."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from testkit import generator

from trade_migration.core.config import STATE_TABLES, Config
from trade_migration.core.session import connect
from trade_migration.create_table import schema

REPO = Path(__file__).resolve().parents[1]
ALL_TABLES = ("symbols", "settled_trades", "user_trades", *STATE_TABLES)
OPERATOR_HOMES = (REPO / ".airflow", Path("~/airflow").expanduser())


def pytest_configure(config):
    """The tests' runs, approvals and logs must never land in the Airflow home an operator's UI reads."""
    home = os.environ.get("AIRFLOW_HOME")
    if not home or Path(home).resolve() in {h.resolve() for h in OPERATOR_HOMES}:
        raise pytest.UsageError(f"AIRFLOW_HOME={home or '(unset: ~/airflow)'} is an operator's Airflow home; run"
                                " `make test`, or set AIRFLOW_HOME to a folder of its own"
                                " (and `bin/airflow db migrate` it) before running pytest")
    # The cleanup's approval watch looks every second (not every 5 minutes): a cleanup run in a test
    # ends as soon as its approval is answered, in dag.test() and on the real scheduler alike.
    os.environ.setdefault("TM_APPROVAL_WATCH_EVERY_S", "1")


@pytest.fixture(scope="session")
def cluster_session():
    """One driver session to the local node for the whole run."""
    session = connect(Config.from_env())
    yield session
    session.cluster.shutdown()


def module_keyspace(request) -> str:
    name = re.sub(r"[^a-z0-9_]", "_", request.module.__name__.rsplit(".", 1)[-1].lower())
    return ("t_" + name)[:48]


@pytest.fixture(scope="module")
def cfg(request, cluster_session) -> Config:
    """A Config whose keyspace belongs to this test module, created with the full schema."""
    config = Config(keyspace=module_keyspace(request))
    schema.apply(cluster_session, config)
    return config


@pytest.fixture
def db(cluster_session, cfg):
    """The session, with every table of this module's keyspace emptied first."""
    for table in ALL_TABLES:
        cluster_session.execute(f"TRUNCATE {cfg.keyspace}.{table}")
    return cluster_session


def load_trades(session, config: Config, n: int, seed: int) -> generator.Plan:
    generator.write_symbols(session, config.keyspace)
    return generator.write_trades(session, config.keyspace, n, seed)


@pytest.fixture
def airflow_conn(cfg, monkeypatch):
    """Point the DAGs' scylla_default connection at this module's keyspace."""
    import json

    monkeypatch.setenv("AIRFLOW_CONN_SCYLLA_DEFAULT", json.dumps(
        {"conn_type": "cassandra", "host": "127.0.0.1", "port": 9042, "schema": cfg.keyspace}))
    return cfg


def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def mark_done(session, config: Config, *names: str) -> None:
    """Record phases as completed, for tests of a later phase."""
    from trade_migration.state.phases import COMPLETED, State

    state = State(session, config)
    for name in names:
        state.mark(name, COMPLETED, run_id="test", actor="pytest")


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium through PyPI playwright (tests/e2e)."""
    from browser_kit import CHROMIUM, CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser tab with its own cookies (one signed-in user)."""
    from browser_kit import SHOTS

    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(180_000)
    yield tab
    context.close()
