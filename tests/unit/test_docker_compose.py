"""docker-compose.yml and the Dockerfile agree with the project they run.

No Docker engine runs where the tests run, so the compose file is checked as data: the services,
profiles, mounts, connection, pins and start-up order the README promises. `docker compose config`
also validates it when a compose client is installed.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest
import yaml
from testkit import cluster_script

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"

SCYLLA_NODES = {"scylla", "scylla-2", "scylla-3"}
CLUSTER_ONLY = {"scylla-2", "scylla-3"}
AIRFLOW_SERVICES = {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker"}
SERVICES = SCYLLA_NODES | AIRFLOW_SERVICES | {"postgres", "redis"}
# Project directories every Airflow container needs, at the paths the image expects.
MOUNTS = {"./dags": "/opt/airflow/dags", "./include": "/opt/airflow/include",
          "./plugins": "/opt/airflow/plugins", "./schema": "/opt/airflow/schema"}
CONN_ID = "scylla_default"
CONN_ENV = "AIRFLOW_CONN_" + CONN_ID.upper()
POOL, POOL_SLOTS = "cassandra_backfill", 4


# ------------------------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def pins() -> dict[str, str]:
    out = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        m = re.match(r"\s*([A-Za-z0-9_.\-\[\]]+)\s*==\s*([^\s;#]+)", line)
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines = [ln for ln in DOCKERFILE.read_text().splitlines() if not ln.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(m.group(1).upper(), m.group(2).strip())
            for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", text, re.M)]


def env(service: dict) -> dict[str, str]:
    """The service's environment as the container gets it: env_file first, `environment` over it."""
    files = service.get("env_file") or []
    shared = {}
    for name in [files] if isinstance(files, str) else files:
        shared.update(cluster_script.load().shared_settings(REPO / name))
    return {**shared, **own_env(service)}


def own_env(service: dict) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {k: "" if v is None else str(v) for k, v in raw.items()}


def bind_mounts(service: dict) -> dict[str, str]:
    """target -> source for the service's volumes (short and long syntax)."""
    out = {}
    for vol in service.get("volumes") or []:
        if isinstance(vol, dict):
            out[vol["target"]] = vol["source"]
        else:
            source, target = vol.split(":")[:2]
            out[target] = source
    return out


def command_text(service: dict) -> str:
    cmd = service.get("command") or ""
    return " ".join(cmd) if isinstance(cmd, list) else cmd


def depends_on(service: dict) -> dict[str, str]:
    """dependency -> condition; the list form has no condition and maps to ''."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return {name: "" for name in raw}
    return {name: (spec or {}).get("condition", "") for name, spec in raw.items()}


def arg_value(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return str(args[i + 1])
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


# ------------------------------------------------------------------------------------ services
def test_service_set(services):
    assert set(services) == SERVICES


def test_cluster_profile_only_on_the_extra_nodes(services):
    for name, svc in services.items():
        expected = ["cluster"] if name in CLUSTER_ONLY else []
        assert (svc.get("profiles") or []) == expected, name


def test_scylla_nodes(services):
    for name in SCYLLA_NODES:
        svc = services[name]
        image, _, tag = svc["image"].partition(":")
        assert image == "scylladb/scylla", name
        assert re.fullmatch(r"\d+\.\d+(\.\d+)?", tag), f"{name}: pin a version, not {tag!r}"
        args = [str(a) for a in svc["command"]]
        for flag in ("--smp", "--memory", "--overprovisioned", "--developer-mode"):
            assert arg_value(args, flag) is not None, f"{name}: {flag} missing"
        test = " ".join(svc["healthcheck"]["test"])
        assert "cqlsh" in test or "nodetool" in test, name
    assert len({services[n]["image"] for n in SCYLLA_NODES}) == 1, "all nodes on one version"
    for name in CLUSTER_ONLY:
        seeds = arg_value([str(a) for a in services[name]["command"]], "--seeds")
        assert seeds and "scylla" in seeds.split(","), f"{name} must seed from scylla"


# ------------------------------------------------------------------------------------ Airflow
def test_airflow_services_mount_the_project(services):
    for name in AIRFLOW_SERVICES:
        mounts = bind_mounts(services[name])
        for source, target in MOUNTS.items():
            assert mounts.get(target) == source, f"{name}: {source} -> {target}"


def test_schema_is_mounted_where_the_package_looks_for_it(services):
    """trade_migration.schema finds schema/ through its package link; keep that true in the image."""
    from trade_migration.create_table.schema import SCHEMA_DIR

    mounts = {src: tgt for tgt, src in bind_mounts(services["airflow-init"]).items()}
    container_root = PurePosixPath(mounts["./include"]).parent  # ./include is at the repo root
    expected = container_root / SCHEMA_DIR.resolve().relative_to(REPO).as_posix()
    assert mounts["./schema"] == str(expected)


def test_scylla_connection(services):
    scylla_hosts = {n for n in SCYLLA_NODES if not services[n].get("profiles")}
    for name in AIRFLOW_SERVICES:
        variables = env(services[name])
        assert CONN_ENV in variables, name
        assert variables.get("TM_CONN_ID", CONN_ID) == CONN_ID, name  # dags/ read TM_CONN_ID
        conn = json.loads(variables[CONN_ENV])
        assert conn["conn_type"] == "cassandra", name
        assert conn["host"] in scylla_hosts, f"{name}: {conn['host']!r} is not an always-on node"
        assert int(conn.get("port", 9042)) == 9042
        assert conn.get("schema") == variables.get("TM_KEYSPACE"), name
        contact_points = [p.strip() for p in variables["TM_CONTACT_POINTS"].split(",")]
        assert contact_points and set(contact_points) <= SCYLLA_NODES, name


def test_conn_id_is_the_one_the_dags_use():
    dag_files = [p for p in (REPO / "dags").rglob("*.py")] if (REPO / "dags").is_dir() else []
    if not dag_files:
        pytest.skip("dags/ has no Python files yet")
    # The id may be spelled in a DAG file or in a constant the DAGs import from include/.
    sources = dag_files + list((REPO / "include").rglob("*.py"))
    literal = re.compile(r"""["']""" + CONN_ID + r"""["']""")
    users = [p for p in sources if literal.search(p.read_text())]
    assert users, f"no DAG or include/ module names the connection {CONN_ID!r}"


def test_airflow_environment(services):
    for name in AIRFLOW_SERVICES:
        variables = env(services[name])
        assert "/opt/airflow/include" in variables["PYTHONPATH"].split(":"), name
        assert variables["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false", name
        assert variables["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert "@postgres" in variables["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], name
        assert variables["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql"), name
        assert re.match(r"redis://[^/]*@?redis:6379/", variables["AIRFLOW__CELERY__BROKER_URL"]), name
        assert re.match(r"db\+postgresql://.*@postgres[:/]", variables["AIRFLOW__CELERY__RESULT_BACKEND"]), name
        assert variables["TM_REPORT_DIR"] == "/opt/airflow/reports", name
        assert bind_mounts(services[name]).get(variables["TM_REPORT_DIR"]) == "./reports", name
        # Requirements are baked into the image, not installed at every container start.
        assert "_PIP_ADDITIONAL_REQUIREMENTS" not in variables, name
    # Every component must sign and accept the same task tokens.
    secrets = {env(services[n]).get("AIRFLOW__API_AUTH__JWT_SECRET") for n in AIRFLOW_SERVICES}
    assert len(secrets) == 1 and None not in secrets


def test_relative_volume_sources_exist_or_are_ignored(services):
    ignored = {line.strip().strip("/") for line in (REPO / ".gitignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for name, svc in services.items():
        for source in bind_mounts(svc).values():
            if not source.startswith("."):
                continue  # a named volume
            rel = Path(source).relative_to(".").as_posix()
            if (REPO / rel).is_dir():
                continue
            assert rel in ignored, f"{name}: {source} is neither in the repo nor gitignored"
            # A missing directory must be created (writable for Airflow) by airflow-init.
            target = next(t for t, s in bind_mounts(svc).items() if s == source)
            assert re.search(r"mkdir -p\b[^\n]*" + re.escape(target),
                             command_text(services["airflow-init"])), f"{source} never created"


def test_depends_on(services):
    for name in AIRFLOW_SERVICES:
        deps = depends_on(services[name])
        assert deps.get("scylla") == "service_healthy", name
        assert deps.get("postgres") == "service_healthy", name
        assert deps.get("redis") == "service_healthy", name
        if name != "airflow-init":
            assert deps.get("airflow-init") == "service_completed_successfully", name
    for name, svc in services.items():
        for dep, condition in depends_on(svc).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}'s missing healthcheck"
            if not svc.get("profiles"):
                assert not services[dep].get("profiles"), f"{name} needs profile-only {dep}"


def test_airflow_init_migrates_creates_the_pool_and_applies_the_schema(services):
    text = command_text(services["airflow-init"])
    steps = ["airflow db migrate", f"airflow pools set {POOL} {POOL_SLOTS} ",
             "python -m trade_migration.schema_cli"]
    positions = [text.find(step) for step in steps]
    assert -1 not in positions, f"missing step in {text!r}"
    assert positions == sorted(positions), "migrate, then the pool, then the schema"
    makefile = (REPO / "Makefile").read_text()
    if "pools set" in makefile:  # the local setup creates the same pool
        assert f"pools set {POOL} {POOL_SLOTS} " in makefile


def test_airflow_commands_ports_and_healthchecks(services):
    expected = {"airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
                "airflow-dag-processor": "dag-processor", "airflow-triggerer": "triggerer",
                "airflow-worker": "celery worker"}
    for name, cmd in expected.items():
        text = command_text(services[name])
        assert re.fullmatch(r"(airflow )?" + cmd, text), f"{name}: {text!r}"
        assert "healthcheck" in services[name], name
    api = services["airflow-apiserver"]
    assert any(str(p).split(":")[-1] == "8080" for p in api["ports"])
    assert "/api/v2/monitor/health" in " ".join(api["healthcheck"]["test"])
    scheduler_check = " ".join(services["airflow-scheduler"]["healthcheck"]["test"])
    if ":8974/health" in scheduler_check:  # the scheduler serves it only when enabled
        assert env(services["airflow-scheduler"])["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"].lower() == "true"


# ------------------------------------------------------------------------------------ the image
def test_airflow_services_build_the_project_image(services, pins):
    for name in AIRFLOW_SERVICES:
        build = services[name].get("build")
        context = build if isinstance(build, str) else (build or {}).get("context")
        dockerfile = "Dockerfile" if isinstance(build, str) else (build or {}).get("dockerfile", "Dockerfile")
        assert context and (REPO / context / dockerfile).resolve() == DOCKERFILE, name
        image = services[name].get("image")
        if image:  # the local name of the built image carries the Airflow version
            assert image.rsplit(":", 1)[-1].startswith(pins["apache-airflow"]), name


def test_airflow_base_image_matches_the_pin(dockerfile, pins):
    froms = [args for instr, args in dockerfile if instr == "FROM"]
    assert len(froms) == 1
    m = re.fullmatch(r"apache/airflow:(\d+\.\d+\.\d+)-python(\d+\.\d+)", froms[0])
    assert m, froms[0]
    assert m.group(1).startswith("3.3."), m.group(1)
    assert m.group(1) == pins["apache-airflow"]


def test_dockerfile_reinstalls_scylla_driver_at_the_pinned_version(dockerfile, pins):
    instructions = [instr for instr, _ in dockerfile]
    assert any(instr == "COPY" and "requirements.txt" in args for instr, args in dockerfile)
    args_defaults = dict(re.match(r"(\w+)(?:=(.*))?$", args).groups()
                         for instr, args in dockerfile if instr == "ARG")
    run = " && ".join(args for instr, args in dockerfile if instr == "RUN")
    for key, value in args_defaults.items():
        if value is not None:
            run = run.replace("${" + key + "}", value.strip("\"'")).replace("$" + key, value.strip("\"'"))
    install = re.search(r"pip install\b[^&]*-r\s+\S*requirements\.txt", run)
    reinstall = re.search(r"pip install\b[^&]*--force-reinstall[^&]*\bscylla-driver==([^\s\"']+)", run)
    assert install and reinstall, run
    assert "--no-deps" in reinstall.group(0)
    assert reinstall.group(1) == pins["scylla-driver"]
    assert install.start() < reinstall.start(), "scylla-driver must be reinstalled after requirements"
    assert instructions.index("COPY") < instructions.index("RUN")


# ------------------------------------------------------------------------------------ the CLI
def _compose_cli() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.mark.parametrize("profile", [None, "cluster"])
def test_docker_compose_config_validates(profile):
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no docker compose client installed")
    cmd = cli + ["-f", str(COMPOSE_FILE)] + (["--profile", profile] if profile else []) + ["config", "-q"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
