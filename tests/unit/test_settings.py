"""Every TM_* variable the project mentions is in the one registry, and only the registry reads them."""
from __future__ import annotations

import json
import re
from pathlib import Path

from trade_migration.core import settings
from trade_migration.core.config import Config

REPO = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\bTM_[A-Z][A-Z0-9_]*")
SOURCES = ("include", "dags", "plugins", "bin")


def files() -> list[Path]:
    found = [p for top in SOURCES for p in sorted((REPO / top).rglob("*")) if p.is_file()
             and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".parquet")]
    return found + [REPO / "docker-compose.yml"]


def test_every_tm_name_in_the_product_is_registered():
    seen = {name: path for path in files() for name in NAME.findall(path.read_text(errors="replace"))}
    assert len(seen) >= 8, seen                         # the scan found the product's own names
    unknown = {name: str(path.relative_to(REPO)) for name, path in seen.items() if name not in settings.REGISTRY}
    assert unknown == {}


def test_only_the_registry_spells_a_variable_name_in_code():
    quoted = re.compile(r"""["']TM_""")
    spelled = [str(p.relative_to(REPO)) for p in files() if p.suffix == ".py" and quoted.search(p.read_text())]
    assert spelled == ["include/trade_migration/core/settings.py"]


def test_each_setting_has_a_name_and_a_line_of_doc():
    for name, setting in settings.REGISTRY.items():
        assert name == setting.name and NAME.fullmatch(name)
        assert setting.doc.strip() and "\n" not in setting.doc


def test_config_defaults_are_the_registry_defaults():
    assert Config.from_env({}) == Config()
    defaults = {field: setting.default for field, setting in settings.CONNECTION.items()}
    defaults["replication"] = json.loads(defaults["replication"])
    assert {field: getattr(Config(), field) for field in defaults} == defaults


def test_values_are_parsed_and_blank_report_dir_means_the_default(tmp_path):
    env = {"TM_PORT": "9142", "TM_APPROVAL_TIMEOUT_S": "90", "TM_CONTACT_POINTS": " a, b ,"}
    assert (settings.PORT.get(env), settings.APPROVAL_TIMEOUT_S.get(env)) == (9142, 90)
    assert settings.CONTACT_POINTS.get(env) == ("a", "b")
    assert settings.APPROVAL_TIMEOUT_S.get({}) == 24 * 3600
    assert settings.report_root({"TM_REPORT_DIR": str(tmp_path)}) == tmp_path.resolve()
    assert settings.report_root({"TM_REPORT_DIR": ""}) == Path("reports").resolve()
