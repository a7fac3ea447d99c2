"""A real Airflow for end-to-end tests: api-server, scheduler, dag-processor and triggerer (or,
through `attach`, the REST API of one started elsewhere: the cluster tests').

Each component runs as its own process (in its own session, so teardown ends exactly the process
groups started here) with an AIRFLOW_HOME under a temporary directory, SQLite, the
SimpleAuthManager and the project's dags/ and plugins/ folders, on a free port. `start()` waits
for /api/v2/monitor/health to report every component healthy, reads the admin password that the
api-server generates, and gets a JWT from POST /auth/token; `api()` then calls the REST API with
it. The components' output goes to <home>/logs/<component>.log (`tail()` shows it on failure).

    with running_airflow(tmp_path / "airflow", env={"AIRFLOW_CONN_SCYLLA_DEFAULT": ...}) as af:
        af.unpause("user_trades_cleanup")
        run_id = af.trigger("user_trades_cleanup", conf={...})
        af.wait_for_task_state("user_trades_cleanup", run_id, "approve", {"awaiting_input"})
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
HEALTHY = {"metadatabase", "scheduler", "triggerer", "dag_processor"}
ADMIN = "admin"
FINISHED = {"success", "failed"}


class AirflowError(RuntimeError):
    """The test Airflow did not start or did not reach the awaited state."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AirflowServer:
    def __init__(self, home: Path, *, env: dict[str, str] | None = None, port: int | None = None):
        self.home = Path(home)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = self._environment(env or {})
        self.procs: dict[str, subprocess.Popen] = {}
        self.token: str | None = None
        self.password: str | None = None
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def _environment(self, extra: dict[str, str]) -> dict[str, str]:
        """The process environment of bin/airflow-env, pointed at this home and port."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
        env.update({
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__AUTH_MANAGER":
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "AIRFLOW_CONN_SCYLLA_DEFAULT": json.dumps(
                {"conn_type": "cassandra", "host": "127.0.0.1", "port": 9042, "schema": "trading"}),
            "TM_REPORT_DIR": str(self.home / "reports"),
            # The cleanup's approval watch (a reschedule sensor) looks every 10 s here: at 1 s the
            # LocalExecutor's "finished" event of one look can reach the scheduler while the next look
            # runs, and the scheduler then fails that look (Airflow's race; production looks every 300 s).
            "TM_APPROVAL_WATCH_EVERY_S": "10",
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        })
        env.update(extra)
        return env

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self, timeout: float = 240) -> AirflowServer:
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        migrate = subprocess.run([str(VENV_BIN / "airflow"), "db", "migrate"], env=self.env, cwd=self.home,
                                 capture_output=True, text=True, timeout=300)
        if migrate.returncode != 0:
            raise AirflowError(f"airflow db migrate failed:\n{migrate.stdout[-3000:]}\n{migrate.stderr[-3000:]}")
        for name in COMPONENTS:
            with open(self.home / "logs" / f"{name}.log", "ab") as log:   # the child keeps its own copy
                self.procs[name] = subprocess.Popen([str(VENV_BIN / "airflow"), name], env=self.env,
                                                    cwd=self.home, stdout=log, stderr=subprocess.STDOUT,
                                                    start_new_session=True)
            log.close()
        self.wait(self._healthy, timeout, "every component healthy at /api/v2/monitor/health")
        passwords = self.home / "simple_auth_manager_passwords.json.generated"
        self.wait(passwords.exists, 30, f"{passwords}")
        self.password = json.loads(passwords.read_text())[ADMIN]
        self.token = self.login(ADMIN, self.password)
        return self

    @classmethod
    def attach(cls, home: Path, port: int, passwords: Path) -> AirflowServer:
        """An Airflow started elsewhere (scripts/cluster/cluster.py): its REST API as the admin, its
        components' logs in home/logs."""
        server = cls(home, port=port)
        server.password = json.loads(passwords.read_text())[ADMIN]
        server.token = server.login(ADMIN, server.password)
        return server

    def _healthy(self) -> bool:
        self._check_alive()
        try:
            health = self.client.get("/api/v2/monitor/health").json()
        except (httpx.HTTPError, ValueError):
            return False
        return all(health.get(part, {}).get("status") == "healthy" for part in HEALTHY)

    def _check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            raise AirflowError(f"Airflow components exited: {dead}\n{self.tail()}")

    def stop(self, grace: float = 30) -> None:
        """End the process groups started here: SIGTERM, then SIGKILL after `grace` seconds."""
        self.client.close()
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGKILL)   # the group's leftovers (workers, task processes)
            proc.wait(10)

    def tail(self, lines: int = 40) -> str:
        out = []
        for path in sorted((self.home / "logs").glob("*.log")):
            out += [f"--- {path.stem}"] + path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(out)

    # --- the REST API ----------------------------------------------------------------------------
    def login(self, username: str, password: str) -> str:
        resp = self.client.post("/auth/token", json={"username": username, "password": password})
        if resp.status_code not in (200, 201):
            raise AirflowError(f"POST /auth/token: {resp.status_code} {resp.text}")
        return resp.json()["access_token"]

    def api(self, method: str, path: str, *, expect: tuple[int, ...] = (200,), **kwargs):
        """Call /api/v2{path} with the admin's JWT; the decoded JSON (raises on another status)."""
        resp = self.client.request(method, "/api/v2" + path, headers={"Authorization": f"Bearer {self.token}"},
                                   **kwargs)
        if resp.status_code not in expect:
            raise AirflowError(f"{method} {path}: {resp.status_code} {resp.text}")
        return resp.json() if resp.content else None

    def wait(self, predicate, timeout: float, what: str, interval: float = 1.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise AirflowError(f"timed out after {timeout:.0f}s waiting for {what}\n{self.tail()}")

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> dict:
        def parsed():
            self._check_alive()
            resp = self.client.get(f"/api/v2/dags/{dag_id}", headers={"Authorization": f"Bearer {self.token}"})
            return resp.json() if resp.status_code == 200 else None
        return self.wait(parsed, timeout, f"DAG {dag_id} to be parsed")

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, *, conf: dict, run_id: str | None = None) -> str:
        body = {"logical_date": None, "conf": conf, **({"dag_run_id": run_id} if run_id else {})}
        return self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def dag_runs(self, dag_id: str) -> list[dict]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        tis = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in tis}

    def wait_for_task_state(self, dag_id: str, run_id: str, task_id: str, states: set[str],
                            timeout: float = 300) -> str:
        def reached():
            self._check_alive()
            state = self.task_states(dag_id, run_id).get(task_id)
            if state in {"failed", "upstream_failed"} - states:
                raise AirflowError(f"{dag_id}.{task_id} in {run_id} is {state}: {self.task_states(dag_id, run_id)}")
            return state if state in states else None
        return self.wait(reached, timeout, f"{dag_id}.{task_id} in {run_id} to be one of {sorted(states)}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        def done():
            self._check_alive()
            state = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            return state if state in FINISHED else None
        return self.wait(done, timeout, f"run {run_id} of {dag_id} to finish")

    def wait_for_approval_request(self, dag_id: str, run_id: str, task_id: str, timeout: float = 300) -> None:
        """Wait until a human-in-the-loop task is parked in awaiting_input AND the scheduler has
        handled the executor's report that the parking process exited. An answer given before that
        (within about a second; a script, not a person) makes Airflow 3.3.2 see the resumed task as
        killed externally and fail it (a race like apache/airflow#66374, there for deferred tasks)."""
        self.wait_for_task_state(dag_id, run_id, task_id, {"awaiting_input"}, timeout)
        key = f"TaskInstanceKey(dag_id='{dag_id}', task_id='{task_id}', run_id='{run_id}', try_number=1"
        log = self.home / "logs" / "scheduler.log"
        self.wait(lambda: any("Received executor event with state success" in line and key in line
                              for line in log.read_text(errors="replace").splitlines()),
                  timeout, f"the scheduler to see {task_id} of {run_id} parked")

    def hitl_detail(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails")

    def answer(self, dag_id: str, run_id: str, task_id: str, options: list[str], *, map_index: int = -1,
               params_input: dict | None = None, expect: tuple[int, ...] = (200,)):
        """Respond to a human-in-the-loop task, as the Required Actions page does."""
        return self.api("PATCH", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails",
                        json={"chosen_options": options, "params_input": params_input or {}}, expect=expect)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)     # the component was started in its own session: pgid == pid


@contextmanager
def running_airflow(home: Path, *, env: dict[str, str] | None = None, timeout: float = 240):
    """An AirflowServer started for the block and torn down after it, whatever happens."""
    server = AirflowServer(home, env=env)
    try:
        yield server.start(timeout)
    finally:
        server.stop()
