#!/bin/sh
# One PostgreSQL server, one database and role each for Airflow, MLflow and the prediction log.
# Runs once, on the first start of an empty data volume (docker-entrypoint-initdb.d).
set -eu

create() {  # role/database name, password
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
        -v name="$1" -v password="$2" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
SQL
}

create airflow "$AIRFLOW_DB_PASSWORD"
create mlflow "$MLFLOW_DB_PASSWORD"
create predictions "$PREDICTIONS_DB_PASSWORD"
