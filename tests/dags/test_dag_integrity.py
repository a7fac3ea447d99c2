"""Every file in dags/ imports through Airflow's own DagBag, and the contract's DAGs exist."""
import pytest
from conftest import dagbag

CONTRACT_DAGS = {"user_trades_migration", "user_trades_create_table", "user_trades_dual_write",
                 "user_trades_read_path", "user_trades_backfill", "user_trades_verify", "user_trades_cleanup",
                 "user_trades_restore"}


@pytest.fixture(scope="module")
def bag():
    return dagbag()


def test_no_import_errors(bag):
    assert bag.import_errors == {}


def test_contract_dag_ids(bag):
    assert set(bag.dag_ids) == CONTRACT_DAGS


def test_dags_are_tagged_documented_and_retry(bag):
    for dag_id in CONTRACT_DAGS & set(bag.dag_ids):
        dag = bag.get_dag(dag_id)
        assert "user_trades_migration" in dag.tags, dag_id
        assert dag.doc_md, dag_id
        assert not dag.catchup, dag_id


def test_backfill_mapping_pool_and_retries(bag):
    dag = bag.get_dag("user_trades_backfill")
    copy = dag.get_task("copy_ranges")
    assert copy.pool == "cassandra_backfill"
    assert copy.max_active_tis_per_dagrun == 16
    assert copy.map_index_template == "{{ token_span }}"
    assert copy.retries == 3 and copy.retry_exponential_backoff == 2.0
    assert [o.uri for o in dag.get_task("announce_complete").outlets] == ["cassandra://trading/user_trades/backfill"]
    assert dag.get_task("summarize").outlets == []
    assert set(dag.params.keys()) >= {"backfill_id", "splits", "parallelism", "ranges", "fetch_size",
                                      "rows_per_second", "max_in_flight", "actor", "reason"}


def test_optional_text_params_can_be_left_empty_in_the_trigger_form(bag):
    """The form keeps Trigger disabled while a plain string Param is empty, so a text Param
    without a default must be required on purpose (minLength) or nullable."""
    from migration_common import OPTIONAL_TEXT

    required, optional = set(), set()
    for dag_id in sorted(bag.dag_ids):
        params = bag.get_dag(dag_id).params
        for name in params:
            schema = params.get_param(name).schema
            if schema.get("type") == "string" and "enum" not in schema and "pattern" not in schema:
                assert schema.get("minLength", 0) >= 1, f"{dag_id}.{name} looks optional but the form requires it"
                required.add(f"{dag_id}.{name}")
            elif schema.get("type") == ["null", "string"] and "enum" not in schema:
                assert params[name] is None and name in OPTIONAL_TEXT, f"{dag_id}.{name}"
                optional.add(name)
    assert required == {"user_trades_dual_write.reason", "user_trades_read_path.reason",
                        "user_trades_migration.reason", "user_trades_restore.archive_url"}
    assert optional == OPTIONAL_TEXT
