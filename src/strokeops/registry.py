"""Register: the winning candidate becomes a version of the registered model, alias challenger.

Registration is idempotent: a training run with the same fingerprint (same data version,
settings and code) as an existing version reuses that version instead of adding a duplicate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from strokeops.compile import compile_pipeline, verify
from strokeops.config import Settings
from strokeops.errors import NotFoundError
from strokeops.evaluation import TAG_WINNER_MODEL_URI, TAG_WINNER_RUN
from strokeops.storage import Lake, read_frame
from strokeops.tracking import TAG_DATA_VERSION, TAG_FINGERPRINT, connect, get_run
from strokeops.validation import validated_key

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
TAG_PIPELINE_RUN = "strokeops.pipeline_run_id"
TAG_TEST_KEY = "strokeops.test_key"
TAG_COMPILED = "strokeops.compiled_uri"
COMPILED_ARTIFACT = "compiled/scorer.json"


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    model_uri: str
    reused: bool


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def aliases_of(client: MlflowClient, name: str, version: str) -> list[str]:
    return sorted(client.get_model_version(name, version).aliases)


def _existing_version(client: MlflowClient, name: str, fingerprint: str) -> ModelVersion | None:
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    matches = [v for v in versions if v.tags.get(TAG_FINGERPRINT) == fingerprint]
    return min(matches, key=lambda v: int(v.version)) if matches else None


def compile_and_verify(
    client: MlflowClient,
    candidate_run_id: str,
    model_uri: str,
    lake: Lake,
    train_key: str,
    data_version: str,
) -> tuple[str, float]:
    """Compile the winner for serving, check it on the whole data set, log it to its run."""
    model = mlflow.sklearn.load_model(model_uri)
    spec = compile_pipeline(model, read_frame(lake, train_key))
    max_diff = verify(spec, model, read_frame(lake, validated_key(data_version)))
    client.log_dict(candidate_run_id, spec, COMPILED_ARTIFACT)
    artifact_uri = f"{client.get_run(candidate_run_id).info.artifact_uri}/{COMPILED_ARTIFACT}"
    log.info("compiled model verified: max |difference| %.3g", max_diff)
    return artifact_uri, max_diff


def register(parent_run_id: str, lake: Lake, settings: Settings) -> RegisteredVersion:
    """Register the evaluated winner of a pipeline run and point ``challenger`` at it.

    The winner is compiled for serving and verified against its Pipeline first; a model whose
    compiled form disagrees is not registered.
    """
    client = connect(settings)
    parent = get_run(client, parent_run_id)
    tags = parent.data.tags
    if TAG_WINNER_MODEL_URI not in tags:
        raise NotFoundError(f"pipeline run {parent_run_id} has no evaluated winner; evaluate first")
    fingerprint = tags[TAG_FINGERPRINT]
    existing = _existing_version(client, settings.model_name, fingerprint)
    if existing is not None:
        version, reused = existing, True
        log.info("same data, settings and code as version %s: reusing it", existing.version)
    else:
        compiled_uri, max_diff = compile_and_verify(
            client,
            tags[TAG_WINNER_RUN],
            tags[TAG_WINNER_MODEL_URI],
            lake,
            parent.data.params["train_key"],
            tags[TAG_DATA_VERSION],
        )
        version = mlflow.register_model(
            tags[TAG_WINNER_MODEL_URI],
            settings.model_name,
            tags={
                TAG_DATA_VERSION: tags[TAG_DATA_VERSION],
                TAG_FINGERPRINT: fingerprint,
                TAG_PIPELINE_RUN: parent_run_id,
                TAG_TEST_KEY: parent.data.params["test_key"],
                "strokeops.family": tags["strokeops.winner_family"],
                "strokeops.candidate_run_id": tags[TAG_WINNER_RUN],
                TAG_COMPILED: compiled_uri,
                "strokeops.compiled_max_abs_diff": f"{max_diff:.3g}",
            },
        )
        reused = False
    client.set_registered_model_alias(settings.model_name, CHALLENGER, version.version)
    client.set_tag(parent_run_id, "strokeops.registered_version", version.version)
    return RegisteredVersion(
        name=settings.model_name,
        version=str(version.version),
        run_id=tags[TAG_WINNER_RUN],
        model_uri=f"models:/{settings.model_name}/{version.version}",
        reused=reused,
    )
