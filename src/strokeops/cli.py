"""The ``strokeops`` command: the whole job (``run``) or one stage at a time."""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from strokeops.config import Settings
from strokeops.errors import DataValidationError, StrokeOpsError

app = typer.Typer(
    help="Stroke-risk model pipeline: raw data to a gated champion.", no_args_is_help=True
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

AcceptDrift = Annotated[
    bool,
    typer.Option("--accept-drift", help="Accept a deliberate data change as the new reference."),
]


def _settings() -> Settings:
    try:
        return Settings()
    except SettingsError as exc:
        err_console.print(f"[bold red]error:[/] invalid configuration: {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"STROKEOPS_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        err_console.print(f"[bold red]error:[/] invalid configuration: {problems}")
        raise typer.Exit(2) from exc


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the pipeline's own errors into one readable line and exit code 1."""
    try:
        yield
    except StrokeOpsError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        if isinstance(exc, DataValidationError) and exc.report.get("data_version"):
            version = exc.report["data_version"]
            err_console.print(
                f"report saved at reports/{version}/validation.json in the lake", soft_wrap=True
            )
        raise typer.Exit(1) from exc


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
    )


def _metric_table(summary: dict[str, Any]) -> Table:
    model = summary["model"]
    table = Table(title=f"metrics of {model['name']} version {model['version']}")
    for column in ("metric", "training CV mean [95% of folds]", "holdout [95% bootstrap CI]"):
        table.add_column(column)
    cv, holdout, intervals = (
        summary["metrics"]["cv"],
        summary["metrics"]["holdout"],
        summary["metrics"]["holdout_intervals"],
    )
    for name in ("roc_auc", "pr_auc", "brier", "recall", "precision", "specificity", "f1", "f2"):
        low, high = intervals[name] or (float("nan"), float("nan"))
        table.add_row(
            name,
            f"{cv[name]['mean']:.4f} [{cv[name]['low']:.4f}, {cv[name]['high']:.4f}]",
            f"{holdout[name]:.4f} [{low:.4f}, {high:.4f}]",
        )
    return table


def _gate_table(gate: dict[str, Any]) -> Table:
    table = Table(title=f"gate for version {gate['challenger_version']}")
    for column in ("check", "value", "bound", "rule", "result"):
        table.add_column(column)
    for check in gate["checks"]:
        verdict = "[green]pass[/]" if check["passed"] else "[red]fail[/]"
        table.add_row(
            check["name"], f"{check['value']:.4f}", f"{check['bound']:.4f}", check["rule"], verdict
        )
    return table


@app.command()
def run(accept_drift: AcceptDrift = False) -> None:
    """Run every stage: ingest, validate, split, train, evaluate, register, promote."""
    from strokeops.pipeline import STAGES, run_pipeline

    settings = _settings()
    with (
        _user_errors(),
        Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
        ) as progress,
    ):
        task = progress.add_task("starting", total=len(STAGES))
        started: list[str] = []

        def on_stage(stage: str) -> None:
            if started:
                progress.advance(task)
            started.append(stage)
            progress.update(task, description=f"[{len(started)}/{len(STAGES)}] {stage}")

        def on_candidate(family: str) -> None:
            progress.update(task, description=f"[4/{len(STAGES)}] train: {family}")

        summary = run_pipeline(
            settings, accept_drift=accept_drift, on_stage=on_stage, on_candidate=on_candidate
        ).as_dict()
        progress.advance(task)
    model, gate = summary["model"], summary["gate"]
    console.print(
        f"data version [bold]{summary['data_version'][:12]}[/]"
        + (" (already in the lake)" if summary["data_version_already_present"] else "")
    )
    console.print(_metric_table(summary))
    console.print(_gate_table(gate))
    console.print(
        f"{model['name']} version {model['version']} ({model['family']}), "
        f"aliases: {', '.join(model['aliases']) or 'none'}; "
        f"decision threshold {model['decision_threshold']:.4f}"
    )
    console.print(f"gate: {gate['reason']}", highlight=False, soft_wrap=True)
    console.print(f"summary: {settings.summary_path}", soft_wrap=True)


def _stage(action: Callable[[Settings], Any]) -> Any:
    settings = _settings()
    with _user_errors():
        return action(settings)


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default STROKEOPS_SERVE_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Default STROKEOPS_SERVE_PORT.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
) -> None:
    """Serve the registry's champion over HTTP (docs at /docs)."""
    # one math thread per worker: a request is tiny, and idle threads cost latency
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    import uvicorn

    settings = _settings()
    # a mistyped STROKEOPS_STATE_DIR would otherwise make a new, empty registry and answer 503
    if settings.local_registry is not None and not settings.local_registry.is_file():
        err_console.print(
            f"[bold red]error:[/] no registry at {settings.local_registry}: run `strokeops run` "
            "first, or set STROKEOPS_STATE_DIR or STROKEOPS_TRACKING_URI",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
    uvicorn.run(
        "strokeops.serving.app:app_from_environment",
        factory=True,
        host=host or settings.serve_host,
        port=settings.serve_port if port is None else port,
        workers=workers,
        access_log=False,
        log_level="info",
    )


@app.command("ingest")
def ingest_command(
    source: Annotated[
        str | None, typer.Option(help="Path, http(s) or s3:// URL; default STROKEOPS_DATA.")
    ] = None,
) -> None:
    """Copy the raw data into the lake under its content hash; print the data version."""
    from strokeops.ingest import ingest
    from strokeops.storage import S3Options, open_lake

    result = _stage(lambda s: ingest(source or s.data, open_lake(s), s3=S3Options.from_settings(s)))
    console.print(result.data_version)


@app.command("validate")
def validate_command(data_version: str, accept_drift: AcceptDrift = False) -> None:
    """Validate a data version against the data contract and the reference profile."""
    from strokeops.storage import open_lake
    from strokeops.validation import validate

    result = _stage(lambda s: validate(data_version, open_lake(s), s, accept_drift=accept_drift))
    console.print(f"valid: {result.n_rows} rows; report {result.report_key}")


@app.command("split")
def split_command(data_version: str) -> None:
    """Split a validated data version into train and test parts."""
    from strokeops.split import split
    from strokeops.storage import open_lake

    result = _stage(lambda s: split(data_version, open_lake(s), seed=s.seed, test_size=s.test_size))
    console.print(f"train {result.n_train} rows: {result.train_key}")
    console.print(f"test {result.n_test} rows: {result.test_key}")


@app.command("train")
def train_command(data_version: str) -> None:
    """Train every model family on a split data version; print the pipeline run id."""
    from strokeops.split import find_split
    from strokeops.storage import open_lake
    from strokeops.training import train

    def action(s: Settings):
        lake = open_lake(s)
        return train(find_split(data_version, lake, seed=s.seed, test_size=s.test_size), lake, s)

    console.print(_stage(action).parent_run_id)


@app.command("evaluate")
def evaluate_command(run_id: str) -> None:
    """Evaluate the candidates of a pipeline run on the held-out test set."""
    from strokeops.evaluation import evaluate
    from strokeops.storage import open_lake

    result = _stage(lambda s: evaluate(run_id, open_lake(s), s))
    for candidate in result.candidates:
        console.print(
            f"{candidate.family}: CV ROC-AUC {candidate.cv['roc_auc']['mean']:.4f}, "
            f"holdout ROC-AUC {candidate.holdout['roc_auc']:.4f}"
        )
    console.print(f"winner: {result.winner.family}")


@app.command("register")
def register_command(run_id: str) -> None:
    """Register the winner of an evaluated pipeline run as the challenger."""
    from strokeops.registry import register
    from strokeops.storage import open_lake

    result = _stage(lambda s: register(run_id, open_lake(s), s))
    console.print(f"{result.name} version {result.version} is the challenger")


@app.command("promote")
def promote_command(version: str) -> None:
    """Run the promotion gate for a registered version."""
    from strokeops.promotion import promote
    from strokeops.storage import open_lake

    decision = _stage(lambda s: promote(version, open_lake(s), s))
    console.print(_gate_table(decision.as_dict()))
    console.print(decision.reason, highlight=False)


# --- the local stack -----------------------------------------------------------------------

stack_app = typer.Typer(
    help="The real stack on loopback: SeaweedFS S3, MLflow on PostgreSQL, optionally Airflow.",
    no_args_is_help=True,
)
app.add_typer(stack_app, name="stack")

Port = Annotated[int, typer.Option(min=0, max=65535, help="0: a free port.")]


@stack_app.command("up")
def stack_up(
    with_airflow: Annotated[
        bool, typer.Option("--with-airflow", help="Also run `airflow standalone`.")
    ] = False,
    postgres_url: Annotated[
        str,
        typer.Option(
            envvar="STROKEOPS_STACK_POSTGRES_URL",
            help="PostgreSQL server for MLflow, Airflow and the prediction log.",
        ),
    ] = "postgresql+psycopg2://postgres@127.0.0.1:5432",
    database_prefix: Annotated[
        str,
        typer.Option(
            envvar="STROKEOPS_STACK_DATABASE_PREFIX",
            help="Databases <prefix>_mlflow, <prefix>_airflow and <prefix>_predictions.",
        ),
    ] = "strokeops",
    s3_port: Port = 0,
    mlflow_port: Port = 0,
    airflow_port: Port = 0,
    dags_folder: Annotated[
        Path | None, typer.Option(help="Airflow's DAGs (default: dags/ of this checkout).")
    ] = None,
) -> None:
    """Start the stack, wait until each service is healthy, write the env file."""
    from strokeops.stack import Stack, StackConfig, default_dags_folder

    settings = _settings()
    config = StackConfig(
        state_dir=settings.state_dir,
        postgres_url=postgres_url,
        database_prefix=database_prefix,
        s3_port=s3_port,
        mlflow_port=mlflow_port,
        airflow_port=airflow_port,
        with_airflow=with_airflow,
        dags_folder=dags_folder or default_dags_folder(),
    )
    with _user_errors(), console.status("starting the stack"):
        stack = Stack.plan(config).up()
    for name, running in stack.running.items():
        console.print(f"{name:8} {running.url}  (pid {running.pid}, log {running.log})")
    if with_airflow:
        console.print(f"Airflow admin password: {stack.airflow.password_file}", soft_wrap=True)
    console.print(f"env file: {config.env_file}", soft_wrap=True)
    console.print(f"point strokeops at it: set -a; . {config.env_file}; set +a", soft_wrap=True)


@stack_app.command("down")
def stack_down() -> None:
    """Stop the services `stack up` started (and nothing else)."""
    from strokeops.stack import down

    settings = _settings()
    with _user_errors():
        stopped = down(settings.state_dir)
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "no stack was running")


@stack_app.command("env")
def stack_env() -> None:
    """Print the stack's STROKEOPS_* variables as `export` lines (for eval)."""
    from strokeops.stack import StackConfig, read_env

    settings = _settings()
    with _user_errors():
        env = read_env(StackConfig(state_dir=settings.state_dir).env_file)
    for name, value in env.items():
        typer.echo(f"export {name}={shlex.quote(value)}")
