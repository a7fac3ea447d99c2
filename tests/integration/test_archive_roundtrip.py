"""The archive before the drop, on the real node, to a local folder (file://) and to a local
S3-compatible endpoint (moto's server, started here on a free port).

A restore of an intact archive gives every settled_trades row back, each column with its write
time and TTL (compared with a query written out in the test kit, not the product's scan); a
corrupt, missing or incomplete archive, or a row that changed since, stops the drop, names what
differs and tells the notifier; a store that cannot be used fails before anything is written.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from datetime import timedelta

import boto3
import fsspec
import pytest
from cleanup_state import prepare, utcnow
from moto.server import ThreadedMotoServer
from testkit.statements import cells_with_times, insert_settled_ttl

from trade_migration.archive import check, layout, store, writer
from trade_migration.cleanup import approval, drop, gates, phase
from trade_migration.core import clock
from trade_migration.core.config import LEGACY_TABLE
from trade_migration.core.errors import ArchiveMismatch, ArchiveStoreError, ConfigError, RestoreRefused
from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN, TokenRange, divide
from trade_migration.restore.run import Target, restore_archive
from trade_migration.state import phases
from trade_migration.statements.settled_trades import insert_settled

RANGES = divide(TokenRange(MIN_TOKEN, MAX_TOKEN), 16)
SMALL = writer.ArchiveOptions(parallelism=4, fetch_size=200, batch_rows=100)
TTL_S = 86_400
TWO_DAYS_US = 2 * 86_400 * 1_000_000     # before dual_write became new_only (a day ago)
TRADES = 2000
ACK = gates.GateOptions(acknowledge_rejects="known bad rows")
DECISION = approval.Decision("Approve", "alice", "1", utcnow())
NOTICES: list = []


def collect(notice) -> None:
    """The notifier the tests install (TM_PARITY_NOTIFIER)."""
    NOTICES.append(notice)


@pytest.fixture(autouse=True)
def notifier(monkeypatch):
    NOTICES.clear()
    monkeypatch.setenv("TM_PARITY_NOTIFIER", f"{__name__}:collect")


@pytest.fixture(scope="module")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def s3_options(endpoint: str, key: str = "testing", secret: str = "testing") -> dict:
    return {"key": key, "secret": secret, "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}


def new_bucket(endpoint: str) -> str:
    name = f"archive-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["file", "s3"])
def where(request, tmp_path, s3_endpoint) -> store.Store:
    """An empty archive folder for one run, in a local folder or in a fresh bucket."""
    if request.param == "file":
        return store.open_store(store.run_url(store.archive_url(str(tmp_path / "archive")), "manual__1"))
    bucket = new_bucket(s3_endpoint)
    return store.open_store(store.run_url(f"s3://{bucket}/settled", "manual__1"), s3_options(s3_endpoint))


@pytest.fixture
def ready(db, cfg):
    """Every gate passes; 2,000 generated trades and 3 more with a TTL and only some columns set."""
    prepare(db, cfg, trades=TRADES)
    stmt = db.prepare(insert_settled_ttl(cfg.keyspace))
    for k in range(3):
        db.execute(stmt, (9_000_000 + k, "BTC_USDT", 100 + k, utcnow(), clock.now_micros() - TWO_DAYS_US, TTL_S))
    return TRADES + 3


def cells(db, keyspace: str, table: str) -> tuple[dict, dict]:
    """trade_id -> every column's (value, write time), and trade_id -> every column's TTL."""
    values, ttls = {}, {}
    for row in db.execute(cells_with_times(keyspace, table)):
        rest = list(row[1:])
        values[row[0]] = tuple(v for k, v in enumerate(rest) if k % 3 != 2)
        ttls[row[0]] = rest[2::3]
    return values, ttls


def ttls_agree(a: dict, b: dict) -> bool:
    """The same columns have a TTL, within a few seconds (the copies were read moments apart)."""
    return a.keys() == b.keys() and all(
        (x is None) == (y is None) and (x is None or abs(x - y) <= 3)
        for k in a for x, y in zip(a[k], b[k], strict=True))


def archive(db, cfg, where) -> dict:
    return writer.write_archive(db, cfg, where, run_id="manual__1", ranges=RANGES, options=SMALL)


def legacy_exists(db, cfg) -> bool:
    return drop.table_exists(db, cfg.keyspace, LEGACY_TABLE)


def audited(db, cfg, action: str) -> list:
    return [r for r in phases.State(db, cfg).audit_log() if r.phase == phases.CLEANUP and r.action == action]


def one_object(manifest: dict, index: int = 0) -> dict:
    return [p for p in manifest["ranges"] if p["object"]][index]


# --- the round trip -------------------------------------------------------------------------------
def test_an_intact_archive_checks_clean_and_restores_every_row_with_its_write_time(db, cfg, ready, where):
    manifest = archive(db, cfg, where)
    assert (manifest["rows"], manifest["counted"], len(manifest["ranges"])) == (ready, ready, 16)
    assert manifest["schema"] == layout.schema_json() and manifest["objects"] == len(where.fs.find(where.path)) - 1
    for part in manifest["ranges"]:
        assert part["rows"] == part["count"]
        if part["object"]:
            assert where.fs.size(where.at(part["object"])) == part["bytes"] and len(part["sha256"]) == 64
    assert json.loads(where.fs.cat_file(where.at("manifest.json"))) == manifest

    checked = check.check_archive(db, cfg, where, check.CheckOptions(sample_share=1, seed="s"))
    assert (checked["problems"], checked["sampled_ranges"], checked["compared_rows"]) == (0, 16, ready)

    target = Target(cfg.keyspace, "restored")
    db.execute(f"DROP TABLE IF EXISTS {cfg.keyspace}.restored")
    first_two = [RANGES[0].label, str(RANGES[5].start)]
    part = restore_archive(db, cfg, where, target, ranges=first_two)
    assert (part["restored_ranges"], part["skipped_ranges"]) == (2, 0)
    whole = restore_archive(db, cfg, where, target)                  # resumes: the two ranges are skipped
    assert (whole["restored_ranges"], whole["skipped_ranges"], whole["expired"]) == (14, 2, 0)
    assert part["rows"] + whole["rows"] == ready
    again = restore_archive(db, cfg, where, target)
    assert (again["restored_ranges"], again["rows"]) == (0, 0)

    (source, source_ttl), (restored, restored_ttl) = (cells(db, cfg.keyspace, LEGACY_TABLE),
                                                      cells(db, cfg.keyspace, "restored"))
    assert len(source) == ready and restored == source               # every value, every column's write time
    assert ttls_agree(source_ttl, restored_ttl)
    assert sum(1 for ttl in source_ttl.values() if any(ttl)) == 3    # the TTL rows kept theirs


def test_a_restore_refuses_a_table_that_is_not_empty_and_writes_nothing(db, cfg, ready, where):
    archive(db, cfg, where)
    other = Target(cfg.keyspace, "busy2")
    db.execute(f"DROP TABLE IF EXISTS {cfg.keyspace}.busy2")
    db.execute(f"CREATE TABLE {cfg.keyspace}.busy2 (trade_id bigint PRIMARY KEY, output_seq bigint, symbol text,"
               " price bigint, quantity bigint, buyer_user_id bigint, seller_user_id bigint, buyer_order_id bigint,"
               " seller_order_id bigint, taker_side text, buyer_fee bigint, seller_fee bigint, matched_at timestamp,"
               " settled_at timestamp)")
    db.execute(f"INSERT INTO {cfg.keyspace}.busy2 (trade_id, price) VALUES (1, 2)")
    with pytest.raises(RestoreRefused, match=f"{cfg.keyspace}.busy2 is not empty .* nothing was written"):
        restore_archive(db, cfg, where, other)
    assert [tuple(r) for r in db.execute(f"SELECT trade_id, price FROM {cfg.keyspace}.busy2")] == [(1, 2)]
    merged = restore_archive(db, cfg, where, other, allow_non_empty=True)
    assert merged["rows"] == ready


@pytest.mark.parametrize("bad", ["nodot", "a.b.c", "Upper.x", "ks.x;drop", "ks.", ".t"])
def test_a_restore_target_must_be_two_identifiers(bad):
    with pytest.raises(ConfigError):
        Target.parse(bad)


# --- refusals before the drop -----------------------------------------------------------------------
def run_until_drop(db, cfg, where, share: float = 1) -> dict:
    """archive_table -> verify_archive -> drop_table as the DAG runs them."""
    archived = phase.archive_table(db, cfg, ACK, DECISION, archive=where, skip_archive_reason="",
                                   refresh_bound_s=30, parallelism=4, run_id="manual__1")
    return archived


def verify_then_drop(db, cfg, where, archived, share: float = 1):
    verified = phase.verify_archive(db, cfg, DECISION, archive=where, archived=archived,
                                    options=check.CheckOptions(sample_share=share, seed="manual__1"),
                                    run_id="manual__1")
    return phase.drop_table(db, cfg, ACK, DECISION, archived=verified, run_id="manual__1")


def refused(db, cfg, match: str) -> None:
    """Nothing dropped, the notifier told, the refusal audited with what differed."""
    assert legacy_exists(db, cfg)
    assert audited(db, cfg, drop.DROPPED) == []
    [notice] = NOTICES
    assert "does not match" in notice.subject and "Nothing was dropped." in notice.body
    assert match in notice.body
    [entry] = audited(db, cfg, drop.ARCHIVE_REFUSED)
    assert match in entry.reason


def test_a_corrupt_object_stops_the_drop_and_is_named(db, cfg, ready, where):
    archived = run_until_drop(db, cfg, where)
    bad = one_object(layout.read_manifest(where))
    data = bytearray(where.fs.cat_file(where.at(bad["object"])))
    data[len(data) // 2] ^= 0xFF
    where.fs.pipe_file(where.at(bad["object"]), bytes(data))
    with pytest.raises(ArchiveMismatch, match=rf"object {where.at(bad['object'])} is corrupt: {bad['bytes']} bytes"):
        verify_then_drop(db, cfg, where, archived)
    refused(db, cfg, f"{bad['object']} is corrupt")


def test_a_missing_object_stops_the_drop_and_is_named(db, cfg, ready, where):
    archived = run_until_drop(db, cfg, where)
    gone = one_object(layout.read_manifest(where), -1)
    where.fs.rm_file(where.at(gone["object"]))
    with pytest.raises(ArchiveMismatch, match=f"object {where.at(gone['object'])} is missing"):
        verify_then_drop(db, cfg, where, archived)
    refused(db, cfg, f"{gone['object']} is missing")


def test_an_archive_without_its_manifest_is_incomplete(db, cfg, ready, where):
    archived = run_until_drop(db, cfg, where)
    where.fs.rm_file(where.at(layout.MANIFEST))
    with pytest.raises(ArchiveMismatch, match="has no manifest.json: it is incomplete"):
        verify_then_drop(db, cfg, where, archived)
    refused(db, cfg, "has no manifest.json")


def test_a_row_changed_since_the_archive_stops_the_drop(db, cfg, ready, tmp_path):
    where = store.open_store(store.archive_url(str(tmp_path / "run")))
    archived = run_until_drop(db, cfg, where)
    [row] = db.execute(f"SELECT trade_id, symbol, settled_at FROM {cfg.keyspace}.settled_trades LIMIT 1")
    later = clock.now_micros()
    db.execute(db.prepare(insert_settled(cfg.keyspace)),
               (row.trade_id, 1, row.symbol, 5, 5, 1, 2, 3, 4, "BUY", 0, 0, None, row.settled_at, later))
    with pytest.raises(ArchiveMismatch, match=rf"trade {row.trade_id} differs in output_seq, price"):
        verify_then_drop(db, cfg, where, archived)
    refused(db, cfg, f"trade {row.trade_id} write time")


def test_the_sample_share_decides_how_many_ranges_are_read_back(db, cfg, ready, tmp_path):
    where = store.open_store(store.archive_url(str(tmp_path / "run")))
    archive(db, cfg, where)
    checked = check.check_archive(db, cfg, where, check.CheckOptions(sample_share=0.25, seed="a"))
    assert checked["sampled_ranges"] == 4 and 0 < checked["compared_rows"] < ready
    again = check.check_archive(db, cfg, where, check.CheckOptions(sample_share=0.25, seed="a"))
    assert again["compared_rows"] == checked["compared_rows"]      # seeded: the same ranges


def test_the_drop_refuses_an_archive_that_was_not_verified(db, cfg, ready):
    with pytest.raises(ArchiveMismatch, match="was not verified; nothing was dropped"):
        phase.drop_table(db, cfg, ACK, DECISION, archived={"url": "file:///x", "rows": 3}, run_id="r")
    assert legacy_exists(db, cfg)


# --- a store that cannot be used ----------------------------------------------------------------------
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


BAD_STORES = {
    "unreachable": (lambda ep, bucket: (f"s3://{bucket}/a", s3_options(f"http://127.0.0.1:{closed_port()}")),
                    "cannot be reached"),
    "no bucket": (lambda ep, bucket: ("s3://no-such-bucket-here/a", s3_options(ep)), "'no-such-bucket-here' does not"
                                                                                      " exist"),
    "wrong credentials": (lambda ep, bucket: (f"s3://{bucket}/a", s3_options(ep, "AKIAWRONG", "wrong")),
                          "the credentials were refused"),
}


@pytest.mark.parametrize("case", sorted(BAD_STORES))
def test_a_store_that_cannot_be_used_fails_before_anything_is_written(db, cfg, ready, s3_endpoint, case,
                                                                       monkeypatch):
    from moto import settings as moto_settings

    make, message = BAD_STORES[case]
    bucket = new_bucket(s3_endpoint)
    url, options = make(s3_endpoint, bucket)
    bad = store.open_store(store.run_url(url, "manual__1"), options)
    before = phases.State(db, cfg).phase(phases.CLEANUP)
    with monkeypatch.context() as m:
        if case == "wrong credentials":     # moto accepts any key unless told to check them
            m.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
        with pytest.raises(ArchiveStoreError, match=message):
            phase.archive_table(db, cfg, ACK, DECISION, archive=bad, skip_archive_reason="", refresh_bound_s=30,
                                parallelism=4, run_id="manual__1")
        with pytest.raises(ArchiveStoreError, match=message):
            restore_archive(db, cfg, bad, Target(cfg.keyspace, "never"))
    assert phases.State(db, cfg).phase(phases.CLEANUP) == before           # not even marked running
    assert audited(db, cfg, drop.ARCHIVED) == [] and legacy_exists(db, cfg)
    assert not drop.table_exists(db, cfg.keyspace, "never")
    assert fsspec.filesystem("s3", **s3_options(s3_endpoint), skip_instance_cache=True).find(bucket) == []


# --- where the archive goes -----------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    ("/data/archive/", "file:///data/archive"),
    (" file:///data/a ", "file:///data/a"),
    ("s3://bucket/some/prefix/", "s3://bucket/some/prefix"),
    ("gs://b", "gs://b"),
])
def test_archive_urls(value, expected):
    assert store.archive_url(value) == expected


def test_the_archive_url_defaults_to_the_setting_then_the_report_dir(tmp_path):
    assert store.archive_url("", {"TM_REPORT_DIR": str(tmp_path)}) == f"file://{tmp_path}/archive"
    assert store.archive_url(None, {"TM_ARCHIVE_URL": "s3://b/p"}) == "s3://b/p"
    assert store.run_url("s3://b/p", "manual__2026-11-24T10:00:00+00:00") == "s3://b/p/manual__2026-11-24T10_00_00_00_00"


@pytest.mark.parametrize("bad", ["relative/dir", "/tmp/../etc", "/", "~/a", "s3://key:secret@bucket/p",
                                 "s3://bucket/a/../b", "http://example.com/a", "s3://b/p?x=1", "s3:///p",
                                 "file://host/p", "s3://b/p::file:///etc", "/tmp/a\x00b"])
def test_bad_archive_urls_are_refused(bad):
    with pytest.raises(ConfigError, match="archive_url"):
        store.archive_url(bad)


def test_connection_credentials_become_storage_options():
    class Conn:
        login, password = "AKIA", "s3cr3t"
        extra_dejson = {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-1"}

    assert store.options_from_connection(Conn(), "s3://b/p") == {
        "key": "AKIA", "secret": "s3cr3t",
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-1"}}
    assert store.options_from_connection(Conn(), "file:///x") == {}


def test_rows_written_after_the_writer_stopped_leave_no_manifest(db, cfg, ready, tmp_path):
    where = store.open_store(store.archive_url(str(tmp_path / "run")))
    with pytest.raises(Exception, match="it still writes settled_trades; nothing may be dropped"):
        writer.write_archive(db, cfg, where, run_id="r", written_before=utcnow() - timedelta(days=30))
    assert where.fs.find(where.path) and not where.fs.exists(where.at(layout.MANIFEST))


def test_the_restore_command_restores_and_refuses_in_words(db, cfg, ready, tmp_path):
    where = store.open_store(store.archive_url(str(tmp_path / "run")))
    archive(db, cfg, where)
    db.execute(f"DROP TABLE IF EXISTS {cfg.keyspace}.cli_restored")
    env = {**os.environ, "TM_KEYSPACE": cfg.keyspace}
    command = [sys.executable, "-m", "trade_migration.restore", "--archive", str(tmp_path / "run"),
               "--into", f"{cfg.keyspace}.cli_restored"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["rows"], result["restored_ranges"], result["target"]) == (ready, 16, f"{cfg.keyspace}.cli_restored")
    assert cells(db, cfg.keyspace, "cli_restored")[0] == cells(db, cfg.keyspace, LEGACY_TABLE)[0]

    other = [*command[:-1], f"{cfg.keyspace}.settled_trades"]      # not empty, and no restore of it started
    refused_run = subprocess.run(other, env=env, capture_output=True, text=True, timeout=300)
    assert refused_run.returncode == 1
    assert any(line.startswith(f"RestoreRefused: {cfg.keyspace}.settled_trades is not empty")
               for line in refused_run.stderr.splitlines()), refused_run.stderr
