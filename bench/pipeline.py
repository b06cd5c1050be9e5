"""Benchmark of the main job: wall time and peak memory per pipeline stage.

Two series, each run in its own subprocess with its own fresh state dir (a temporary folder:
lake, MLflow store, artifacts), calling the stage functions in the order ``run_pipeline`` does:

1. the real data set (``STROKEOPS_DATA``) with the default settings: the target is the whole
   run within 60 s on 2 cores;
2. generated patients (``strokeops.synthetic``) at multiples of the real row count, all with one
   reduced configuration (``SCALING_OVERRIDES``), to see whether each stage's cost grows no
   faster than the number of rows.

Memory: a background thread samples the resident set size (RSS) of the measuring process and of
its descendants (joblib's worker processes) every 20 ms; the process's own exact peak comes
from ``VmHWM``, reset at each stage start. Worker RSS includes shared library pages, so the sum
over processes slightly overstates the real footprint.

Times assume the cores are ours: each run also reports the share of the machine's CPU that
other processes took meanwhile (``/proc/stat`` minus the CPU time of our own process tree).

    make bench
    OMP_NUM_THREADS=1 .venv/bin/python bench/pipeline.py [--sizes 1,10,100] [--skip-real]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from strokeops.config import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "healthcare-dataset-stroke-data.csv"
REAL_ROWS = 5110  # rows of the real data set: the 1x of the scaling series
TARGET_SECONDS = 60.0
LINEAR_TOLERANCE = 1.2  # per-row cost ratio still counted as "about linear"
LINEAR_NOTE = f"<= {LINEAR_TOLERANCE}: no worse than linear"
CONTENTION_LIMIT = 0.10  # share of the CPU other processes may take before times are suspect
MIN_SECONDS = 1.0  # below this at the largest size a stage's ratio is mostly timer noise
SAMPLE_INTERVAL_S = 0.02
MEMORY_NOTE = (
    f"memory: RSS of the measuring process plus its joblib workers, sampled every "
    f"{SAMPLE_INTERVAL_S * 1000:.0f} ms (the process's own peak exact, from VmHWM); "
    "Δ = peak minus the RSS at the stage's start"
)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
STAGES = ("ingest", "validate", "split", "train", "evaluate", "register", "promote")
# one reduced configuration for every size of the scaling series (the default would take hours)
SCALING_OVERRIDES: dict[str, Any] = {
    "tuning_trials": 2,
    "cv_folds": 3,
    "cv_repeats": 1,
    "model_families": ("logistic_regression", "hist_gradient_boosting"),
    "bootstrap_samples": 200,
}
SHOWN_SETTINGS = (
    "tuning_trials",
    "tuning_cv_folds",
    "cv_folds",
    "cv_repeats",
    "model_families",
    "bootstrap_samples",
)
KIB_PER_MIB = 1024

console = Console()


# --- memory ---------------------------------------------------------------------------------


def _status_kib(pid: int, key: str) -> int:
    """A ``/proc/<pid>/status`` entry in KiB; 0 when absent (a zombie has no RSS)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    return 0


def _descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children of all its threads, recursively)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        for children in Path(f"/proc/{pending.pop()}/task").glob("*/children"):
            try:
                kids = [int(child) for child in children.read_text().split()]
            except OSError:  # the thread or process ended meanwhile
                continue
            found += kids
            pending += kids
    return found


def _workers_kib(pid: int) -> int:
    total = 0
    for child in _descendants(pid):
        try:
            total += _status_kib(child, "VmRSS")
        except OSError:
            continue
    return total


def _reset_own_peak() -> bool:
    """Reset this process's ``VmHWM`` (Linux >= 4.0); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class Peaks:
    """RSS maxima in KiB since the last reset: this process, its workers, and the sum."""

    main: int = 0
    workers: int = 0
    total: int = 0

    def update(self, main: int, workers: int) -> None:
        self.main = max(self.main, main)
        self.workers = max(self.workers, workers)
        self.total = max(self.total, main + workers)


class RssSampler:
    """Samples the RSS of this process and its descendants in a background thread."""

    def __init__(self, interval_s: float = SAMPLE_INTERVAL_S) -> None:
        self._pid = os.getpid()
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._peaks = Peaks()
        self._hwm_resets = True

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._done.wait(self._interval_s):
            self.sample()

    def sample(self) -> tuple[int, int]:
        """Take one sample (KiB of this process, KiB of its workers) and update the peaks."""
        main, workers = _status_kib(self._pid, "VmRSS"), _workers_kib(self._pid)
        with self._lock:
            self._peaks.update(main, workers)
        return main, workers

    def reset(self) -> int:
        """Start a new measuring window; returns the current total RSS in KiB."""
        self._hwm_resets = _reset_own_peak() and self._hwm_resets
        with self._lock:
            self._peaks = Peaks()
        main, workers = self.sample()
        return main + workers

    def peaks(self) -> Peaks:
        """The maxima since the last reset, with this process's exact peak when known."""
        self.sample()
        with self._lock:
            peaks = Peaks(self._peaks.main, self._peaks.workers, self._peaks.total)
        if self._hwm_resets:
            peaks.main = max(peaks.main, _status_kib(self._pid, "VmHWM"))
            peaks.total = max(peaks.total, peaks.main)
        return peaks


# --- measuring one run (inside the child process) -------------------------------------------


@dataclass(frozen=True)
class StageStats:
    """Wall time and memory (MiB) of one stage; peak and delta cover workers too."""

    stage: str
    seconds: float
    start_mib: float
    peak_mib: float
    delta_mib: float
    main_peak_mib: float
    workers_peak_mib: float


@dataclass
class StageRecorder:
    """Times stages and records their memory with one ``RssSampler``."""

    sampler: RssSampler
    stats: list[StageStats] = field(default_factory=list)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start_kib = self.sampler.reset()
        started = time.perf_counter()
        yield
        seconds = time.perf_counter() - started
        peaks = self.sampler.peaks()
        self.stats.append(
            StageStats(
                stage=name,
                seconds=seconds,
                start_mib=start_kib / KIB_PER_MIB,
                peak_mib=peaks.total / KIB_PER_MIB,
                delta_mib=(peaks.total - start_kib) / KIB_PER_MIB,
                main_peak_mib=peaks.main / KIB_PER_MIB,
                workers_peak_mib=peaks.workers / KIB_PER_MIB,
            )
        )


@dataclass
class FamilyClock:
    """Wall time per model family inside ``train``, from its ``on_candidate`` hook."""

    marks: list[tuple[str, float]] = field(default_factory=list)

    def start(self, family: str) -> None:
        self.marks.append((family, time.perf_counter()))

    def stop(self) -> dict[str, float]:
        """Seconds per family, each up to the next family's start (its MLflow logging included)."""
        ends = [*(t for _, t in self.marks[1:]), time.perf_counter()]
        return {family: end - t for (family, t), end in zip(self.marks, ends, strict=True)}


def import_stages() -> float:
    """Import the stage modules (what ``strokeops run`` pays once); returns seconds."""
    started = time.perf_counter()
    import strokeops.pipeline  # noqa: F401  (imports every stage module)

    return time.perf_counter() - started


def run_stages(settings: Settings, recorder: StageRecorder) -> dict[str, Any]:
    """The stages in ``run_pipeline``'s order; returns rows, per-family times and the outcome."""
    from strokeops.evaluation import evaluate
    from strokeops.ingest import ingest
    from strokeops.promotion import promote
    from strokeops.registry import register
    from strokeops.split import split
    from strokeops.storage import open_lake
    from strokeops.training import train
    from strokeops.validation import validate

    lake = open_lake(settings)
    with recorder.stage("ingest"):
        ingested = ingest(settings.data, lake)
    with recorder.stage("validate"):
        validation = validate(ingested.data_version, lake, settings)
    with recorder.stage("split"):
        parts = split(ingested.data_version, lake, seed=settings.seed, test_size=settings.test_size)
    clock = FamilyClock()
    with recorder.stage("train"):
        training = train(parts, lake, settings, on_candidate=clock.start)
        families = clock.stop()
    with recorder.stage("evaluate"):
        evaluation = evaluate(training.parent_run_id, lake, settings)
    with recorder.stage("register"):
        registered = register(training.parent_run_id, lake, settings)
    with recorder.stage("promote"):
        gate = promote(registered.version, lake, settings, pipeline_run_id=training.parent_run_id)
    decision = "promoted" if gate.promoted else "rejected"
    return {
        "rows": validation.n_rows,
        "families": families,
        "outcome": f"winner {evaluation.winner.family}, gate {decision}",
    }


def child_main(spec_path: Path) -> None:
    """Run one measured series described by the JSON file ``spec_path``; write its result."""
    spec = json.loads(spec_path.read_text())
    import_seconds = import_stages()
    from strokeops.config import Settings

    settings = Settings(data=spec["data"], state_dir=Path(spec["state_dir"]), **spec["overrides"])
    with RssSampler() as sampler:
        recorder = StageRecorder(sampler)
        summary = run_stages(settings, recorder)
    result = summary | {
        "import_seconds": import_seconds,
        "stages": [asdict(s) for s in recorder.stats],
        "settings": {name: getattr(settings, name) for name in SHOWN_SETTINGS},
    }
    Path(spec["result"]).write_text(json.dumps(result))


# --- driving the runs (parent process) ------------------------------------------------------


class BenchError(RuntimeError):
    """A measured run failed; the message holds the end of its stderr."""


def _busy_cpu_seconds() -> float:
    """CPU time every process has used since boot, all cores (user, nice, system, irq)."""
    first_line = Path("/proc/stat").read_text().split("\n", 1)[0]
    user, nice, system, _idle, _iowait, irq, softirq = map(int, first_line.split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    """CPU time of this process's finished children and their reaped descendants."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuUse:
    """Wall time of a span, and the CPU seconds our children and all other processes used."""

    wall: float = 0.0
    own: float = 0.0
    other: float = 0.0

    @property
    def other_share(self) -> float:
        """The share of the machine's CPU capacity that other processes took meanwhile."""
        capacity = self.wall * (os.cpu_count() or 1)
        return self.other / capacity if capacity else 0.0


@contextmanager
def cpu_use() -> Iterator[CpuUse]:
    """Measure a span that runs (and waits for) one child process."""
    use = CpuUse()
    busy, own, started = _busy_cpu_seconds(), _children_cpu_seconds(), time.perf_counter()
    yield use
    use.wall = time.perf_counter() - started
    use.own = _children_cpu_seconds() - own
    use.other = max(0.0, _busy_cpu_seconds() - busy - use.own)


@dataclass(frozen=True)
class RunResult:
    """What one child run measured."""

    label: str
    rows: int
    import_seconds: float
    cpu: CpuUse
    stages: list[StageStats]
    families: dict[str, float]
    settings: dict[str, Any]
    outcome: str

    @property
    def stage_seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    @property
    def size(self) -> str:
        """The row count as a multiple of the real data set's."""
        return f"{self.rows / REAL_ROWS:g}x"

    def seconds(self, name: str | None) -> float:
        """Wall time of a stage or of a model family in train; of all stages with ``None``."""
        if name is None:
            return self.stage_seconds
        return self.families[name] if name in self.families else self.stage(name).seconds

    def stage(self, name: str) -> StageStats:
        return next(s for s in self.stages if s.stage == name)


def child_environment() -> dict[str, str]:
    """This environment without ``STROKEOPS_*`` (so defaults apply), one math thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STROKEOPS_")}
    for name in THREAD_VARIABLES:
        env.setdefault(name, "1")
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("DO_NOT_TRACK", "true")
    return env


def write_generated(rows: int, path: Path) -> None:
    """Generated patients with the real file's schema and CSV conventions."""
    from strokeops.synthetic import generate_patients, to_csv_bytes

    path.write_bytes(to_csv_bytes(generate_patients(rows, seed=rows)))


def run_child(label: str, data: Path, overrides: dict[str, Any], tmp: Path) -> RunResult:
    """Measure one series in a fresh Python process with its own state dir under ``tmp``."""
    spec = {
        "data": str(data),
        "state_dir": str(tmp / "state"),
        "overrides": overrides,
        "result": str(tmp / "result.json"),
    }
    (tmp / "spec.json").write_text(json.dumps(spec))
    with cpu_use() as cpu:
        process = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(tmp / "spec.json")],
            cwd=tmp,
            env=child_environment(),
            capture_output=True,
            text=True,
            check=False,
        )
    if process.returncode != 0:
        raise BenchError(f"{label} failed (exit {process.returncode}):\n{process.stderr[-3000:]}")
    result = json.loads((tmp / "result.json").read_text())
    return RunResult(
        label=label,
        rows=result["rows"],
        import_seconds=result["import_seconds"],
        cpu=cpu,
        stages=[StageStats(**s) for s in result["stages"]],
        families=result["families"],
        settings=result["settings"],
        outcome=result["outcome"],
    )


def measure(label: str, overrides: dict[str, Any], data: Path | int) -> RunResult:
    """One series in its own temporary folder; an ``int`` for ``data`` generates that many rows."""
    with (
        tempfile.TemporaryDirectory(prefix="strokeops-bench-") as name,
        console.status(f"{label} ..."),
    ):
        tmp = Path(name)
        if isinstance(data, int):
            write_generated(data, tmp / "patients.csv")
            data = tmp / "patients.csv"
        result = run_child(label, data, overrides, tmp)
    cpu = result.cpu
    console.print(
        f"{label}: {result.stage_seconds:.1f} s in stages, {cpu.wall:.1f} s with process start "
        f"and imports; {result.outcome}; CPU {cpu.own:.0f} s ours, other processes took "
        f"{cpu.other_share:.0%} of the machine meanwhile",
        highlight=False,
    )
    return result


# --- reporting ------------------------------------------------------------------------------


def describe_settings(settings: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={','.join(v) if isinstance(v, list | tuple) else v}" for k, v in settings.items()
    )


def print_config(series: str, result: RunResult) -> None:
    console.print(f"config, {series}: {describe_settings(result.settings)}", highlight=False)


def timed_names(result: RunResult) -> list[str]:
    """The stages, with train's model families right after train."""
    at = STAGES.index("train") + 1
    return [*STAGES[:at], *result.families, *STAGES[at:]]


def row_label(name: str, result: RunResult) -> str:
    return f"  └ {name}" if name in result.families else name


def real_table(result: RunResult) -> Table:
    table = Table(title=f"real data, {result.rows:,} rows, default Settings()")
    table.add_column("stage", no_wrap=True)
    for column in ("time s", "share", "peak RSS MiB", "Δ RSS MiB", "workers MiB"):
        table.add_column(column, justify="right")
    for name in timed_names(result):
        seconds = result.seconds(name)
        memory = ["", "", ""]
        if name in STAGES:
            s = result.stage(name)
            memory = [f"{s.peak_mib:.0f}", f"{s.delta_mib:+.0f}", f"{s.workers_peak_mib:.0f}"]
        share = f"{seconds / result.stage_seconds:.0%}"
        table.add_row(row_label(name, result), f"{seconds:.2f}", share, *memory)
    table.add_section()
    table.add_row("all stages", f"{result.stage_seconds:.2f}", "100%", "", "", "")
    table.add_row("imports", f"{result.import_seconds:.2f}", "", "", "", "")
    return table


def per_row_ratio(base: RunResult, result: RunResult, stage: str | None = None) -> float | None:
    """(time / base time) / (rows / base rows) of a stage (or all stages); <= 1 is linear."""
    base_seconds = base.seconds(stage)
    if base_seconds <= 0:
        return None
    return (result.seconds(stage) / base_seconds) / (result.rows / base.rows)


def _ratio_cell(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    style = "green" if ratio <= LINEAR_TOLERANCE else "red"
    return f"[{style}]{ratio:.2f}[/]"


def scaling_time_table(results: list[RunResult]) -> Table:
    base = results[0]
    table = Table(title=f"generated data: wall time s, and time per row relative to {base.size}")
    table.add_column("stage", no_wrap=True)
    for r in results:
        table.add_column(f"{r.size}\n{r.rows:,} rows", justify="right")
    for r in results[1:]:
        table.add_column(f"per row\n{r.size}/{base.size}", justify="right")
    for name in (*timed_names(base), None):
        if name is None:
            table.add_section()
        times = [f"{r.seconds(name):.2f}" for r in results]
        ratios = [_ratio_cell(per_row_ratio(base, r, name)) for r in results[1:]]
        table.add_row(row_label(name, base) if name else "all stages", *times, *ratios)
    return table


def scaling_memory_table(results: list[RunResult]) -> Table:
    table = Table(title="generated data: peak RSS MiB (Δ within the stage)")
    table.add_column("stage", no_wrap=True)
    for r in results:
        table.add_column(f"{r.size}\n{r.rows:,} rows", justify="right")
    for name in STAGES:
        cells = [f"{r.stage(name).peak_mib:.0f} ({r.stage(name).delta_mib:+.0f})" for r in results]
        table.add_row(name, *cells)
    return table


def real_verdict(result: RunResult) -> str:
    total = result.stage_seconds + result.import_seconds
    verdict = "MEETS" if total <= TARGET_SECONDS else "MISSES"
    return (
        f"real data, default config: {total:.1f} s (stages {result.stage_seconds:.1f} s + imports "
        f"{result.import_seconds:.1f} s) {verdict} the {TARGET_SECONDS:.0f} s target on "
        f"{os.cpu_count()} cores"
    )


def scaling_verdict(results: list[RunResult]) -> str:
    """Stages whose per-row time grew beyond the tolerance (ignoring sub-second stages)."""
    base, top = results[0], results[-1]
    ratios = {n: per_row_ratio(base, top, n) for n in STAGES if top.seconds(n) >= MIN_SECONDS}
    worse = [f"{n} {r:.2f}" for n, r in ratios.items() if r is not None and r > LINEAR_TOLERANCE]
    head = f"scaling {base.size} -> {top.size} (reduced config, stages >= {MIN_SECONDS:g} s): "
    if worse:
        return head + "faster than linear (time per row ratio): " + ", ".join(worse)
    return head + f"every time per row ratio {LINEAR_NOTE}"


def contention_verdict(results: list[RunResult]) -> str:
    """How much of the CPU other processes took during each run (the times assume none)."""
    shares = ", ".join(f"{r.label} {r.cpu.other_share:.0%}" for r in results)
    worst = max(r.cpu.other_share for r in results)
    note = (
        f": above {CONTENTION_LIMIT:.0%}, so those times are inflated"
        if worst > CONTENTION_LIMIT
        else ": a quiet machine"
    )
    return f"CPU taken by other processes during each run: {shares}{note}"


def memory_verdict(results: list[RunResult]) -> str:
    """The highest peak and the largest growth within one stage, over all runs."""
    stages = [(s, r.label) for r in results for s in r.stages]
    peak, peak_label = max(stages, key=lambda item: item[0].peak_mib)
    grew, grew_label = max(stages, key=lambda item: item[0].delta_mib)
    return (
        f"highest peak RSS {peak.peak_mib:.0f} MiB ({peak.stage}, {peak_label}); "
        f"largest growth in a stage {grew.delta_mib:+.0f} MiB ({grew.stage}, {grew_label})"
    )


# --- command line ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="1,10,100",
        help="multiples of the real row count for generated data (default 1,10,100)",
    )
    parser.add_argument("--skip-real", action="store_true", help="skip the real-data series")
    parser.add_argument("--skip-scaling", action="store_true", help="skip the generated series")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def real_data_path() -> Path:
    """``STROKEOPS_DATA`` (relative paths from the checkout), else ``../shared/data/...``."""
    path = Path(os.environ.get("STROKEOPS_DATA") or DEFAULT_DATA)
    return path if path.is_absolute() else REPO_ROOT / path


def report(real: RunResult | None, scaling: list[RunResult]) -> None:
    """The tables, the configs and the verdict lines."""
    if real:
        console.print(real_table(real))
        print_config("real data: default Settings()", real)
    if scaling:
        console.print(scaling_time_table(scaling), scaling_memory_table(scaling))
        print_config("generated data, identical at every size", scaling[0])
    runs = [r for r in (real, *scaling) if r]
    if not runs:
        return
    console.print(MEMORY_NOTE, highlight=False)
    lines = [real_verdict(real)] if real else []
    lines += [scaling_verdict(scaling)] if len(scaling) > 1 else []
    for line in [*lines, memory_verdict(runs), contention_verdict(runs)]:
        console.print(line, highlight=False)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child_main(args.child)
        return 0
    for name in THREAD_VARIABLES:  # before numpy is imported (data generation, children)
        os.environ.setdefault(name, "1")
    if not console.is_terminal:
        console.width = max(console.width, 110)
    data = real_data_path()
    if not args.skip_real and not data.is_file():
        console.print(f"[red]real data not found at {data}[/]; set STROKEOPS_DATA or --skip-real")
        return 2
    sizes = [] if args.skip_scaling else sorted({int(s) for s in args.sizes.split(",") if s})
    console.print(
        f"{os.cpu_count()} cores; " + ", ".join(f"{n}={os.environ[n]}" for n in THREAD_VARIABLES)
    )
    started = time.perf_counter()
    try:
        real = None if args.skip_real else measure("real data", {}, data)
        scaling = [measure(f"generated {k}x", SCALING_OVERRIDES, REAL_ROWS * k) for k in sizes]
    except BenchError as exc:
        console.print(str(exc), style="red", highlight=False, markup=False)
        return 1
    report(real, scaling)
    console.print(f"bench took {time.perf_counter() - started:.0f} s", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
