"""Airflow glue for reviewops: thin operators over the domain code in ``reviewops``."""
