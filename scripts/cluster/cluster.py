"""The production shape without Docker: docker-compose.yml's topology run natively on one machine.

PostgreSQL 15 and Redis 7 from Debian's packages (installed when missing), a three-node Cassandra
ring (scripts/cassandra/cassandra.sh, 127.0.0.6-8), and Airflow 3.3 on the CeleryExecutor:
api-server, scheduler, dag-processor, triggerer and two Celery workers with their own hostnames,
each under scripts/cluster/supervise.py, which starts it again when it exits (compose's
`restart: unless-stopped`: the scheduler exits when PostgreSQL restarts under it).

usage: cluster.py up | down | status | restart NAME | kill NAME | env
  up        start whatever is not running (idempotent; after a crash it restarts what died)
  down      stop everything started here (the data stays under the base folder)
  restart   stop then start one part (postgres, redis, an Airflow component, nodeN)
  kill      SIGKILL one part and every process it started, as a lost machine would (fault drills)
  env       print the Airflow environment, for `env $(cluster.py env) airflow ...`

Settings shared with docker-compose.yml come from airflow.env at the repository root; the shell's
AIRFLOW_* and TM_* variables are not passed on. Environment: CLUSTER_BASE (.local/cluster),
CLUSTER_PG_PORT (55432), CLUSTER_REDIS_PORT (56379), CLUSTER_API_PORT (58080), CLUSTER_HEALTH_PORT
(58974, the scheduler's /health), CLUSTER_TRIGGER_LOG_PORT (58794), CLUSTER_FIRST_NODE (6: nodes on
127.0.0.6-8), CLUSTER_CASS_HEAP (512M), CLUSTER_POOL_SLOTS (4), CLUSTER_OVERRIDES (a file of
KEY=VALUE lines over airflow.env, e.g. a shorter heartbeat timeout for a fault drill). Every process
writes BASE/logs/NAME.log.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BASE = Path(os.environ.get("CLUSTER_BASE", REPO / ".local" / "cluster")).resolve()
PG_PORT = int(os.environ.get("CLUSTER_PG_PORT", "55432"))
REDIS_PORT = int(os.environ.get("CLUSTER_REDIS_PORT", "56379"))
API_PORT = int(os.environ.get("CLUSTER_API_PORT", "58080"))
POOL_SLOTS = int(os.environ.get("CLUSTER_POOL_SLOTS", "4"))
HEALTH_PORT = int(os.environ.get("CLUSTER_HEALTH_PORT", "58974"))
TRIGGER_LOG_PORT = int(os.environ.get("CLUSTER_TRIGGER_LOG_PORT", "58794"))
OVERRIDES = os.environ.get("CLUSTER_OVERRIDES")
CASS_HEAP = os.environ.get("CLUSTER_CASS_HEAP", "512M")
PG_BIN = Path("/usr/lib/postgresql/15/bin")
VENV_BIN = REPO / ".venv" / "bin"
SETTINGS_FILE = REPO / "airflow.env"
CASSANDRA = REPO / "scripts" / "cassandra" / "cassandra.sh"
FIRST_NODE, NODE_COUNT = int(os.environ.get("CLUSTER_FIRST_NODE", "6")), 3
NODES = tuple(f"127.0.0.{n}" for n in range(FIRST_NODE, FIRST_NODE + NODE_COUNT))
WORKERS = ("worker-1", "worker-2")
AIRFLOW = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer"],
    # Both workers write task logs to the shared log folder, which the api-server reads directly:
    # no log server, so two workers on one host do not fight over its port.
    **{w: ["celery", "worker", "--celery-hostname", f"{w}@%h", "--skip-serve-logs"] for w in WORKERS},
}
HEALTHY = ("metadatabase", "scheduler", "triggerer", "dag_processor")
POOL = "cassandra_backfill"


class ClusterError(RuntimeError):
    """A part did not start, or cannot start (a port taken, a package missing)."""


def log_path(name: str) -> Path:
    return BASE / "logs" / f"{name}.log"


def pid_path(name: str) -> Path:
    return BASE / "run" / f"{name}.pid"


# --- small helpers ---------------------------------------------------------------------------------
def port_taken(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):   # a zombie is dead
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z"):
            return False
    return True


def read_pid(name: str) -> int | None:
    path = pid_path(name)
    with contextlib.suppress(FileNotFoundError, ValueError):
        return int(path.read_text().split()[0])
    return None


def running(name: str) -> int | None:
    pid = read_pid(name)
    return pid if alive(pid) else None


def wait(predicate, timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}")


def free_port_or_die(port: int, what: str, env_name: str) -> None:
    if port_taken(port):
        raise ClusterError(f"port {port} ({what}) is taken by another process: stop it, or set {env_name} "
                           f"to a free port")


def as_postgres(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """PostgreSQL refuses to run as root: as root, run its tools as the `postgres` user."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run(prefix + cmd, capture_output=True, text=True, **kwargs)


def ensure_packages() -> None:
    """Debian's PostgreSQL 15 and Redis, installed once when missing (as `make browser` does)."""
    missing = [pkg for pkg, path in (("postgresql-15", PG_BIN / "postgres"), ("redis-server", "/usr/bin/redis-server"))
               if not Path(path).exists()]
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print(f"installing {' '.join(missing)} from Debian's packages", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        done = subprocess.run(sudo + cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


# --- PostgreSQL ------------------------------------------------------------------------------------
PG_DATA = BASE / "postgres" / "data"
PG_SOCKETS = BASE / "postgres" / "run"


def postgres_pid() -> int | None:
    pid = None
    with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
        pid = int((PG_DATA / "postmaster.pid").read_text().split()[0])
    return pid if alive(pid) else None


def postgres_up() -> None:
    if postgres_pid():
        return
    free_port_or_die(PG_PORT, "PostgreSQL", "CLUSTER_PG_PORT")
    PG_SOCKETS.mkdir(parents=True, exist_ok=True)
    log_path("postgres").touch()
    if os.geteuid() == 0:
        # The postgres user must reach its folders: every parent of BASE must be searchable.
        for path in (BASE / "postgres", PG_SOCKETS, log_path("postgres")):
            shutil.chown(path, "postgres", "postgres")
        if as_postgres(["test", "-x", str(BASE)]).returncode != 0:
            raise ClusterError(f"the postgres user cannot enter {BASE}: give its parent folders o+x, "
                               f"or set CLUSTER_BASE to a folder it can reach")
    fresh = not (PG_DATA / "PG_VERSION").exists()
    if fresh:
        done = as_postgres([str(PG_BIN / "initdb"), "-D", str(PG_DATA), "-U", "postgres", "--auth-local=trust",
                            "--auth-host=scram-sha-256", "-E", "UTF8"])
        if done.returncode != 0:
            raise ClusterError(f"initdb failed:\n{done.stdout}{done.stderr}")
    done = as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(PG_DATA), "-l", str(log_path("postgres")), "-w", "-t", "60",
                        "-o", f"-p {PG_PORT} -k {PG_SOCKETS} -c listen_addresses=127.0.0.1 -c max_connections=200",
                        "start"])
    if done.returncode != 0:
        raise ClusterError(f"PostgreSQL did not start (log: {log_path('postgres')}):\n{done.stdout}{done.stderr}")
    if fresh:
        for sql in ("CREATE ROLE airflow LOGIN PASSWORD 'airflow'", "CREATE DATABASE airflow OWNER airflow"):
            done = as_postgres([str(PG_BIN / "psql"), "-h", str(PG_SOCKETS), "-p", str(PG_PORT),
                                "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql])
            if done.returncode != 0:
                raise ClusterError(f"{sql}: {done.stderr}")


def postgres_down(fast: bool = True) -> None:
    if postgres_pid():
        as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(PG_DATA), "-m", "fast" if fast else "smart", "-w", "stop"])


# --- Redis -----------------------------------------------------------------------------------------
def redis_up() -> None:
    if running("redis"):
        return
    free_port_or_die(REDIS_PORT, "Redis", "CLUSTER_REDIS_PORT")
    (BASE / "redis").mkdir(parents=True, exist_ok=True)
    # Append-only file on: queued Celery messages survive a Redis restart.
    done = subprocess.run(["redis-server", "--bind", "127.0.0.1", "--port", str(REDIS_PORT), "--daemonize", "yes",
                           "--dir", str(BASE / "redis"), "--pidfile", str(pid_path("redis")),
                           "--logfile", str(log_path("redis")), "--appendonly", "yes", "--save", ""],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise ClusterError(f"redis-server failed: {done.stderr}")
    wait(lambda: port_taken(REDIS_PORT), 30, f"Redis on 127.0.0.1:{REDIS_PORT}", 0.2)


def redis_down() -> None:
    pid = running("redis")
    if pid:
        os.kill(pid, signal.SIGTERM)
        wait(lambda: not alive(pid), 30, "Redis to stop", 0.2)


# --- the Cassandra ring ----------------------------------------------------------------------------
RING_ENV = {"CASS_BASE": str(BASE / "ring"), "CASS_FIRST_NODE": str(FIRST_NODE), "CASS_NODES": str(NODE_COUNT),
            "CASS_HEAP": CASS_HEAP, "CASS_UNSAFE_SYSTEM": "false"}


def cassandra(*args: str) -> None:
    done = subprocess.run([str(CASSANDRA), *args], env={**os.environ, **RING_ENV}, capture_output=True, text=True)
    if done.returncode != 0:
        raise ClusterError(f"cassandra.sh {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def ring_formed() -> bool:
    """Whether every node lists all the ring's nodes Up and Normal (its nodetool status). A node
    answers CQL before it does; schema sent then may miss a node that others have not yet counted
    in (seen: CREATE KEYSPACE at RF 3 on a node that saw two nodes, then the next CREATE TABLE
    refused by another node that had not heard of the keyspace)."""
    for n in range(FIRST_NODE, FIRST_NODE + NODE_COUNT):
        done = subprocess.run([str(CASSANDRA), "nodetool", str(n), "status"], env={**os.environ, **RING_ENV},
                              capture_output=True, text=True)
        if done.returncode != 0 or sum(ln.startswith("UN ") for ln in done.stdout.splitlines()) != NODE_COUNT:
            return False
    return True


def ring_up() -> None:
    cassandra("up")
    wait(ring_formed, 120, "every node to list the whole ring Up and Normal", interval=2.0)


def node_number(name: str) -> str:
    return name.removeprefix("node")


# --- Airflow ---------------------------------------------------------------------------------------
def shared_settings(path: Path = SETTINGS_FILE) -> dict[str, str]:
    """KEY=VALUE lines of airflow.env (the file docker-compose.yml reads as env_file)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def secret(name: str, nbytes: int) -> str:
    """One value per cluster, the same in every process (workers must verify the api-server's JWTs)."""
    path = BASE / "secrets.json"
    values = json.loads(path.read_text()) if path.exists() else {}
    if name not in values:
        values[name] = secrets.token_hex(nbytes)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(values))
    return values[name]


def airflow_env() -> dict[str, str]:
    home = BASE / "airflow"
    api = f"http://127.0.0.1:{API_PORT}"
    db = f"postgresql+psycopg2://airflow:airflow@127.0.0.1:{PG_PORT}/airflow"
    env = {
        **shared_settings(),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db,
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + db.replace("+psycopg2", ""),
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(API_PORT),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": secret("api_secret_key", 16),
        "AIRFLOW__API_AUTH__JWT_SECRET": secret("jwt_secret", 32),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(HEALTH_PORT),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(TRIGGER_LOG_PORT),
        "AIRFLOW_CONN_SCYLLA_DEFAULT": json.dumps({"conn_type": "cassandra", "host": ",".join(NODES), "port": 9042,
                                                   "schema": "trading"}),
        "TM_CONTACT_POINTS": ",".join(NODES),
        "TM_REPLICATION": json.dumps({"class": "SimpleStrategy", "replication_factor": NODE_COUNT}),
        "TM_REPORT_DIR": str(BASE / "reports"),
    }
    # The shell's own Airflow and TM_ settings never leak in (they may point at the one-node set-up);
    # changes go in a file named by CLUSTER_OVERRIDES, in airflow.env's format.
    inherited = {k: v for k, v in os.environ.items()
                 if not k.startswith(("AIRFLOW_", "TM_", "PYTHONPATH", "CLUSTER_"))}
    overrides = shared_settings(Path(OVERRIDES)) if OVERRIDES else {}
    env = {**inherited, **env, **overrides}
    env["PATH"] = f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    return env


def airflow(*args: str, timeout: float = 600) -> str:
    done = subprocess.run([str(VENV_BIN / "airflow"), *args], env=airflow_env(), cwd=BASE / "airflow",
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise ClusterError(f"airflow {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done.stdout


def start_component(name: str) -> None:
    if running(name):
        return
    if name == "api-server":
        free_port_or_die(API_PORT, "the Airflow api-server", "CLUSTER_API_PORT")
    env = airflow_env()
    if name in WORKERS:
        env.update({"CLUSTER_WORKER": name, "AIRFLOW__CORE__HOSTNAME_CALLABLE": "worker_hostname.hostname",
                    "PYTHONPATH": os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)})
    # Under a supervisor that starts it again when it exits, as compose's `restart: unless-stopped`.
    command = [str(VENV_BIN / "python"), str(HERE / "supervise.py"), str(VENV_BIN / "airflow"), *AIRFLOW[name]]
    with open(log_path(name), "ab") as log:
        proc = subprocess.Popen(command, env=env, cwd=BASE / "airflow",
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    pid_path(name).write_text(str(proc.pid))


def session_members(sid: int) -> list[int]:
    """Every process in the component's session: Airflow runs each task in a process group of its
    own, so signalling the component's group alone would leave its tasks running."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(") ", 1)[1].split()[3]) == sid:
                members.append(int(stat.parent.name))
    return members


def signal_session(sid: int, sig: int) -> None:
    for pid in session_members(sid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def stop_component(name: str, sig: int = signal.SIGTERM, grace: float = 60) -> None:
    """Signal the component's supervisor (which passes the signal on and does not start it again),
    then SIGKILL whatever of its session (its task processes too) outlives grace. SIGKILL goes to
    the whole session at once."""
    pid = read_pid(name)
    if not pid:
        return
    if sig == signal.SIGKILL:
        signal_session(pid, sig)
    with contextlib.suppress(ProcessLookupError):   # dead, its session may still hold its tasks
        os.kill(pid, sig)
    deadline = time.monotonic() + grace
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    signal_session(pid, signal.SIGKILL)
    pid_path(name).unlink(missing_ok=True)


def health() -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{API_PORT}/api/v2/monitor/health", timeout=5) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError):
        return {}


def healthy() -> bool:
    report = health()
    return all(report.get(part, {}).get("status") == "healthy" for part in HEALTHY)


def workers_online() -> list[str]:
    """Celery workers that answer a ping through the broker."""
    done = subprocess.run([str(VENV_BIN / "celery"), "--app", "airflow.providers.celery.executors.celery_executor.app",
                           "inspect", "ping", "--timeout", "3", "--json"], env=airflow_env(), cwd=BASE / "airflow",
                          capture_output=True, text=True, timeout=60)
    answers = {}
    with contextlib.suppress(ValueError):
        answers = json.loads((done.stdout.strip().splitlines() or ["{}"])[-1])   # after the log lines
    return sorted(name.split("@")[0] for name in answers) if isinstance(answers, dict) else []


def airflow_up(timeout: float = 300) -> None:
    home = BASE / "airflow"
    (home / "logs").mkdir(parents=True, exist_ok=True)
    marker = home / ".initialised"
    if not marker.exists():
        airflow("db", "migrate")
        airflow("pools", "set", POOL, str(POOL_SLOTS), "Concurrent backfill/verify tasks against the cluster")
        marker.touch()
    for name in AIRFLOW:
        start_component(name)
    wait(healthy_or_raise, timeout, "every component healthy at /health")
    wait(lambda: workers_online() == sorted(WORKERS), timeout, f"Celery workers {', '.join(WORKERS)} to answer")


def healthy_or_raise() -> bool:
    names = [n for n in AIRFLOW if not running(n)]
    if not names:
        return healthy()
    tails = "\n".join(f"--- {n}\n" + "\n".join(log_path(n).read_text(errors="replace").splitlines()[-20:])
                      for n in names)
    raise ClusterError(f"Airflow components exited: {', '.join(names)}\n{tails}")


# --- the whole ------------------------------------------------------------------------------------
def up() -> None:
    for folder in ("logs", "run", "reports"):
        (BASE / folder).mkdir(parents=True, exist_ok=True)
    ensure_packages()
    step("PostgreSQL", postgres_up)
    step("Redis", redis_up)
    step("Cassandra ring " + ", ".join(NODES), ring_up)
    step("schema", lambda: airflow_run_python("-m", "trade_migration.schema_cli"))
    step("Airflow (CeleryExecutor, two workers)", airflow_up)
    print(f"cluster up: Airflow UI http://127.0.0.1:{API_PORT} (admin; password in "
          f"{BASE / 'airflow' / 'simple_auth_manager_passwords.json.generated'}), logs in {BASE / 'logs'}")


def airflow_run_python(*args: str) -> None:
    done = subprocess.run([str(VENV_BIN / "python"), *args], env=airflow_env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise ClusterError(f"python {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def step(what: str, action) -> None:
    started = time.monotonic()
    action()
    print(f"  {what}: up ({time.monotonic() - started:.0f} s)", flush=True)


def down() -> None:
    for name in reversed(list(AIRFLOW)):
        stop_component(name, grace=30)
    with contextlib.suppress(ClusterError):
        cassandra("down")
    redis_down()
    postgres_down()
    print("cluster down")


def status() -> int:
    report = health()
    rows = [("postgres", postgres_pid()), ("redis", running("redis"))]
    rows += [(name, running(name)) for name in AIRFLOW]
    for name, pid in rows:
        print(f"{name:14} {f'running (pid {pid})' if pid else 'stopped'}")
    subprocess.run([str(CASSANDRA), "status"], env={**os.environ, **RING_ENV})
    print("health:", json.dumps({k: v.get("status") for k, v in report.items()}) if report else "no answer")
    return 0 if all(pid for _, pid in rows) and healthy() else 1


def kill(name: str) -> None:
    if name == "postgres":
        pid = postgres_pid()
        if pid:
            os.kill(pid, signal.SIGKILL)
    elif name == "redis":
        pid = running("redis")
        if pid:
            os.kill(pid, signal.SIGKILL)
    elif name.startswith("node"):
        cassandra("stop-node", node_number(name))
    else:
        stop_component(name, signal.SIGKILL, grace=5)


def restart(name: str) -> None:
    if name == "postgres":
        postgres_down()
        postgres_up()
    elif name == "redis":
        redis_down()
        redis_up()
    elif name.startswith("node"):
        cassandra("stop-node", node_number(name))
        cassandra("start-node", node_number(name))
    else:
        stop_component(name)
        start_component(name)


def main(argv: list[str]) -> int:
    parts = {"postgres", "redis", *AIRFLOW, *(f"node{n}" for n in range(FIRST_NODE, FIRST_NODE + NODE_COUNT))}
    cmd, *rest = argv or ["status"]
    try:
        if cmd == "up":
            up()
        elif cmd == "down":
            down()
        elif cmd == "status":
            return status()
        elif cmd == "env":
            print("\n".join(f"{k}={v}" for k, v in airflow_env().items() if k.startswith(("AIRFLOW", "TM_"))))
        elif cmd in ("kill", "restart") and len(rest) == 1 and rest[0] in parts:
            (kill if cmd == "kill" else restart)(rest[0])
        else:
            print(__doc__.split("\n\n")[1], file=sys.stderr)
            print(f"parts: {', '.join(sorted(parts))}", file=sys.stderr)
            return 2
    except ClusterError as exc:
        print(f"cluster.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
