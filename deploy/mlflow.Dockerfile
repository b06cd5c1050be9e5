# The MLflow tracking server: PostgreSQL backend store, artifacts proxied to S3 (MinIO).
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false

RUN pip install "mlflow==3.17.2" "psycopg2-binary==2.9.13" "boto3==1.44.8" \
    && useradd --create-home --uid 10002 mlflow
USER 10002:10002
EXPOSE 5001
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5001/health', timeout=2)"]
ENTRYPOINT ["mlflow", "server"]
