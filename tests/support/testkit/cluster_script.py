"""scripts/cluster/cluster.py as a module, for tests that start, read or break the cluster."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

PATH = Path(__file__).resolve().parents[3] / "scripts" / "cluster" / "cluster.py"


def load():
    """The script's module (loaded once; its settings are read from the environment at load)."""
    if "tm_cluster_script" not in sys.modules:
        spec = importlib.util.spec_from_file_location("tm_cluster_script", PATH)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["tm_cluster_script"]
