"""The README's statsd_exporter mapping and the Grafana dashboard fit the metrics the code sends:
every series a panel queries is one the mapping makes of a metric sent."""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SENT = {  # (name after trade_migration., statsd type) as the code sends them
    **{f"backfill.{k}": "c" for k in ("rows_read", "rows_written", "rows_rejected", "ranges_done", "ranges_failed",
                                      "ranges_stalled")},
    **{f"backfill.ranges.{s}": "g" for s in ("pending", "running", "done", "failed")},
    "backfill.rows_per_second": "g", "backfill.range_seconds": "ms",
    **{f"verify.{k}": "g" for k in ("missing", "mismatched", "orphans", "rejected", "repaired", "resolved", "healed",
                                    "rows_checked", "duration_s")},
    **{f"verify.runs.{s}": "c" for s in ("clean", "repaired", "broken")},
    **{f"dual_write.{k}": "c" for k in ("attempts", "failures", "retry_record_failures", "healed", "heal_failed")},
    **{f"dual_write.{k}": "g" for k in ("retries_pending", "failures_per_hour", "heal_pending", "heal_left")},
    "phase.backfill.running": "c", "notices.task_failed": "c",
}
KIND = {"c": "counter", "g": "gauge", "ms": "observer"}


def mapped(mappings: list[dict], name: str, kind: str) -> str:
    for m in mappings:
        pattern = "^" + re.escape(m["match"]).replace(r"\*", "([^.]+)") + "$"
        found = re.match(pattern, name)
        if found and m.get("match_metric_type", KIND[kind]) == KIND[kind]:
            out = m["name"]
            for i, part in enumerate(found.groups(), 1):
                out = out.replace(f"${{{i}}}", part)
            return out
    raise AssertionError(f"no mapping for {name}")


def test_every_panel_queries_a_series_the_mapping_makes():
    readme = (REPO / "README.md").read_text()
    block = re.search(r"```yaml\n(mappings:.*?)```", readme, re.S).group(1)
    mappings = yaml.safe_load(block)["mappings"]
    series = {mapped(mappings, f"trade_migration.{n}", k) for n, k in SENT.items()}
    assert "trade_migration_backfill_rows_written_total" in series and "trade_migration_backfill_ranges" in series
    dashboard = json.loads((REPO / "docs/grafana/trade_migration.json").read_text())
    queried = {name for p in dashboard["panels"] for t in p.get("targets", [])
               for name in re.findall(r"trade_migration_[a-z_]+", t["expr"])}
    assert len(queried) >= 15 and queried - series == set()
