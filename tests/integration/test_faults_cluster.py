"""Faults on a real three-node ring (127.0.0.2-4, replication factor 3, QUORUM reads and writes).

The module starts its own ring beside the default node with scripts/cassandra/cassandra.sh
(CASS_BASE=.local/ring) and stops it at the end. Each test injects one fault while the work
runs, lets the work go on or fail, retries as Airflow's task retry would (the same ledger, the
same ranges), and then checks the result against an expectation computed independently from
settled_trades (tests/expectation.py): every row, every value, the source write time, every
reject, nothing extra, nothing lost.

  a) a node SIGKILLed in the middle of a backfill, restarted afterwards
  b) a node SIGKILLed in the middle of a verification (survey and row-by-row stages)
  c) the backfill's worker process SIGKILLed mid-page, resumed from its checkpoint
  d) a timeout on an oversized range: client-side (page timeout) and server-side (a replica
     frozen with SIGSTOP while the coordinator must hear from it) -> the range is re-split
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.policies import WhiteListRoundRobinPolicy
from conftest import ALL_TABLES, REPO, mark_done
from testkit import generator
from testkit.expectation import assert_exact

from trade_migration.backfill import copier, plan, summary
from trade_migration.backfill.copier import Options
from trade_migration.core.config import Config
from trade_migration.core.errors import RangeTimeout
from trade_migration.core.session import connect
from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN, TokenRange
from trade_migration.create_table import schema
from trade_migration.state.ledger import DONE, RUNNING, Ledger
from trade_migration.verify import parity

pytestmark = pytest.mark.slow

LAUNCHER = REPO / "scripts" / "cassandra" / "cassandra.sh"
RING_BASE = REPO / ".local" / "ring"
# Schema changes flushed as on a real cluster: with unsafesystem a SIGKILLed node came back without
# the test keyspace and the keyspace then went missing on every node ("keyspace does not exist").
RING_ENV = {"CASS_BASE": str(RING_BASE), "CASS_FIRST_NODE": "2", "CASS_NODES": "3", "CASS_HEAP": "512M",
            "CASS_UNSAFE_SYSTEM": "false"}
NODES = (2, 3, 4)
KEYSPACE = "t_faults_cluster"
REPLICATION = {"class": "SimpleStrategy", "replication_factor": 3}
CFG = Config(keyspace=KEYSPACE, contact_points=("127.0.0.2",), replication=REPLICATION,
             read_consistency="QUORUM", write_consistency="QUORUM", serial_consistency="SERIAL")
N = 24_000
SEED = 808
RING = [TokenRange(MIN_TOKEN, MAX_TOKEN)]
FAULTS: list[str] = []   # what was injected and how it ended (printed at the end of the module)


# --- the ring -------------------------------------------------------------------------------------
def launcher(*args: str) -> str:
    done = subprocess.run([str(LAUNCHER), *args], env={**os.environ, **RING_ENV}, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"cassandra.sh {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def node_pid(n: int) -> int | None:
    path = RING_BASE / f"node{n}" / "pid"
    if not path.exists():
        return None
    pid = int(path.read_text().strip())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def wait_until(predicate, what: str, timeout: float = 180.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"gave up waiting for {what} after {timeout:.0f}s")


def hosts_up(session) -> set[str]:
    return {h.address for h in session.cluster.metadata.all_hosts() if h.is_up}


def knows_the_schema(session, host) -> bool:
    """The node itself lists every table of the test keyspace: a restarted node answers CQL a
    little before it is ready to serve the keyspace."""
    from conftest import ALL_TABLES as tables

    try:
        rows = session.execute("SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s",
                               (KEYSPACE,), host=host, timeout=10)
    except Exception:   # noqa: BLE001 - not ready yet
        return False
    return set(tables) <= {r.table_name for r in rows}


def restore(session) -> None:
    """Every node running, seen up by the driver and holding the schema (after a test, whatever it did)."""
    for n in NODES:
        pid = node_pid(n)
        if pid is None:
            launcher("start-node", str(n))
        else:
            os.kill(pid, signal.SIGCONT)          # harmless unless a test froze it
    everyone = {f"127.0.0.{n}" for n in NODES}
    wait_until(lambda: hosts_up(session) == everyone, "the driver to see all three nodes up")
    wait_until(lambda: all(knows_the_schema(session, h) for h in session.cluster.metadata.all_hosts()),
               "every node to hold the test keyspace's schema", every=0.5)
    assert session.cluster.control_connection.wait_for_schema_agreement(wait_time=120)


def kill_node(n: int) -> None:
    launcher("stop-node", str(n))                 # SIGKILL: no drain, no goodbye to gossip
    assert node_pid(n) is None


@pytest.fixture(scope="module")
def ring():
    """The ring for this module, held under an exclusive lock: a second run of this module from the
    same checkout (another session, CI) would stop and restart these same nodes under this one."""
    RING_BASE.mkdir(parents=True, exist_ok=True)
    lock = (RING_BASE / ".lock").open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        pytest.fail(f"another run of the ring tests holds {RING_BASE / '.lock'} ({lock.read().strip()}); "
                    "run them one at a time")
    lock.seek(0)
    lock.truncate()
    lock.write(f"pid {os.getpid()}")
    lock.flush()
    try:
        launcher("up")
        try:
            yield
        finally:
            print("\n" + "\n".join(["faults injected on the ring:"] + [f"  - {f}" for f in FAULTS]))
            launcher("down")
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


@pytest.fixture(scope="module")
def session(ring):
    s = connect(CFG)
    wait_until(lambda: len(hosts_up(s)) == 3, "three hosts in the driver's view")
    schema.apply(s, CFG)
    yield s
    s.cluster.shutdown()


@pytest.fixture(scope="module")
def source(session):
    """N generated trades, written at QUORUM once for the module."""
    for table in ALL_TABLES:
        session.execute(f"TRUNCATE {KEYSPACE}.{table}", timeout=120)
    generator.write_symbols(session, KEYSPACE)
    return generator.write_trades(session, KEYSPACE, N, SEED, concurrency=64)


@pytest.fixture
def target(session, source):
    """user_trades and the backfill's state emptied, every node up; restored again afterwards."""
    restore(session)
    for table in ("user_trades", "rejected_trades", "backfill_ranges", "parity_runs"):
        session.execute(f"TRUNCATE {KEYSPACE}.{table}", timeout=120)
    mark_done(session, CFG, "create_table", "dual_write")   # backfill_cli's order guard
    yield session
    restore(session)


# --- helpers --------------------------------------------------------------------------------------
def cli_env() -> dict:
    return {**os.environ, "TM_KEYSPACE": KEYSPACE,
            "TM_CONTACT_POINTS": "127.0.0.2", "TM_REPLICATION": json.dumps(REPLICATION),
            "TM_READ_CONSISTENCY": "QUORUM", "TM_WRITE_CONSISTENCY": "QUORUM", "TM_SERIAL_CONSISTENCY": "SERIAL"}


def start_cli(backfill_id: str, *args: str, log: Path) -> subprocess.Popen:
    """backfill_cli in its own process: the worker of one backfill task."""
    return subprocess.Popen([sys.executable, "-m", "trade_migration.backfill_cli", "--backfill-id", backfill_id, *args],
                            env=cli_env(), stdout=log.open("w"), stderr=subprocess.STDOUT)


def rows_read(session, backfill_id: str) -> int:
    return sum(s.rows_read for s in Ledger(session, CFG, backfill_id).load())


def complete(session, backfill_id: str) -> dict:
    return summary.backfill_summary(Ledger(session, CFG, backfill_id).load())


def assert_done_exactly(session, backfill_id: str, source) -> dict:
    report = complete(session, backfill_id)
    assert report["complete"] is True, report               # and the ranges cover the ring exactly once
    assert (report["rows_read"], report["rows_written"], report["rows_rejected"]) == (
        N, source.user_trade_rows, sum(source.rejects.values()))   # each row counted once over all attempts
    rows, rejects = assert_exact(session, KEYSPACE)
    assert len(rows) == source.user_trade_rows and len(rejects) == sum(source.rejects.values())
    return report


def last_error_line(log: Path) -> str:
    lines = [ln for ln in log.read_text().splitlines() if ln and not ln[:4].isdigit() and not ln.startswith(" ")]
    return lines[-1] if lines else ""


# --- a) a node lost in the middle of a backfill ---------------------------------------------------
def test_a_node_lost_mid_backfill_then_a_retry_finishes_exactly(target, source, tmp_path):
    proc = start_cli("node_lost", "--splits", "12", "--rows-per-second", "2500", "--fetch-size", "500",
                     log=tmp_path / "run1.log")
    wait_until(lambda: proc.poll() is not None or rows_read(target, "node_lost") >= N // 4,
               "a quarter of the trades copied", timeout=300)
    assert proc.poll() is None, (tmp_path / "run1.log").read_text()[-3000:]
    at_kill = rows_read(target, "node_lost")
    kill_node(3)
    first_rc = proc.wait(timeout=600)
    after_kill = rows_read(target, "node_lost")
    first = complete(target, "node_lost")

    launcher("start-node", "3")
    restore(target)                                     # up, and holding the schema again
    if first["complete"]:
        assert first_rc == 0 and after_kill == N            # the work went on at QUORUM with the node gone
        how = "run 1 finished on two nodes (QUORUM held)"
    else:
        assert first_rc != 0 and first["by_status"].get(DONE, 0) < first["ranges"]
        retry = subprocess.run([sys.executable, "-m", "trade_migration.backfill_cli", "--backfill-id", "node_lost"],
                               env=cli_env(), capture_output=True, text=True, timeout=600)
        assert retry.returncode == 0, retry.stdout[-2000:] + retry.stderr[-3000:]
        how = (f"run 1 failed ({last_error_line(tmp_path / 'run1.log')[:160]}; ledger {first['by_status']}),"
               f" the retry finished")
    report = assert_done_exactly(target, "node_lost", source)
    FAULTS.append(f"a) node 127.0.0.3 SIGKILLed at {at_kill:,}/{N:,} rows of a backfill: {how};"
                  f" {after_kill - at_kill:,} rows copied while it was down; {report['attempts']} range attempts"
                  f" for {report['ranges']} ranges; exact, 0 rows lost")


# --- b) a node lost in the middle of a verification ------------------------------------------------
def test_a_node_lost_mid_verification_then_retried_batches_conclude_clean(target, source):
    ledger = Ledger(target, CFG, "for_verify")
    plan.ensure_ledger(target, CFG, ledger, 6)
    copier.run_batch(target, CFG, "for_verify", RING)
    assert_exact(target, KEYSPACE)
    run = parity.plan_run(target, CFG, run_id="node_lost_verify", mode="full", splits=24, narrow=False,
                          recheck_delay=0.2)
    options = parity.Options(fetch_size=200, max_in_flight=64, count_concurrency=2, scan_threads=1)
    survey_batches = parity.batches(run, parity.survey_indexes(run), 6)
    results: dict = {"survey": {}, "inspect": {}, "failed": []}
    first_done = threading.Event()   # set once the row-by-row stage has finished its first batch

    def stage(kind: str, batches: list, scope=None) -> None:
        for k, b in enumerate(batches):
            try:
                if kind == "survey":
                    results[kind][k] = parity.survey(target, CFG, run, b["ranges"], options)
                else:
                    results[kind][k] = parity.inspect(target, CFG, run, scope, b["ranges"], options)
            except Exception as exc:   # noqa: BLE001 - a mapped task fails; Airflow would retry it
                results["failed"].append((kind, k, f"{type(exc).__name__}: {exc}"[:200]))
            if kind == "inspect":
                first_done.set()

    def verification() -> None:
        try:
            stage("survey", survey_batches)
            if len(results["survey"]) == len(survey_batches):
                scope = parity.narrow(run, list(results["survey"].values()))
                results["scope"] = scope
                stage("inspect", parity.batches(run, scope.indexes, 6), scope)
        finally:
            first_done.set()

    worker = threading.Thread(target=verification)
    worker.start()
    first_done.wait(timeout=600)
    assert worker.is_alive(), f"the verification ended before the fault could be injected: {results['failed']}"
    kill_node(4)
    worker.join(timeout=900)
    assert not worker.is_alive()
    failed_while_down = list(results["failed"])

    launcher("start-node", "4")
    restore(target)
    # the retries, as Airflow retries each failed mapped task once the cluster is whole again
    for kind, k, _ in failed_while_down:
        if kind == "survey":
            results["survey"][k] = parity.survey(target, CFG, run, survey_batches[k]["ranges"], options)
    if "scope" not in results:
        results["scope"] = parity.narrow(run, list(results["survey"].values()))
    scope = results["scope"]
    inspect_batches = parity.batches(run, scope.indexes, 6)
    for k, b in enumerate(inspect_batches):
        if k not in results["inspect"]:
            results["inspect"][k] = parity.inspect(target, CFG, run, scope, b["ranges"], options)
    assert len(results["survey"]) == len(survey_batches) and len(results["inspect"]) == len(inspect_batches)
    outcome = parity.conclude(run, list(results["survey"].values()), list(results["inspect"].values()))
    parity.record(target, CFG, run, outcome, None)

    rejected = sum(source.rejects.values())
    assert outcome.status == parity.CLEAN and outcome.diffs == []
    t = outcome.total
    assert (t.source_rows, t.target_rows, t.rejected, t.missing, t.mismatched, t.orphans, t.late) == (
        N, source.user_trade_rows, rejected, 0, 0, 0, 0)
    assert outcome.counts == {"settled_trades": N, "rejected": rejected, "user_trades": source.user_trade_rows,
                              "expected_user_trades": source.user_trade_rows, "difference": 0,
                              "explained_by_rows": True}
    assert outcome.rejected_by_reason == dict(sorted(source.rejects.items()))
    assert target.execute(f"SELECT status FROM {KEYSPACE}.parity_runs WHERE scope = 'user_trades'"
                          f" AND started_at = %s", (run.started_at,)).one().status == parity.CLEAN
    how = (f"{len(failed_while_down)} mapped batches failed while it was down"
           f" ({'; '.join(sorted({f[2][:90] for f in failed_while_down}))}) and were retried"
           if failed_while_down else "every batch went on at QUORUM")
    FAULTS.append(f"b) node 127.0.0.4 SIGKILLed during the row-by-row stage of a full exhaustive verification"
                  f" (after 1 of {len(inspect_batches)} batches): {how};"
                  f" the run concluded clean, {t.source_rows:,} + {t.target_rows:,} rows checked, 0 differences")


# --- c) the worker SIGKILLed mid-page ------------------------------------------------------------------
def test_a_worker_killed_mid_page_resumes_from_its_checkpoint_exactly(target, source, tmp_path):
    proc = start_cli("worker_killed", "--splits", "3", "--rows-per-second", "3000", "--fetch-size", "400",
                     log=tmp_path / "worker.log")
    wait_until(lambda: proc.poll() is not None or rows_read(target, "worker_killed") >= N // 3,
               "a third of the trades copied", timeout=300)
    assert proc.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    states = Ledger(target, CFG, "worker_killed").load()
    running = [s for s in states if s.status == RUNNING]
    assert len(running) == 1, states                      # the range it was in, left as it was killed
    killed = running[0]
    assert killed.range_start < killed.checkpoint < killed.range_end
    done_before = sum(s.rows_read for s in states)
    assert N // 3 <= done_before < N

    # the task's retry: the same batch of ranges, the same ledger
    resumed = copier.run_batch(target, CFG, "worker_killed", RING, Options())
    assert resumed["rows_read"] == N - done_before       # only what was not checkpointed is read again
    after = {s.range_start: s for s in Ledger(target, CFG, "worker_killed").load()}
    assert (after[killed.range_start].status, after[killed.range_start].attempts) == (DONE, 2)
    assert_done_exactly(target, "worker_killed", source)
    FAULTS.append(f"c) backfill worker SIGKILLed mid-page at {done_before:,}/{N:,} checkpointed rows: the retry read"
                  f" only the remaining {resumed['rows_read']:,}; exact, 0 rows lost")


# --- d) a timeout on an oversized range -> re-split ----------------------------------------------------
def resplit_children(session, backfill_id: str) -> dict[int, list]:
    states = Ledger(session, CFG, backfill_id).load()
    out: dict[int, list] = {}
    for s in states:
        if s.parent_start is not None:
            out.setdefault(s.parent_start, []).append(s)
    return out


def test_a_client_timeout_on_an_oversized_range_resplits_it(target, source):
    ledger = Ledger(target, CFG, "client_timeout")
    oversized = plan.ensure_ledger(target, CFG, ledger, 1)    # one range per node's token range: ~N/3 rows each
    assert 3 <= len(oversized) <= 4
    with pytest.raises(RangeTimeout, match="re-split before its next attempt"):
        copier.run_batch(target, CFG, "client_timeout", RING, Options(fetch_size=5000, page_timeout=0.001))
    flagged = [s for s in ledger.load() if s.resplit]
    assert len(flagged) == len(oversized)
    assert all(s.status == "failed" and s.last_error.startswith("timed out at token ") for s in flagged)
    assert all("rerun the range with a larger page_timeout_s" in s.last_error for s in flagged)

    copier.run_batch(target, CFG, "client_timeout", RING, Options())      # the retry
    children = resplit_children(target, "client_timeout")
    states = {s.range_start: s for s in ledger.load()}
    assert sorted(children) == sorted(s.range_start for s in flagged)
    for parent, kids in children.items():
        assert len(kids) == 3 and states[parent].attempts == 2
        assert states[parent].range_end == min(k.range_start for k in kids)   # shrunk to its first piece
        assert max(k.range_end for k in kids) == next(o.range_end for o in oversized if o.range_start == parent)
    assert_done_exactly(target, "client_timeout", source)
    FAULTS.append(f"d1) client page timeout on {len(oversized)} oversized ranges: each re-split into 4 on the"
                  f" retry ({sum(len(k) for k in children.values())} new ranges in the ledger); exact")


def test_a_server_timeout_on_an_oversized_range_resplits_it(target, source):
    """Node 4 is frozen (SIGSTOP) while the backfill copies the largest range: still 'up' in
    gossip, it never answers. The scan reads at ALL through coordinators 2 and 3, so the
    coordinator waits for node 4 and gives up after its range_request_timeout: a server-side
    ReadTimeout in the middle of that range. The freeze comes once the range is running (its
    symbols and statements loaded), so only the scan needs node 4; writes still reach QUORUM."""
    ledger = Ledger(target, CFG, "server_timeout")
    states = sorted(plan.ensure_ledger(target, CFG, ledger, 1), key=lambda s: s.range_end - s.range_start)
    biggest = states[-1]
    strict = Config(keyspace=KEYSPACE, contact_points=("127.0.0.2",), replication=REPLICATION,
                    read_consistency="ALL", write_consistency="QUORUM", serial_consistency="SERIAL")
    profile = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy(["127.0.0.2", "127.0.0.3"]),
                               request_timeout=90, consistency_level=CFG.read_cl)
    cluster = Cluster(["127.0.0.2"], protocol_version=4, execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    worker_session = cluster.connect()
    outcome: dict = {}

    def task() -> None:
        try:
            outcome["result"] = copier.run_batch(worker_session, strict, "server_timeout", [biggest.token_range],
                                                   Options(page_timeout=80, fetch_size=200, rows_per_second=1500))
        except Exception as exc:   # noqa: BLE001 - what the task would raise
            outcome["error"] = exc

    worker = threading.Thread(target=task)
    frozen_at = None
    try:
        worker.start()
        running = wait_until(lambda: next((s for s in ledger.load() if s.range_start == biggest.range_start
                                           and s.status == RUNNING and s.checkpoint not in (None, s.range_start)),
                                          None) or not worker.is_alive(), "the largest range to be copying")
        assert worker.is_alive(), outcome
        frozen_at = running.checkpoint
        os.kill(node_pid(4), signal.SIGSTOP)
        worker.join(timeout=600)
        assert not worker.is_alive()
    finally:
        os.kill(node_pid(4), signal.SIGCONT)
        cluster.shutdown()
    restore(target)
    assert isinstance(outcome.get("error"), RangeTimeout), outcome
    flagged = {s.range_start: s for s in ledger.load()}[biggest.range_start]
    assert flagged.resplit and flagged.status == "failed"
    assert flagged.last_error.startswith(f"timed out at token {flagged.checkpoint} (ReadTimeout: Error from server:"
                                         " code=1200 [Coordinator node timed out waiting for replica nodes'"
                                         " responses]"), flagged.last_error
    assert "'consistency': 'ALL'" in flagged.last_error
    assert biggest.range_start < frozen_at <= flagged.checkpoint < biggest.range_end   # stopped mid-range

    copier.run_batch(target, CFG, "server_timeout", RING, Options())      # the retry, at QUORUM
    children = resplit_children(target, "server_timeout")
    assert list(children) == [biggest.range_start] and len(children[biggest.range_start]) == 3
    pieces = sorted([flagged.checkpoint] + [c.range_start for c in children[biggest.range_start]])
    assert pieces[0] == flagged.checkpoint                                   # what was left, cut in 4
    assert assert_done_exactly(target, "server_timeout", source)["ranges"] == len(states) + 3
    FAULTS.append("d2) server-side ReadTimeout (replica 127.0.0.4 frozen with SIGSTOP mid-range, scan at ALL):"
                  " the range stopped at its checkpoint, flagged, and its remainder was re-split into 4 on the"
                  " retry; exact")
