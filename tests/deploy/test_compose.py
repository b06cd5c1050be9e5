"""The production containers, checked without a Docker engine: `docker-compose config` with
generated and with missing secrets, a parse of the Compose file, and hadolint."""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILES = sorted((ROOT / "deploy").glob("*.Dockerfile"))
ONE_SHOT = {"config-check", "minio-init", "airflow-init"}
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|FERNET_KEY|API_KEYS|SECRET_ACCESS_KEY)$")


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs[name] = value
    return pairs


def _generated_env(tmp_path: Path, **overrides: str) -> Path:
    """An .env with every empty value of .env.example filled with a fresh secret."""
    values = {}
    for name, value in _env_example().items():
        if not value:
            value = (
                base64.urlsafe_b64encode(os.urandom(32)).decode()
                if name == "AIRFLOW_FERNET_KEY"
                else secrets.token_urlsafe(24)
            )
        values[name] = value
    values |= overrides
    path = tmp_path / ".env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items() if v is not None))
    return path


def _compose_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    docker_compose = shutil.which("docker-compose")
    if docker_compose is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is missing: `make test` installs it")
        pytest.skip("docker-compose is not installed (make test installs it)")
    return subprocess.run(
        [docker_compose, "--env-file", str(env_file), "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        cwd=env_file.parent,
        env={k: v for k, v in os.environ.items() if not SECRET_NAME.search(k)},
        check=False,
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_env_example_documents_every_variable_and_holds_no_secret() -> None:
    documented = set(_env_example())
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_0-9]+)", COMPOSE.read_text()))
    assert used <= documented, f"undocumented: {sorted(used - documented)}"
    for name, value in _env_example().items():
        if SECRET_NAME.search(name):
            assert value == "", f"{name} has a value in .env.example"


def test_compose_accepts_generated_secrets(tmp_path: Path) -> None:
    result = _compose_config(_generated_env(tmp_path))
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    assert set(rendered["services"]) >= {
        "postgres",
        "minio",
        "minio-init",
        "mlflow",
        "airflow-init",
        "airflow-api-server",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "api",
    }


@pytest.mark.parametrize(
    "missing", ["POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "STROKEOPS_API_KEYS"]
)
def test_compose_rejects_an_unset_secret(tmp_path: Path, missing: str) -> None:
    result = _compose_config(_generated_env(tmp_path, **{missing: None}))
    assert result.returncode != 0
    assert f"set {missing} in .env" in result.stderr


@pytest.mark.parametrize("default", ["minio123", "airflow", "short"])
def test_the_secret_check_refuses_well_known_or_short_values(default: str) -> None:
    env = {
        name: secrets.token_urlsafe(24)
        for name in re.findall(
            r"[A-Z_]+",
            "POSTGRES_PASSWORD AIRFLOW_DB_PASSWORD MLFLOW_DB_PASSWORD "
            "PREDICTIONS_DB_PASSWORD MINIO_ROOT_PASSWORD AIRFLOW_ADMIN_PASSWORD AIRFLOW_JWT_SECRET "
            "AIRFLOW_FERNET_KEY STROKEOPS_API_KEYS",
        )
    }
    script = ROOT / "deploy" / "check-secrets.sh"
    ok = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout
    refused = subprocess.run(
        ["sh", str(script)],
        env=env | {"MINIO_ROOT_PASSWORD": default},
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1
    assert refused.stdout.startswith("MINIO_ROOT_PASSWORD is ")


def test_every_image_is_pinned(compose: dict) -> None:
    for name, service in compose["services"].items():
        image = service.get("image")
        assert image, f"{name} has no image"
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: {image} is not pinned"
        assert tag not in ("", "latest"), f"{name}: {image} is not pinned"
    for dockerfile in DOCKERFILES:
        for line in dockerfile.read_text().splitlines():
            if line.startswith("FROM "):
                assert re.search(r":\d", line), f"{dockerfile}: {line}"
                assert "latest" not in line, f"{dockerfile}: {line}"


def test_long_running_services_have_healthchecks(compose: dict) -> None:
    for name, service in compose["services"].items():
        if name in ONE_SHOT:
            continue
        has_check = "healthcheck" in service or _dockerfile_has_healthcheck(service)
        assert has_check, f"{name} has no healthcheck"


def _dockerfile_has_healthcheck(service: dict) -> bool:
    build = service.get("build")
    return bool(build) and "HEALTHCHECK" in (ROOT / build["dockerfile"]).read_text()


def test_start_order_waits_on_health(compose: dict) -> None:
    services = compose["services"]
    assert services["mlflow"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert services["api"]["depends_on"]["mlflow"] == {"condition": "service_healthy"}
    assert services["airflow-scheduler"]["depends_on"]["airflow-init"] == {
        "condition": "service_completed_successfully"
    }
    assert services["postgres"]["depends_on"]["config-check"] == {
        "condition": "service_completed_successfully"
    }


def test_no_literal_secret(compose: dict) -> None:
    def walk(node, path=""):
        if isinstance(node, dict):
            for key, value in node.items():
                if SECRET_NAME.search(str(key)) and isinstance(value, str):
                    assert value.startswith("${"), f"{path}.{key} is a literal secret"
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, path)

    walk(compose)
    text = COMPOSE.read_text() + "".join(p.read_text() for p in DOCKERFILES)
    for default in ("minio123", "minioadmin", "airflow:airflow"):
        assert default not in text


def test_default_ports_follow_the_template(compose: dict) -> None:
    ports = {
        name: [str(p) for p in service.get("ports", [])]
        for name, service in compose["services"].items()
    }
    assert ports["airflow-api-server"] == ["${AIRFLOW_PORT:-8080}:8080"]
    assert ports["mlflow"] == ["${MLFLOW_PORT:-5001}:5001"]
    assert ports["minio"] == ["${MINIO_PORT:-9000}:9000", "${MINIO_CONSOLE_PORT:-9001}:9001"]
    assert ports["api"] == ["${API_PORT:-8800}:8800"]


def test_the_celery_profile_adds_redis_and_two_workers(compose: dict) -> None:
    in_profile = {
        name
        for name, service in compose["services"].items()
        if "celery" in service.get("profiles", [])
    }
    assert in_profile == {"redis", "airflow-worker-1", "airflow-worker-2"}


def test_api_image_installs_serving_extras_only() -> None:
    api = "\n".join(
        line
        for line in (ROOT / "deploy" / "api.Dockerfile").read_text().splitlines()
        if not line.startswith("#")
    )
    assert 'pip install ".[serve]"' in api
    assert "airflow" not in api.lower()
    assert "strokeops serve" in api  # the command the local stack and the tests run
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    serving = " ".join(extras["serve"]).lower()
    for heavy in ("airflow", "optuna", "pandera", "matplotlib", "mlflow=="):
        assert heavy not in serving


def test_images_run_as_non_root() -> None:
    for dockerfile in DOCKERFILES:
        users = [line for line in dockerfile.read_text().splitlines() if line.startswith("USER ")]
        assert users, dockerfile.name
        assert not users[-1].startswith(("USER root", "USER 0")), dockerfile.name


def test_dockerfiles_pass_hadolint() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run(
        [str(hadolint), "--no-color", *map(str, DOCKERFILES)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_matches_the_compose_spec() -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
