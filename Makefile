# The project's commands. `make demo` and `make test` work from a fresh clone.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
SCYLLA_DRIVER := $(shell sed -n 's/^scylla-driver==//p' requirements.txt)
RUN := bin/airflow-env
PYTEST_ARGS ?=

.PHONY: venv db-up db-down db-status cluster-up cluster-down cluster-status airflow-init browser demo lint test test-unit bench live-day clean

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt pyproject.toml tests/support/pyproject.toml
	@command -v $(PY) >/dev/null || { echo "python3 (3.11) is required"; exit 1; }
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	@# trade_migration (include/) and its test kit (tests/support/) as editable packages: the DAGs,
	@# tests, bench and scripts import them with no path set-up.
	$(VENV)/bin/pip install -q --no-deps -e . -e tests/support
	@# cassandra-driver (from the provider) and scylla-driver share the `cassandra` package:
	@# reinstall scylla-driver last so its copy is the one imported.
	$(VENV)/bin/pip install -q --force-reinstall --no-deps scylla-driver==$(SCYLLA_DRIVER)
	$(VENV)/bin/python -c "import cassandra; assert cassandra.__version__ == '$(SCYLLA_DRIVER)', cassandra.__version__"
	touch $@

db-up:
	scripts/cassandra/cassandra.sh up
db-down:
	scripts/cassandra/cassandra.sh down
db-status:
	scripts/cassandra/cassandra.sh status

# The production shape natively (docker-compose.yml's topology, no Docker): PostgreSQL and Redis from
# Debian's packages, a three-node ring on 127.0.0.6-8, Airflow on Celery with two workers.
cluster-up: venv
	$(VENV)/bin/python scripts/cluster/cluster.py up
cluster-down:
	@test -x $(VENV)/bin/python && $(VENV)/bin/python scripts/cluster/cluster.py down || python3 scripts/cluster/cluster.py down
cluster-status:
	$(VENV)/bin/python scripts/cluster/cluster.py status

airflow-init: venv
	bin/airflow db migrate >/dev/null
	bin/airflow pools set cassandra_backfill 4 "Concurrent backfill/verify tasks against the cluster" >/dev/null

demo: venv db-up airflow-init
	$(RUN) python scripts/demo.py

# Debian's chromium for the browser tests (tests/e2e/test_browser.py drives it with PyPI playwright;
# `playwright install` cannot download browsers here).
browser:
	@test -x /usr/bin/chromium || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

lint: venv
	$(VENV)/bin/ruff check .

# The tests run in their own Airflow home and report folder (and their own t_* keyspaces), never the
# operator's .airflow/ and reports/: a UI opened after `make test` shows nothing from the tests.
TEST_HOME := $(CURDIR)/.local/test-airflow
TEST_ENV := AIRFLOW_HOME=$(TEST_HOME) TM_REPORT_DIR=$(TEST_HOME)/reports
test: lint db-up browser
	$(TEST_ENV) $(MAKE) --no-print-directory airflow-init
	$(TEST_ENV) $(RUN) pytest $(PYTEST_ARGS)

test-unit: venv
	$(TEST_ENV) $(RUN) pytest tests/unit $(PYTEST_ARGS)

# Every benchmark in bench/, one after another, each printing its figures (README: Measured figures).
# BENCH_TRADES=100000 for a quicker look; the README's figures are at 1M.
BENCH_TRADES ?= 1000000
BENCH_USERS ?= 100
GROWTH_SIZES ?= 100000 1000000 5000000
GROWTH_ROUNDS ?= 2
bench: venv db-up
	$(RUN) python bench/backfill_bench.py --trades $(BENCH_TRADES)
	$(RUN) python bench/read_latency.py --trades $(BENCH_TRADES) --users $(BENCH_USERS) --keyspace bench
	$(RUN) python bench/verify_speed.py --trades $(BENCH_TRADES) --keyspace bench
	$(RUN) python bench/growth.py --sizes $(GROWTH_SIZES) --rounds $(GROWTH_ROUNDS)
	$(RUN) python bench/status_page.py
	$(RUN) python bench/ledger_plan.py --ranges 8192
	$(RUN) python bench/cluster_backfill.py --trades $(BENCH_TRADES)

# The live-exchange acceptance run (bench/live_day.py): keyspace live_day, left in place.
live-day: venv db-up airflow-init
	$(RUN) python bench/live_day.py

clean:
	scripts/cassandra/cassandra.sh wipe
	rm -rf .airflow reports artifacts
