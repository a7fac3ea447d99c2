"""docker-compose.yml and `make cluster-up` run Airflow with the same settings: airflow.env.

Both deployments read the file; neither may set one of its keys to something else."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml
from testkit import cluster_script

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = ("airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker")


@pytest.fixture(scope="module")
def cluster():
    return cluster_script.load()


@pytest.fixture(scope="module")
def shared(cluster) -> dict[str, str]:
    return cluster.shared_settings()


def test_the_file_holds_the_production_settings(shared):
    assert shared["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert shared["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] == "300"
    assert all(key.startswith(("AIRFLOW__", "TM_", "PYTHON")) for key in shared), shared


def test_every_compose_airflow_service_reads_it_and_overrides_none(shared):
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    for name in AIRFLOW_SERVICES:
        service = services[name]
        assert service.get("env_file") == "airflow.env", name
        own = service.get("environment") or {}
        clash = {k: own[k] for k in own if k in shared}
        assert not clash, f"{name} sets {clash}: change airflow.env instead"


def test_the_native_cluster_passes_it_unchanged(cluster, shared):
    env = cluster.airflow_env()
    assert {k: env[k] for k in shared} == shared
    # and what differs per deployment is its own: local addresses, the three-node ring
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://127.0.0.1:")
    assert env["TM_CONTACT_POINTS"] == "127.0.0.6,127.0.0.7,127.0.0.8"


def test_an_overrides_file_wins_and_the_shell_does_not_leak_in(tmp_path, monkeypatch):
    overrides = tmp_path / "drill.env"
    overrides.write_text("# a fault drill\nAIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT=20\n")
    monkeypatch.setenv("AIRFLOW_CONN_SCYLLA_DEFAULT", '{"host": "127.0.0.1"}')
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    env = cluster_script.load(CLUSTER_OVERRIDES=str(overrides)).airflow_env()
    assert env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] == "20"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert '"host": "127.0.0.6,127.0.0.7,127.0.0.8"' in env["AIRFLOW_CONN_SCYLLA_DEFAULT"]


def test_a_taken_port_is_named(cluster):

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(cluster.ClusterError, match=rf"port {port} \(Redis\) is taken .* CLUSTER_REDIS_PORT"):
            cluster.free_port_or_die(port, "Redis", "CLUSTER_REDIS_PORT")


def test_kill_ends_the_tasks_a_component_started_in_process_groups_of_their_own(tmp_path):
    """Airflow's supervisor runs each task in a process group of its own: a kill of the worker must
    reach it, as the loss of the worker's machine would."""
    import os
    import subprocess
    import sys
    import time

    cs = cluster_script.load(CLUSTER_BASE=str(tmp_path))
    cs.pid_path("worker-1").parent.mkdir(parents=True)
    code = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'],"
            " process_group=0); time.sleep(600)")
    worker = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    cs.pid_path("worker-1").write_text(str(worker.pid))
    deadline = time.monotonic() + 30
    while len(cs.session_members(worker.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    [task] = [pid for pid in cs.session_members(worker.pid) if pid != worker.pid]
    assert os.getpgid(task) == task != os.getpgid(worker.pid)   # not in the worker's group

    cs.kill("worker-1")
    worker.wait(10)
    deadline = time.monotonic() + 10
    while cs.alive(task) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(cs.alive(pid) for pid in [task, *cs.session_members(worker.pid)])   # zombies at most
    assert not cs.pid_path("worker-1").exists()


def test_the_supervisor_starts_an_exited_command_again_and_stops_with_it(tmp_path):
    """scripts/cluster/supervise.py, compose's `restart: unless-stopped` for the native cluster."""
    import signal
    import subprocess
    import sys
    import time

    starts = tmp_path / "starts"
    # the first run exits at once (as a scheduler whose database went away), the second stays up
    code = (f"p = {str(starts)!r}; open(p, 'a').write('x'); import time;"
            " time.sleep(0 if len(open(p).read()) < 2 else 600)")
    sup = subprocess.Popen([sys.executable, str(REPO / "scripts" / "cluster" / "supervise.py"), sys.executable, "-c",
                            code], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while (not starts.exists() or len(starts.read_text()) < 2) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    sup.send_signal(signal.SIGTERM)
    assert sup.wait(10) == 128 + signal.SIGTERM   # the command's own end, passed on
    assert starts.read_text() == "xx"        # started again once, not after the stop
    assert "exited with 0; starting it again in 2 s" in sup.stdout.read()
