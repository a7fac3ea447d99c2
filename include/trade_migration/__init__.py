"""The user_trades migration as a plain Python package: no Airflow imports here.

DAGs in dags/ call into these modules; tests, benchmarks and the demo use them directly.
"""
