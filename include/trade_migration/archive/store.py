"""Where an archive lives: a URL (file://, s3://, gs://, abfs://) opened through fsspec.

Credentials never appear in the URL: they come as fsspec storage options (the DAGs build them from
an Airflow connection, the restore command from the store's own environment, e.g. AWS_*). Before
anything is written or read, probe() proves the store answers, takes the credentials and has the
bucket, so a wrong endpoint, key or bucket fails with what is wrong and nothing half-done.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import fsspec
from fsspec.spec import AbstractFileSystem

from trade_migration.core.errors import ArchiveMismatch, ArchiveStoreError, ConfigError
from trade_migration.core.settings import ARCHIVE_URL, report_root

OBJECT_STORES = ("s3", "gs", "gcs", "abfs", "az")
CHUNK = 1 << 20
# An unreachable S3 endpoint fails in seconds, not after minutes of retries.
S3_DEFAULTS = {"config_kwargs": {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 2}}}


def archive_url(value: str | None, env: Mapping[str, str] | None = None) -> str:
    """The archive's root URL: the Param if given, else TM_ARCHIVE_URL, else file://$TM_REPORT_DIR/archive.

    An absolute local path is taken as file://; relative paths, '..', credentials or a query in
    the URL are refused."""
    raw = (value or "").strip() or (ARCHIVE_URL.get(env) or "").strip()
    if not raw:
        return "file://" + str(report_root(env) / "archive")
    if "\x00" in raw or any(c in raw for c in "\r\n\t") or "::" in raw:
        raise ConfigError(f"archive_url has control characters or '::' (got {value!r})")
    if raw.startswith("/"):
        return _local(raw, value)
    parts = urlsplit(raw)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"archive_url file:// must name a local absolute path (got {value!r})")
        return _local(parts.path, value)
    if parts.scheme not in OBJECT_STORES:
        raise ConfigError(f"archive_url must be an absolute path, file://, or one of"
                          f" {', '.join(s + '://' for s in OBJECT_STORES)} (got {value!r})")
    if "@" in parts.netloc or parts.query or parts.fragment or not re.fullmatch(r"[A-Za-z0-9._-]{1,255}",
                                                                                 parts.netloc):
        raise ConfigError(f"archive_url needs a plain bucket name, no credentials or query (got {value!r});"
                          " credentials belong in the archive connection")
    segments = [s for s in parts.path.split("/") if s]
    if ".." in segments or "." in segments:
        raise ConfigError(f"archive_url may not contain '.' or '..' (got {value!r})")
    return f"{parts.scheme}://{parts.netloc}" + "".join("/" + s for s in segments)


def _local(path: str, given: str | None) -> str:
    if not os.path.isabs(path) or ".." in Path(path).parts or Path(path) == Path("/"):
        raise ConfigError(f"archive_url must be an absolute path below / without '..' (got {given!r})")
    return "file://" + os.path.normpath(path)


def run_url(root: str, run_id: str) -> str:
    """One folder per Airflow run, named after the run id (made safe for any store)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id).strip(".")[:150]
    if not name:
        raise ConfigError(f"run id {run_id!r} gives no folder name")
    return f"{root.rstrip('/')}/{name}"


@dataclass(frozen=True)
class Store:
    """One archive's folder in its file system: `path` as fsspec names it, `url` as people do."""
    url: str
    fs: AbstractFileSystem
    path: str

    def at(self, name: str) -> str:
        return posixpath.join(self.path, name)

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme


def options_from_connection(conn, url: str) -> dict:
    """fsspec storage options from an Airflow connection (any object with login, password and
    extra_dejson: no Airflow import here). s3://: login/password are the access key and secret,
    extra endpoint_url / region_name / aws_session_token as named; any store: extra
    storage_options (a JSON object) is passed as it is."""
    extra = conn.extra_dejson or {}
    options = dict(extra.get("storage_options") or {})
    if urlsplit(url).scheme == "s3":
        if conn.login:
            options["key"] = conn.login
        if conn.password:
            options["secret"] = conn.password
        if extra.get("aws_session_token"):
            options["token"] = extra["aws_session_token"]
        client = {k: extra[k] for k in ("endpoint_url", "region_name") if extra.get(k)}
        if client:
            options["client_kwargs"] = {**options.get("client_kwargs", {}), **client}
    return options


def open_store(url: str, storage_options: Mapping | None = None) -> Store:
    """The archive at `url` (already checked by archive_url), with the store's credentials."""
    options = dict(storage_options or {})
    scheme = urlsplit(url).scheme
    if scheme == "s3":
        options = {**S3_DEFAULTS, **options}
        options["config_kwargs"] = {**S3_DEFAULTS["config_kwargs"], **options.get("config_kwargs", {})}
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
    except ImportError as exc:
        raise ArchiveStoreError(f"no file system for {scheme}:// is installed: {exc}") from exc
    return Store(url, fs, path)


def probe(store: Store) -> None:
    """Prove the store answers, accepts the credentials and has the bucket; ArchiveStoreError else."""
    if store.scheme == "file":
        return      # a local folder: created when the archive is written
    bucket = store.path.split("/", 1)[0]
    try:
        store.fs.invalidate_cache()
        store.fs.ls(bucket, detail=False)
    except FileNotFoundError as exc:
        raise ArchiveStoreError(f"archive store {store.url}: {bucket!r} does not exist ({exc})") from exc
    except PermissionError as exc:
        raise ArchiveStoreError(f"archive store {store.url}: the credentials were refused ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - an unreachable endpoint raises whatever its client raises
        raise ArchiveStoreError(f"archive store {store.url} cannot be reached:"
                                f" {type(exc).__name__}: {exc}") from exc


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(store: Store, name: str, dest: Path, *, size: int, sha256: str) -> Path:
    """Copy object `name` to `dest`, hashing it on the way; ArchiveMismatch naming the object if it
    is missing or its size or sha256 differs from the manifest's."""
    digest, got = hashlib.sha256(), 0
    try:
        with store.fs.open(store.at(name), "rb") as src, open(dest, "wb") as out:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
                got += len(chunk)
    except FileNotFoundError as exc:
        raise ArchiveMismatch(f"object {store.at(name)} is missing from the archive {store.url}") from exc
    if got != size or digest.hexdigest() != sha256:
        raise ArchiveMismatch(f"object {store.at(name)} is corrupt: {got} bytes with sha256 {digest.hexdigest()},"
                              f" the manifest says {size} bytes with sha256 {sha256}")
    return dest
