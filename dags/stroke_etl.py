"""Airflow DAG ``stroke_etl``: ingest → validate → split, publishing the processed data as an Asset.

A thin driver over the strokeops stage functions: no ML logic, no work at parse time. strokeops
is imported inside the tasks (only ``strokeops.config`` at parse time, for the static param
defaults), and ``Settings()`` is built inside each task from the worker's ``STROKEOPS_*``
environment.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, Param, dag, task

from strokeops.config import Settings
from strokeops.orchestration import TASK_DEFAULTS

if TYPE_CHECKING:
    from airflow.sdk.types import DagRunProtocol, OutletEventAccessorsProtocol

# stroke_training is scheduled on this asset; the event's extra holds the split (data version,
# seed, test size, parquet keys)
PROCESSED = Asset(name="stroke_processed", uri="strokeops://processed/stroke", group="strokeops")
SETTINGS_PARAMS = ("data", "seed", "test_size")


def _settings(params: dict[str, Any], dag_run: DagRunProtocol) -> Settings:
    """Settings from the worker's environment; a param given in the run's conf overrides it."""
    given = dag_run.conf or {}
    return Settings(**{name: params[name] for name in SETTINGS_PARAMS if name in given})


@dag(
    dag_id="stroke_etl",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    tags=["strokeops"],
    default_args=TASK_DEFAULTS,
    params={
        "data": Param(
            Settings.model_fields["data"].default,
            type="string",
            description="Raw data: a path or an http(s) URL (default: STROKEOPS_DATA).",
        ),
        "seed": Param(
            Settings.model_fields["seed"].default,
            type="integer",
            minimum=0,
            description="Seed of the split (default: STROKEOPS_SEED).",
        ),
        "test_size": Param(
            Settings.model_fields["test_size"].default,
            type="number",
            exclusiveMinimum=0.05,
            exclusiveMaximum=0.5,
            description="Held-out share of the rows (default: STROKEOPS_TEST_SIZE).",
        ),
        "accept_drift": Param(
            False,
            type="boolean",
            description="Accept drift from the reference profile and make this data the new one.",
        ),
    },
)
def stroke_etl() -> None:
    """Raw file → data version in the lake → validated → stratified split (parquet).

    The split task publishes the asset `strokeops://processed/stroke`; its event's extra is the
    split (data version, seed, test size, parquet keys), and `stroke_training` runs on it.
    `data`, `seed` and `test_size` come from the worker's `STROKEOPS_*` environment unless the
    run's conf names them; the defaults shown are strokeops' own. Every task is idempotent:
    the same bytes are the same data version, and a re-split rewrites the same files.
    """

    @task
    def ingest(params: dict[str, Any], dag_run: DagRunProtocol) -> str:
        from strokeops.ingest import ingest as ingest_raw
        from strokeops.orchestration import no_retry_for_data_errors
        from strokeops.storage import S3Options, check_lake, open_lake

        settings = _settings(params, dag_run)
        lake = open_lake(settings)
        check_lake(lake)  # S3 down: a clear message, and the task's retries
        with no_retry_for_data_errors():
            return ingest_raw(
                settings.data, lake, s3=S3Options.from_settings(settings)
            ).data_version

    @task
    def validate(data_version: str, params: dict[str, Any], dag_run: DagRunProtocol) -> str:
        from strokeops.orchestration import no_retry_for_data_errors
        from strokeops.storage import open_lake
        from strokeops.validation import validate as validate_version

        settings = _settings(params, dag_run)
        with no_retry_for_data_errors():
            return validate_version(
                data_version, open_lake(settings), settings, accept_drift=params["accept_drift"]
            ).data_version

    @task(outlets=[PROCESSED], multiple_outputs=False)
    def split(
        data_version: str,
        params: dict[str, Any],
        dag_run: DagRunProtocol,
        outlet_events: OutletEventAccessorsProtocol,
    ) -> dict[str, Any]:
        from strokeops.split import split as split_version
        from strokeops.storage import open_lake

        settings = _settings(params, dag_run)
        result = split_version(
            data_version, open_lake(settings), seed=settings.seed, test_size=settings.test_size
        )
        outlet_events[PROCESSED].extra = asdict(result)
        return asdict(result)

    split(validate(ingest()))


stroke_etl()
