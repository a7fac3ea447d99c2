# The Airflow image used by docker-compose.yml: the official image plus requirements.txt.
#
# The tag must match the apache-airflow pin in requirements.txt, and SCYLLA_DRIVER_VERSION must
# match the scylla-driver pin (tests/unit/test_docker_compose.py checks both).
FROM apache/airflow:3.3.2-python3.11

ARG SCYLLA_DRIVER_VERSION=3.29.12

# The base image runs pip as the `airflow` user (installs go to ~airflow/.local); keep it so.
COPY requirements.txt /requirements.txt

# scylla-driver and cassandra-driver (pulled in by the Cassandra provider) both ship the
# `cassandra` package. Reinstall scylla-driver last, without dependencies, so its copy is the
# one imported, then fail the build if it is not (same steps as `make venv`).
RUN pip install --no-cache-dir -r /requirements.txt \
 && pip install --no-cache-dir --force-reinstall --no-deps "scylla-driver==${SCYLLA_DRIVER_VERSION}" \
 && python -c "import cassandra; assert cassandra.__version__ == '${SCYLLA_DRIVER_VERSION}', cassandra.__version__"
