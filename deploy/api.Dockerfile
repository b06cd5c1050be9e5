# The stroke-risk API: serving extras only (no Airflow, no training libraries).
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    STROKEOPS_STATE_DIR=/home/strokeops/state \
    STROKEOPS_SERVE_HOST=0.0.0.0 \
    STROKEOPS_SERVE_PORT=8800 \
    API_WORKERS=2

RUN useradd --create-home --uid 10001 strokeops
WORKDIR /opt/strokeops
COPY pyproject.toml README.md ./
COPY src ./src
# every version is pinned in pyproject.toml's [serve] extra
# hadolint ignore=DL3013
RUN pip install ".[serve]"

USER 10001:10001
EXPOSE 8800
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8800/health/live', timeout=2)"]
# the same command the local stack and the tests run
CMD ["sh", "-c", "exec strokeops serve --workers \"$API_WORKERS\""]
