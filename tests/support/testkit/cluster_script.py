"""scripts/cluster/cluster.py as a module, for tests that start, read or break a cluster."""
from __future__ import annotations

import importlib.util
import itertools
import os
from pathlib import Path
from unittest import mock

PATH = Path(__file__).resolve().parents[3] / "scripts" / "cluster" / "cluster.py"
_loaded = itertools.count()


def load(**env: str):
    """A fresh copy of the script's module whose settings (read at import) come from `env`
    (CLUSTER_BASE, CLUSTER_PG_PORT, ...) over the process environment."""
    spec = importlib.util.spec_from_file_location(f"tm_cluster_script_{next(_loaded)}", PATH)
    module = importlib.util.module_from_spec(spec)
    with mock.patch.dict(os.environ, env):
        spec.loader.exec_module(module)
    return module
