"""Airflow DAG ``stroke_training``: train → evaluate → register → promote, on new processed data.

Scheduled on the asset that ``stroke_etl`` publishes. A thin driver over the strokeops stage
functions: no ML logic, no work at parse time (strokeops is imported inside the tasks, only
``strokeops.config`` at parse time for the static param defaults).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, Param, dag, task

from strokeops.config import Settings
from strokeops.orchestration import TASK_DEFAULTS

if TYPE_CHECKING:
    from airflow.sdk.execution_time.context import InletEventsAccessors
    from airflow.sdk.types import DagRunProtocol

log = logging.getLogger("strokeops.dags.stroke_training")

# published by stroke_etl's split task; the event's extra is the split (see stroke_etl.py)
PROCESSED = Asset(name="stroke_processed", uri="strokeops://processed/stroke", group="strokeops")
SPLIT_PARAMS = ("seed", "test_size")


def _split_to_train(
    params: dict[str, Any],
    dag_run: DagRunProtocol,
    triggering_asset_events: Mapping[Asset, Sequence[Any]],
    inlet_events: InletEventsAccessors,
) -> tuple[dict[str, Any], str]:
    """The split to train on (data version, seed, test size) and where it was found.

    In order: the asset event that triggered the run; the ``data_version`` param (``seed`` and
    ``test_size`` from the run's conf, else the environment); the latest event of the asset.
    """
    triggering = triggering_asset_events.get(PROCESSED) if triggering_asset_events else None
    if triggering:
        event = max(triggering, key=lambda e: e.timestamp)
        return event.extra, "the triggering asset event"
    if params["data_version"]:
        given = dag_run.conf or {}
        settings = Settings(**{name: params[name] for name in SPLIT_PARAMS if name in given})
        chosen = {"data_version": params["data_version"], "seed": settings.seed}
        return chosen | {"test_size": settings.test_size}, "the data_version param"
    latest = list(inlet_events[PROCESSED].ascending(False).limit(1))
    if latest:
        return latest[0].extra, f"the latest asset event, of {latest[0].timestamp.isoformat()}"
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(
        f"no data to train on: {PROCESSED.uri} has no events yet. Run stroke_etl first, "
        'or trigger this DAG with {"data_version": "<sha256 or unique prefix>"}.'
    )


@dag(
    dag_id="stroke_training",
    schedule=PROCESSED,
    catchup=False,
    max_active_runs=1,
    tags=["strokeops"],
    default_args=TASK_DEFAULTS,
    params={
        "data_version": Param(
            None,
            type=["null", "string"],
            description="Data version to train on when no asset event triggered the run "
            "(empty: the latest processed data).",
        ),
        "seed": Param(
            Settings.model_fields["seed"].default,
            type="integer",
            minimum=0,
            description="Seed of the split to train on, with data_version "
            "(default: STROKEOPS_SEED).",
        ),
        "test_size": Param(
            Settings.model_fields["test_size"].default,
            type="number",
            exclusiveMinimum=0.05,
            exclusiveMaximum=0.5,
            description="Test size of the split to train on, with data_version "
            "(default: STROKEOPS_TEST_SIZE).",
        ),
    },
)
def stroke_training() -> None:
    """Train candidates on a split, evaluate them, register the winner, run the gate.

    Runs when `stroke_etl` publishes `strokeops://processed/stroke`, on the split named by that
    event; a manual run trains on the `data_version` param, else on the latest processed data.
    The gate decision is logged and returned by `promote` (XCom: promoted, reason, version).
    Re-running on the same data, settings and code reuses the registered model version.
    """

    @task(inlets=[PROCESSED], multiple_outputs=False)
    def train(
        params: dict[str, Any],
        dag_run: DagRunProtocol,
        triggering_asset_events: Mapping[Asset, Sequence[Any]],
        inlet_events: InletEventsAccessors,
    ) -> dict[str, Any]:
        from strokeops.orchestration import no_retry_for_data_errors
        from strokeops.split import find_split
        from strokeops.storage import open_lake
        from strokeops.training import train as train_candidates

        chosen, source = _split_to_train(params, dag_run, triggering_asset_events, inlet_events)
        log.info("training on data version %s, from %s", chosen["data_version"], source)
        settings = Settings(seed=chosen["seed"], test_size=chosen["test_size"])
        lake = open_lake(settings)
        with no_retry_for_data_errors():
            split = find_split(
                chosen["data_version"], lake, seed=settings.seed, test_size=settings.test_size
            )
        training = train_candidates(split, lake, settings)
        return {
            "run_id": training.parent_run_id,
            "data_version": split.data_version,
            "seed": settings.seed,
            "test_size": settings.test_size,
            "data_from": source,
        }

    @task(multiple_outputs=False)
    def evaluate(trained: dict[str, Any]) -> dict[str, Any]:
        from strokeops.evaluation import evaluate as evaluate_candidates
        from strokeops.storage import open_lake

        settings = Settings(seed=trained["seed"], test_size=trained["test_size"])
        evaluation = evaluate_candidates(trained["run_id"], open_lake(settings), settings)
        return trained | {"winner": evaluation.winner.family}

    @task(multiple_outputs=False)
    def register(evaluated: dict[str, Any]) -> dict[str, Any]:
        from strokeops.registry import register as register_winner
        from strokeops.storage import open_lake

        settings = Settings()
        registered = register_winner(evaluated["run_id"], open_lake(settings), settings)
        return {
            "run_id": evaluated["run_id"],
            "version": registered.version,
            "reused": registered.reused,
        }

    @task(multiple_outputs=False)
    def promote(registered: dict[str, Any]) -> dict[str, Any]:
        from strokeops.promotion import promote as run_gate
        from strokeops.storage import open_lake

        settings = Settings()
        gate = run_gate(
            registered["version"],
            open_lake(settings),
            settings,
            pipeline_run_id=registered["run_id"],
        )
        log.info("gate decision for version %s: %s", gate.challenger_version, gate.reason)
        return {
            "promoted": gate.promoted,
            "reason": gate.reason,
            "version": gate.challenger_version,
        }

    promote(register(evaluate(train())))


stroke_training()
