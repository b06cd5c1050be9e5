"""Benchmark of the API: our ``strokeops serve`` against ``mlflow models serve`` and a floor.

One run does everything, in a temporary folder that is removed at the end:

1. trains a registry: ``run_pipeline`` on the real data set (``STROKEOPS_DATA``) with a reduced
   configuration (``REGISTRY_OVERRIDES``: the served model is the same kind, only found faster),
   so that ``models:/stroke-risk@champion`` exists in a local SQLite MLflow store;
2. starts three servers on free loopback ports, one worker each, math threads pinned to one:
   (a) our API, with API keys, metrics and the prediction log on; (b) ``mlflow models serve`` of
   the same version; (c) the floor: a FastAPI app that validates the same body with
   ``strokeops.serving.schemas.Patient`` and returns a constant (this script, ``--floor-server``);
3. drives each with the same client (``wrk`` if installed, else an asyncio httpx client) at a few
   concurrencies with one-row requests, in rounds of every server in turn (ratios are taken
   between runs close in time; each round's ratio is printed to show the spread), then sends
   10,000-row batches to our ``/v1/predict/batch`` and reads the server's own time from its
   ``/metrics`` histogram;
4. prints the figures and a verdict against ``TARGETS``, whether they are met or not.

Every server is stopped by its process id at the end, also on Ctrl-C.

    make bench-serve
    .venv/bin/python bench/serve.py [--duration 4] [--rounds 3] [--concurrency 1,16,64]
                                    [--skip-mlflow]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "healthcare-dataset-stroke-data.csv"
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
MODEL_NAME = "stroke-risk"
# the pipeline, made fast: one family, fewer trials and repeats (the model served is the same kind)
REGISTRY_OVERRIDES: dict[str, Any] = {
    "model_families": ("logistic_regression",),
    "tuning_trials": 2,
    "cv_repeats": 1,
    "bootstrap_samples": 200,
}
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
# one patient in the data set's column names: the body of every single-row request
PATIENT: dict[str, Any] = {
    "gender": "Male",
    "age": 67.0,
    "hypertension": 0,
    "heart_disease": 1,
    "ever_married": "Yes",
    "work_type": "Private",
    "Residence_type": "Urban",
    "avg_glucose_level": 228.69,
    "bmi": 36.6,
    "smoking_status": "formerly smoked",
}
FLOOR_RESPONSE: dict[str, Any] = {"probability": 0.1, "risk_level": "low", "flagged": False}
PREDICT_ROUTE = "/v1/predict"
BATCH_ROUTE = "/v1/predict/batch"
LATENCY_METRIC = "strokeops_http_request_duration_seconds"
STARTUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
LOG_DRAIN_TIMEOUT_S = 60.0
REST_BETWEEN_RUNS_S = 0.5
CLIENT_TIMEOUT_S = 30.0
US_PER_MS = 1000.0
TABLE_WIDTH = 110
SERVER_ORDER = ("ours", "mlflow", "floor")
OTHERS_CPU_WARNING = 0.05  # share of the machine used by others that makes figures suspect


@dataclass(frozen=True)
class Targets:
    vs_mlflow_throughput: float = 20.0  # ours / mlflow, requests/s at concurrency 16
    vs_floor_throughput: float = 0.70  # ours / floor, requests/s at concurrency 16
    throughput_concurrency: int = 16
    p50_ms_at_1: float = 1.5
    p99_ms_at_1: float = 5.0
    batch_rows: int = 10_000
    batch_server_ms: float = 50.0


TARGETS = Targets()


# --- the floor server -----------------------------------------------------------------------


def floor_app() -> FastAPI:
    """Validation of the same body as ours, then a constant: what FastAPI alone costs."""
    from fastapi import FastAPI

    from strokeops.serving.schemas import Patient

    app = FastAPI(title="floor")

    async def predict(patient: Patient) -> dict[str, Any]:
        return FLOOR_RESPONSE

    # the annotation is a string here (postponed annotations) that FastAPI cannot resolve from
    # this function's scope: give it the class, or the body would be taken for a query field
    predict.__annotations__["patient"] = Patient
    app.post("/predict")(predict)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "alive"}

    return app


def run_floor_server(port: int) -> None:
    """Serve the floor app as ``strokeops serve`` serves ours (uvicorn defaults, no access log)."""
    import uvicorn

    uvicorn.run(floor_app(), host=HOST, port=port, access_log=False, log_level="warning")


# --- the registry ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Registry:
    state_dir: Path
    tracking_uri: str
    version: str
    seconds: float


def prepare_registry(data: str, state_dir: Path) -> Registry:
    """Run the real pipeline once into ``state_dir``; the new version must become champion."""
    import logging

    from strokeops.config import Settings
    from strokeops.pipeline import run_pipeline

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    settings = Settings(
        data=data,
        state_dir=state_dir,
        lake_root=None,
        tracking_uri=None,
        prediction_log_url=None,
        **REGISTRY_OVERRIDES,
    )
    started = time.perf_counter()
    summary = run_pipeline(settings)
    seconds = time.perf_counter() - started
    if "champion" not in summary.aliases:
        raise RuntimeError(f"version {summary.registered.version} was not promoted: {summary.gate}")
    return Registry(state_dir, settings.mlflow_uri, summary.registered.version, seconds)


# --- server processes -----------------------------------------------------------------------


@dataclass
class Server:
    name: str
    url: str  # where the single-row body is POSTed
    health_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    metrics_url: str | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_environment(extra: dict[str, str]) -> dict[str, str]:
    """The bench's environment without STROKEOPS_*/MLFLOW_TRACKING_URI, math threads pinned,
    the venv's bin first on PATH (``mlflow models serve`` execs ``uvicorn`` by name)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("STROKEOPS_") and k != "MLFLOW_TRACKING_URI"
    }
    env.update(dict.fromkeys(THREAD_VARIABLES, "1"))
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", PYTHONUNBUFFERED="1")
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def executable(name: str) -> str:
    found = VENV_BIN / name
    if found.exists():
        return str(found)
    on_path = shutil.which(name)
    if on_path is None:
        raise FileNotFoundError(f"{name} is not installed in {VENV_BIN} nor on PATH")
    return on_path


def launch(command: Sequence[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """A server in its own process group (its id is the PID), so that stopping it also stops
    the worker it may spawn (``mlflow models serve`` runs uvicorn as a child)."""
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            list(command),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def signal_group(pgid: int, signum: int) -> bool:
    """Send ``signum`` to our process group ``pgid``; False if none of it is left."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def stop(server: Server) -> None:
    """SIGTERM to the server's process group (its PID), SIGKILL to whatever of it is left after
    ``STOP_TIMEOUT_S`` (the leader and, for mlflow, its uvicorn child)."""
    pgid = server.process.pid
    signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    with suppress(subprocess.TimeoutExpired):
        server.process.wait(timeout=STOP_TIMEOUT_S)
    while signal_group(pgid, 0) and time.monotonic() < deadline:
        time.sleep(0.1)
    if signal_group(pgid, signal.SIGKILL):
        server.process.wait(timeout=STOP_TIMEOUT_S)


def start_ours(registry: Registry, api_key: str, workdir: Path) -> Server:
    port = free_port()
    env = server_environment(
        {"STROKEOPS_STATE_DIR": str(registry.state_dir), "STROKEOPS_API_KEYS": api_key}
    )
    log_path = workdir / "ours.log"
    process = launch([executable("strokeops"), "serve", "--port", str(port)], env, log_path)
    base = f"http://{HOST}:{port}"
    return Server(
        name="ours",
        url=f"{base}{PREDICT_ROUTE}",
        health_url=f"{base}/health/ready",
        process=process,
        log_path=log_path,
        headers={"X-API-Key": api_key},
        body=PATIENT,
        metrics_url=f"{base}/metrics",
    )


def start_mlflow(registry: Registry, workdir: Path) -> Server:
    port = free_port()
    env = server_environment({"MLFLOW_TRACKING_URI": registry.tracking_uri})
    model_uri = f"models:/{MODEL_NAME}/{registry.version}"
    command = [executable("mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local"]
    command += ["-p", str(port), "--host", HOST, "-w", "1"]
    log_path = workdir / "mlflow.log"
    base = f"http://{HOST}:{port}"
    return Server(
        name="mlflow",
        url=f"{base}/invocations",
        health_url=f"{base}/ping",
        process=launch(command, env, log_path),
        log_path=log_path,
        body={"dataframe_records": [PATIENT]},
    )


def start_floor(workdir: Path) -> Server:
    port = free_port()
    command = [sys.executable, str(Path(__file__).resolve()), "--floor-server", "--port", str(port)]
    log_path = workdir / "floor.log"
    base = f"http://{HOST}:{port}"
    return Server(
        name="floor",
        url=f"{base}/predict",
        health_url=f"{base}/health",
        process=launch(command, server_environment({}), log_path),
        log_path=log_path,
        body=PATIENT,
    )


def wait_healthy(server: Server, timeout: float = STARTUP_TIMEOUT_S) -> float:
    """Seconds until the health URL answers 200; raises with the server's log if it never does."""
    import httpx

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if server.process.poll() is not None:
            break
        try:
            if httpx.get(server.health_url, timeout=2.0).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    tail = server.log_path.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"{server.name} did not become healthy; its log ends:\n{tail}")


def check_answer(server: Server) -> None:
    """One request before any load: the body must be accepted (200)."""
    import httpx

    response = httpx.post(server.url, json=server.body, headers=server.headers, timeout=30.0)
    if response.status_code != 200:
        raise RuntimeError(f"{server.name} answered {response.status_code}: {response.text[:500]}")


# --- load -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadResult:
    server: str
    concurrency: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx answers, timeouts, connection errors
    server_cpu_ms: float | None  # CPU time of the server's processes per request
    server_mean_ms: float | None = None  # ours only: from its /metrics histogram
    round: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


WRK_SCRIPT = """wrk.method = "POST"
wrk.body = [==[{body}]==]
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nRESULT {{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"errors":%d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status + e.timeout + e.connect + e.read + e.write))
end
"""


def wrk_script(server: Server, workdir: Path) -> Path:
    """The Lua script that makes wrk POST this server's body and print a JSON summary."""
    headers = {"Content-Type": "application/json", **server.headers}
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    path = workdir / f"{server.name}.lua"
    path.write_text(WRK_SCRIPT.format(body=json.dumps(server.body), headers=lines))
    return path


def run_wrk(server: Server, script: Path, concurrency: int, seconds: int) -> dict[str, Any]:
    """One wrk thread (wrk takes whole seconds), its summary as printed by the script."""
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "10s"]
    command += ["-s", str(script), server.url]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    line = lines[-1]
    return json.loads(line.removeprefix("RESULT "))


async def _httpx_load(server: Server, concurrency: int, seconds: int) -> dict[str, Any]:
    """The fallback client: ``concurrency`` loops of sequential requests on one AsyncClient."""
    import httpx

    body = json.dumps(server.body).encode()
    headers = {"Content-Type": "application/json", **server.headers}
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=CLIENT_TIMEOUT_S) as client:
        deadline = time.perf_counter() + seconds

        async def loop() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    response = await client.post(server.url, content=body, headers=headers)
                    ok = response.status_code < 300
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - started)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {
        "requests": len(latencies),
        "duration_us": elapsed * 1e6,
        "p50_us": quantiles[49] * 1e6,
        "p99_us": quantiles[98] * 1e6,
        "errors": errors,
    }


def drive(server: Server, concurrency: int, seconds: int, *, script: Path | None) -> dict[str, Any]:
    """One load run with wrk (when a script is given) or with the httpx fallback."""
    if script is not None:
        return run_wrk(server, script, concurrency, seconds)
    return asyncio.run(_httpx_load(server, concurrency, seconds))


def histogram(metrics_url: str, route: str) -> tuple[float, float]:
    """(sum, count) of our latency histogram for ``route``, read from /metrics."""
    import httpx

    text = httpx.get(metrics_url, timeout=10.0).text
    values: dict[str, float] = {}
    for suffix in ("sum", "count"):
        pattern = rf'^{LATENCY_METRIC}_{suffix}\{{route="{re.escape(route)}"\}} (\S+)$'
        match = re.search(pattern, text, flags=re.MULTILINE)
        values[suffix] = float(match.group(1)) if match else 0.0
    return values["sum"], values["count"]


def measure(
    server: Server,
    concurrency: int,
    *,
    seconds: int,
    warmup: int,
    script: Path | None,
    round_index: int = 0,
) -> LoadResult:
    """A short warm-up, then the measured run (and, for ours, the server's mean time)."""
    if warmup:
        drive(server, concurrency, warmup, script=script)
    before = histogram(server.metrics_url, PREDICT_ROUTE) if server.metrics_url else None
    cpu_before = group_cpu_seconds({server.process.pid})
    raw = drive(server, concurrency, seconds, script=script)
    cpu_seconds = group_cpu_seconds({server.process.pid}) - cpu_before
    server_mean_ms = None
    if server.metrics_url and before:
        after = histogram(server.metrics_url, PREDICT_ROUTE)
        count = after[1] - before[1]
        server_mean_ms = (after[0] - before[0]) / count * 1000 if count else None
    time.sleep(REST_BETWEEN_RUNS_S)
    return LoadResult(
        server=server.name,
        concurrency=concurrency,
        requests=int(raw["requests"]),
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / US_PER_MS,
        p99_ms=raw["p99_us"] / US_PER_MS,
        errors=int(raw["errors"]),
        server_cpu_ms=cpu_seconds * 1000 / raw["requests"] if raw["requests"] else None,
        server_mean_ms=server_mean_ms,
        round=round_index,
    )


def merge_rounds(runs: Sequence[LoadResult]) -> LoadResult:
    """One server's rounds at one concurrency as one result: requests/s over all rounds,
    the median round's p50 and p99, CPU and server time weighted by requests."""
    requests = sum(r.requests for r in runs)

    def weighted(values: list[tuple[float | None, int]]) -> float | None:
        if any(v is None for v, _ in values) or not requests:
            return None
        return sum(v * n for v, n in values if v is not None) / requests

    return LoadResult(
        server=runs[0].server,
        concurrency=runs[0].concurrency,
        requests=requests,
        seconds=sum(r.seconds for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        errors=sum(r.errors for r in runs),
        server_cpu_ms=weighted([(r.server_cpu_ms, r.requests) for r in runs]),
        server_mean_ms=weighted([(r.server_mean_ms, r.requests) for r in runs]),
        round=-1,
    )


def merged(runs: Sequence[LoadResult]) -> list[LoadResult]:
    groups: dict[tuple[str, int], list[LoadResult]] = {}
    for run in runs:
        groups.setdefault((run.server, run.concurrency), []).append(run)
    return [merge_rounds(group) for group in groups.values()]


def round_ratios(runs: Sequence[LoadResult], concurrency: int, other: str) -> list[float]:
    """ours / other requests/s in each round (the runs of a round are close in time)."""
    by_round: dict[int, dict[str, LoadResult]] = {}
    for run in runs:
        if run.concurrency == concurrency:
            by_round.setdefault(run.round, {})[run.server] = run
    return [
        pair["ours"].rps / pair[other].rps
        for _, pair in sorted(by_round.items())
        if "ours" in pair and other in pair and pair[other].rps
    ]


# --- the batch ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchResult:
    rows: int
    client_ms: list[float]
    server_ms: list[float]
    log_drain_ms: list[float]


def batch_patients(data: str, rows: int) -> list[dict[str, Any]]:
    """``rows`` patients from the real data set (cycled), in its column names, bmi N/A as null."""
    with open(data, newline="", encoding="utf-8-sig") as handle:
        records = list(csv.DictReader(handle))
    patients = [
        {
            "gender": r["gender"],
            "age": float(r["age"]),
            "hypertension": int(r["hypertension"]),
            "heart_disease": int(r["heart_disease"]),
            "ever_married": r["ever_married"],
            "work_type": r["work_type"],
            "Residence_type": r["Residence_type"],
            "avg_glucose_level": float(r["avg_glucose_level"]),
            "bmi": None if r["bmi"] in ("N/A", "") else float(r["bmi"]),
            "smoking_status": r["smoking_status"],
        }
        for r in records
    ]
    return list(itertools.islice(itertools.cycle(patients), rows))


def prediction_log_status(server: Server) -> dict[str, Any]:
    """Our /health/ready view of the prediction log (backlog, written, dropped)."""
    import httpx

    return httpx.get(server.health_url, timeout=10.0).json()["prediction_log"]


def log_backlog(server: Server) -> int:
    return int(prediction_log_status(server)["backlog"])


def wait_log_drained(server: Server) -> float:
    """Milliseconds until the prediction log has written every accepted row."""
    started = time.perf_counter()
    while log_backlog(server) > 0:
        if time.perf_counter() - started > LOG_DRAIN_TIMEOUT_S:
            raise RuntimeError("the prediction log did not drain")
        time.sleep(0.01)
    return (time.perf_counter() - started) * 1000


def measure_batches(server: Server, data: str, *, rows: int, repeats: int) -> BatchResult:
    """``repeats`` batches of ``rows`` to our batch route, each after the log has drained."""
    import httpx
    import orjson

    assert server.metrics_url is not None
    body = orjson.dumps({"patients": batch_patients(data, rows)})
    url = server.url.replace(PREDICT_ROUTE, BATCH_ROUTE)
    headers = {"Content-Type": "application/json", **server.headers}
    client_ms: list[float] = []
    server_ms: list[float] = []
    drain_ms: list[float] = []
    with httpx.Client(timeout=CLIENT_TIMEOUT_S) as client:
        for attempt in range(repeats + 1):  # the first is a warm-up
            wait_log_drained(server)
            before = histogram(server.metrics_url, BATCH_ROUTE)
            started = time.perf_counter()
            response = client.post(url, content=body, headers=headers)
            elapsed = (time.perf_counter() - started) * 1000
            after = histogram(server.metrics_url, BATCH_ROUTE)
            if response.status_code != 200:
                raise RuntimeError(f"batch answered {response.status_code}: {response.text[:300]}")
            if after[1] - before[1] != 1:
                raise RuntimeError("another request reached the batch route while it was timed")
            if attempt == 0:
                if len(response.json()["predictions"]) != rows:
                    raise RuntimeError("the batch answer does not hold one prediction per row")
                continue
            client_ms.append(elapsed)
            server_ms.append((after[0] - before[0]) * 1000)
            drain_ms.append(wait_log_drained(server))
    return BatchResult(rows, client_ms, server_ms, drain_ms)


# --- CPU accounting: was the machine ours? -------------------------------------------------


@dataclass(frozen=True)
class CpuSample:
    machine_busy: float  # CPU-seconds busy on the whole machine since boot
    ours: float  # CPU-seconds of the bench, its finished children (wrk) and its servers


@dataclass(frozen=True)
class CpuShare:
    seconds: float  # wall time
    available: float  # CPU-seconds the machine had
    ours: float
    others: float


def machine_busy_seconds() -> float:
    """Busy CPU-seconds of the whole machine (``/proc/stat``); 0 where there is none."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:9]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = (int(x) for x in fields)
    # interrupt time is left out: the loopback traffic of the bench itself lands there
    return (user + nice + system + steal) / os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(groups: set[int]) -> float:
    """CPU-seconds of every live process in these process groups (our servers)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) in groups:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def cpu_sample(servers: Sequence[Server]) -> CpuSample:
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    ours = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    ours += group_cpu_seconds({s.process.pid for s in servers})
    return CpuSample(machine_busy_seconds(), ours)


def cpu_share(before: CpuSample, after: CpuSample, seconds: float) -> CpuShare:
    ours = after.ours - before.ours
    busy = after.machine_busy - before.machine_busy
    return CpuShare(seconds, seconds * (os.cpu_count() or 1), ours, max(busy - ours, 0.0))


# --- report ---------------------------------------------------------------------------------


def ratio(ours: LoadResult | None, other: LoadResult | None) -> float | None:
    if ours is None or other is None or not other.rps:
        return None
    return ours.rps / other.rps


def fmt(value: float | None, spec: str = ".1f", suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def print_load_table(results: list[LoadResult]) -> None:
    results = sorted(results, key=lambda r: (SERVER_ORDER.index(r.server), r.concurrency))
    from rich.console import Console
    from rich.table import Table

    table = Table(title="one-row requests (same client for every server)")
    columns = ("server", "conc.", "requests/s", "p50 ms", "p99 ms", "errors", "CPU ms/req")
    for column in (*columns, "server mean ms*"):
        table.add_column(column, justify="left" if column == "server" else "right")
    for r in results:
        table.add_row(
            r.server,
            str(r.concurrency),
            f"{r.rps:,.0f}",
            f"{r.p50_ms:.2f}",
            f"{r.p99_ms:.2f}",
            str(r.errors),
            fmt(r.server_cpu_ms, ".3f"),
            fmt(r.server_mean_ms, ".3f"),
        )
    Console(width=TABLE_WIDTH).print(table)
    print("CPU ms/req: CPU time of the server's processes (all threads) over the run / requests;")
    print("  it is less sensitive than requests/s to other work on the machine")
    print("* ours: its /metrics histogram; under concurrency it includes waiting in the event loop")


def print_ratio_table(
    results: list[LoadResult], runs: list[LoadResult], concurrencies: Sequence[int]
) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="throughput ratios (requests/s; all rounds, then each round)")
    for column in ("conc.", "ours / mlflow", "ours / floor", "ours / floor by round"):
        table.add_column(column, justify="right")
    for c in concurrencies:
        table.add_row(
            str(c),
            fmt(ratio(find(results, "ours", c), find(results, "mlflow", c)), ".1f", "x"),
            fmt(ratio(find(results, "ours", c), find(results, "floor", c)), ".0%"),
            " ".join(f"{r:.0%}" for r in round_ratios(runs, c, "floor")) or "n/a",
        )
    Console(width=TABLE_WIDTH).print(table)


def spread(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"median {statistics.median(values):.1f} ms (min {low:.1f}, max {high:.1f})"


def print_batch(batch: BatchResult) -> None:
    print(f"\n{batch.rows:,}-row batch to {BATCH_ROUTE}, {len(batch.server_ms)} requests:")
    print(f"  server time (its /metrics histogram): {spread(batch.server_ms)}")
    print(f"  client time (send, wait, read reply): {spread(batch.client_ms)}")
    print(f"  prediction log drained after reply:   {spread(batch.log_drain_ms)}")


def find(results: list[LoadResult], server: str, concurrency: int) -> LoadResult | None:
    return next((r for r in results if r.server == server and r.concurrency == concurrency), None)


def verdict(
    results: list[LoadResult], batch: BatchResult | None
) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) per target; met is None where it was not measured."""
    t = TARGETS
    c = t.throughput_concurrency
    ours_c, ours_1 = find(results, "ours", c), find(results, "ours", 1)
    vs_mlflow = ratio(ours_c, find(results, "mlflow", c))
    vs_floor = ratio(ours_c, find(results, "floor", c))
    batch_ms = statistics.median(batch.server_ms) if batch else None
    errors = sum(r.errors for r in results)
    return [
        (
            f"throughput at {c}: ours >= {t.vs_mlflow_throughput:.0f}x mlflow",
            fmt(vs_mlflow, ".1f", "x"),
            None if vs_mlflow is None else vs_mlflow >= t.vs_mlflow_throughput,
        ),
        (
            f"throughput at {c}: ours >= {t.vs_floor_throughput:.0%} of the floor",
            fmt(vs_floor, ".0%"),
            None if vs_floor is None else vs_floor >= t.vs_floor_throughput,
        ),
        (
            f"concurrency 1: p50 <= {t.p50_ms_at_1} ms",
            fmt(ours_1.p50_ms if ours_1 else None, ".2f", " ms"),
            None if ours_1 is None else ours_1.p50_ms <= t.p50_ms_at_1,
        ),
        (
            f"concurrency 1: p99 <= {t.p99_ms_at_1} ms",
            fmt(ours_1.p99_ms if ours_1 else None, ".2f", " ms"),
            None if ours_1 is None else ours_1.p99_ms <= t.p99_ms_at_1,
        ),
        (
            f"{t.batch_rows:,}-row batch: server time < {t.batch_server_ms:.0f} ms",
            fmt(batch_ms, ".1f", " ms (median)"),
            None
            if batch_ms is None or batch.rows != t.batch_rows
            else batch_ms < t.batch_server_ms,
        ),
        ("no failed requests", str(errors), errors == 0),
    ]


def print_verdict(rows: list[tuple[str, str, bool | None]]) -> None:
    print("\nverdict:")
    for target, measured, met in rows:
        mark = {True: "MET   ", False: "MISSED", None: "n/a   "}[met]
        print(f"  {mark} {target}: {measured}")


# --- main -----------------------------------------------------------------------------------


@contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        stop(server)


def sigterm_as_interrupt() -> None:
    """Let SIGTERM unwind like Ctrl-C, so every server is stopped."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def parse_concurrency(text: str) -> list[int]:
    values = [int(x) for x in text.split(",") if x.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return values


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=4, help="seconds per measured run")
    parser.add_argument("--rounds", type=int, default=3, help="measured runs per server and level")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per run")
    parser.add_argument("--concurrency", type=parse_concurrency, default=[1, 16, 64])
    parser.add_argument("--skip-mlflow", action="store_true", help="do not start mlflow's server")
    parser.add_argument("--batch-rows", type=int, default=TARGETS.batch_rows)
    parser.add_argument("--batch-repeats", type=int, default=10)
    parser.add_argument("--client", choices=("auto", "wrk", "httpx"), default="auto")
    parser.add_argument(
        "--data", default=os.environ.get("STROKEOPS_DATA", str(DEFAULT_DATA)), help="raw CSV"
    )
    parser.add_argument("--floor-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def choose_client(choice: str) -> str:
    has_wrk = shutil.which("wrk") is not None
    if choice == "wrk" and not has_wrk:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    return "wrk" if choice == "wrk" or (choice == "auto" and has_wrk) else "httpx"


def start_servers(
    registry: Registry, workdir: Path, stack: ExitStack, *, skip_mlflow: bool
) -> list[Server]:
    """All servers started at once, each registered for stopping, then waited for."""
    api_key = secrets.token_urlsafe(24)
    starters = [lambda: start_ours(registry, api_key, workdir), lambda: start_floor(workdir)]
    if not skip_mlflow:
        starters.insert(1, lambda: start_mlflow(registry, workdir))
    servers = [stack.enter_context(running(start())) for start in starters]
    for server in servers:
        seconds = wait_healthy(server)
        check_answer(server)
        print(f"  {server.name}: PID {server.process.pid}, healthy after {seconds:.1f} s")
    return servers


def print_header(args: argparse.Namespace, client: str, registry: Registry) -> None:
    overrides = ", ".join(f"{k}={v}" for k, v in REGISTRY_OVERRIDES.items())
    print(f"registry: run_pipeline on {args.data} in {registry.seconds:.1f} s, version")
    print(f"  {registry.version} is champion (reduced settings for speed: {overrides})")
    print(
        f"client: {client}{' (1 thread)' if client == 'wrk' else ''}; "
        f"{args.warmup:g} s warm-up + {args.duration:g} s per run; "
        f"machine: {os.cpu_count()} CPUs shared by client and servers"
    )
    if client == "httpx":
        print("  (httpx is a Python client: it saturates near a few hundred requests/s, so fast")
        print("  servers look alike; install wrk for meaningful ratios)")
    print("servers: one uvicorn worker each, math threads pinned to 1; ours with API key,")
    print("  metrics and the SQLite prediction log on; mlflow with its default access log")


def run_load(
    servers: Sequence[Server], args: argparse.Namespace, workdir: Path, client: str
) -> list[LoadResult]:
    """Concurrency by concurrency, in rounds of every server in turn: the runs compared in a
    ratio are close in time, and a burst of other work on the machine (this is a shared
    virtual machine) lands in one round of each server rather than in one server's run."""
    scripts = {s.name: wrk_script(s, workdir) if client == "wrk" else None for s in servers}
    runs: list[LoadResult] = []
    for concurrency in args.concurrency:
        print(f"  load at concurrency {concurrency}: {args.rounds} rounds …", flush=True)
        for round_index in range(args.rounds):
            for server in servers:
                runs.append(
                    measure(
                        server,
                        concurrency,
                        seconds=args.duration,
                        warmup=args.warmup if round_index == 0 else 0,
                        script=scripts[server.name],
                        round_index=round_index,
                    )
                )
    return runs


def print_cpu_share(share: CpuShare) -> None:
    if not share.available:
        return
    others = share.others / share.available
    print(
        f"\nCPU during the measurements ({share.seconds:.0f} s, {share.available:.0f} CPU-s "
        f"available): bench, client and servers {share.ours:.0f} CPU-s; other processes "
        f"{share.others:.0f} CPU-s ({others:.0%} of the machine)"
    )
    if others > OTHERS_CPU_WARNING:
        print("  WARNING: other processes were busy; the figures understate a quiet machine")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.floor_server:
        run_floor_server(args.port)
        return 0
    sigterm_as_interrupt()
    try:
        run_bench(args)
    except KeyboardInterrupt:
        print("\ninterrupted; every server stopped", file=sys.stderr)
        return 130
    return 0


def run_bench(args: argparse.Namespace) -> None:
    """Registry, servers, load, batch, report; the servers are stopped however it ends."""
    started = time.perf_counter()
    client = choose_client(args.client)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-serve-")))
        print("preparing the registry (the real pipeline, reduced settings) …", flush=True)
        registry = prepare_registry(args.data, workdir / "state")
        print_header(args, client, registry)
        print("starting servers …", flush=True)
        servers = start_servers(registry, workdir, stack, skip_mlflow=args.skip_mlflow)
        ours = servers[0]
        cpu_before, load_started = cpu_sample(servers), time.perf_counter()
        runs = run_load(servers, args, workdir, client)
        results = merged(runs)
        batch = (
            measure_batches(ours, args.data, rows=args.batch_rows, repeats=args.batch_repeats)
            if args.batch_repeats > 0
            else None
        )
        share = cpu_share(cpu_before, cpu_sample(servers), time.perf_counter() - load_started)
        log_status = prediction_log_status(ours)
        print()
        print_load_table(results)
        print_ratio_table(results, runs, args.concurrency)
        if batch:
            print_batch(batch)
        print(f"\nour prediction log after the load: {json.dumps(log_status)}")
        print_cpu_share(share)
        print_verdict(verdict(results, batch))
    print(f"\nbench finished in {time.perf_counter() - started:.0f} s; every server stopped")


if __name__ == "__main__":
    sys.exit(main())
