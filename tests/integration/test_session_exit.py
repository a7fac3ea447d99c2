"""A process that used the driver ends when its work does (core.session.let_event_loop_end)."""
from __future__ import annotations

import subprocess
import sys

CHILD = """
from cassandra.io import libevreactor
from trade_migration.core.config import Config
from trade_migration.core.session import connect, let_event_loop_end
session = connect(Config.from_env(), request_timeout=120)
for _ in range(20):
    session.execute("SELECT release_version FROM system.local")
session.cluster.shutdown()
let_event_loop_end()
print("loop thread alive:", libevreactor._global_loop._thread.is_alive())
"""


def test_the_event_loop_ends_after_the_last_cluster_shuts_down(cluster_session):
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.splitlines() == ["loop thread alive: False"]
    assert "could not be joined" not in done.stderr


def test_an_open_cluster_is_left_to_the_drivers_own_clean_up(cluster_session):
    child = CHILD.replace("session.cluster.shutdown()\n", "")
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.splitlines() == ["loop thread alive: True"]
