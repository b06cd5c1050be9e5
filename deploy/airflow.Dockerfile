# Airflow 3 with the strokeops package and its training extras; the DAGs are baked in.
FROM apache/airflow:3.3.2-python3.11

ENV OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    MLFLOW_DISABLE_TELEMETRY=true

COPY --chown=airflow:root pyproject.toml README.md /opt/strokeops/
COPY --chown=airflow:root src /opt/strokeops/src
# Airflow is already in the image: install the package with its training extras only (every
# version pinned in pyproject.toml)
# hadolint ignore=DL3013
RUN pip install --no-cache-dir "/opt/strokeops[train]"
COPY --chown=airflow:root dags /opt/airflow/dags
# the official image's airflow user
USER 50000:0
