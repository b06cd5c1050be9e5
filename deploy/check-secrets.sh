#!/bin/sh
# Refuses to start the stack with a well-known or short secret. Compose already stops on an
# unset one (${VAR:?...}); this catches the defaults that tutorials spread.
set -eu
known=" minio123 minioadmin airflow postgres password admin changeme secret mlflow 12345678 "
status=0
for name in POSTGRES_PASSWORD AIRFLOW_DB_PASSWORD MLFLOW_DB_PASSWORD PREDICTIONS_DB_PASSWORD \
            MINIO_ROOT_PASSWORD AIRFLOW_ADMIN_PASSWORD AIRFLOW_JWT_SECRET AIRFLOW_FERNET_KEY \
            STROKEOPS_API_KEYS; do
    value=$(printenv "$name" || true)
    case "$known" in
        *" $value "*) echo "$name is a well-known default: generate a secret (see .env.example)"; status=1 ;;
    esac
    if [ "${#value}" -lt 16 ]; then
        echo "$name is shorter than 16 characters: generate a secret (see .env.example)"; status=1
    fi
done
[ "$status" -eq 0 ] && echo "secrets look generated"
exit "$status"
