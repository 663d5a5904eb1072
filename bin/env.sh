# Sourced by bin/airflow and the Makefile: the project's own Airflow configuration.
# Everything lives under the project; nothing here reads or writes ~/airflow.
REVIEWOPS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REVIEWOPS_ROOT
export AIRFLOW_HOME="${REVIEWOPS_AIRFLOW_HOME:-$REVIEWOPS_ROOT/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$REVIEWOPS_ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$REVIEWOPS_ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES="False"
export AIRFLOW__CORE__EXECUTOR="${AIRFLOW__CORE__EXECUTOR:-LocalExecutor}"
# Login is always on: user admin (role admin); its password is generated on first start.
export AIRFLOW__CORE__AUTH_MANAGER="airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="False"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$AIRFLOW_HOME/passwords.json"
# The embedded default is SQLite; point this at PostgreSQL for the scheduler and backfills.
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db}"
# DAG files parse in well under a second (tests/dags/test_parse_cost.py); the margin is for a
# heavily loaded machine, where Airflow's default 30 s import timeout was once reached.
export AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="${AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT:-120}"
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="${AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL:-30}"
export AIRFLOW__LOGGING__LOGGING_LEVEL="${AIRFLOW__LOGGING__LOGGING_LEVEL:-INFO}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export PATH="$REVIEWOPS_ROOT/.venv/bin:$PATH"
mkdir -p -m 700 "$AIRFLOW_HOME"
# The generated admin password is a secret: Airflow appends it to this file with the
# process's umask (0644 by default), so the file is created, or narrowed, to 0600 first.
(umask 077 && touch "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
chmod 600 "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
