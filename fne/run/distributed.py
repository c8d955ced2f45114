"""Scale-out evaluation on a dask.distributed cluster (`DaskEvaluator`) and the factory every command calls.

`make_evaluator` picks one of three back ends behind the `Evaluator` interface of evaluation.py:
in process (the default, nothing to start), `--workers N` (a dask LocalCluster of N single-threaded
processes on 127.0.0.1) or `--scheduler tcp://HOST:PORT` (an existing cluster started with
`dask scheduler` / `dask worker`, see docs/distributed.md).

What travels to the workers: genotype strings, and once per worker a `WorkerPlugin` holding the search
space, the heuristic image batch (a CPU tensor built once in the parent, so every back end scores the
very same bytes) and the FitnessConfig. Dask hands registered plugins to workers that join later too, so
a worker that replaces a dead one needs nothing from the parent's memory. The plugin pins the worker to
`cuda:<worker index mod device count>` when CUDA is visible (else the CPU) and sets torch's intra-op
threads to the worker's nthreads.

Each genotype is one task, and each worker holds at most one at a time. Scores depend only on (run seed,
genotype) (fitness.candidate_seed), so rows equal the in-process ones whatever worker or order scores
them. When a worker dies, the scheduler moves its task to another worker; a task that has killed
`distributed.scheduler.allowed-failures` + 1 workers raises KilledWorker, which is caught per future and
re-submitted, up to `max_attempts` submissions in all; after that the candidate is scored +inf with the
error text, and the search goes on. Bad input (an invalid genotype) raises as in process.
Tournaments still run in the parent process (not distributed).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from fne.device import resolve_device
from fne.errors import ConfigError, FneError
from fne.genotopheno.spaces import get_space
from fne.run.evaluation import InProcessEvaluator
from fne.run.probe_data import DataSpec, load_images, load_labels, probe_tensors  # noqa: F401 - re-exported
from fne.scoring.fitness import HEURISTICS, score_genotypes

try:  # dask is the optional `fne[dask]` extra: the in-process default must import without it
    from distributed import WorkerPlugin
except ImportError:  # pragma: no cover - exercised only where dask is missing
    WorkerPlugin = object

log = logging.getLogger(__name__)

DASK_MISSING = "scale-out evaluation (--workers/--scheduler) needs dask: pip install 'fne[dask]'"
# Columns of a score row when no candidate of a batch succeeded (score_genotypes' schema).
ROW_COLUMNS = ("genotype", "params", "flops", "seconds", "device", "error")


# ---------------------------------------------------------------- the worker side
def worker_index(name: object) -> int:
    """A worker's index: its name if an integer (LocalCluster: 0, 1, ...), else the name's trailing number
    (`dask worker --name host-3`, or `--name host --nworkers 4` -> host-0..host-3), else 0."""
    if isinstance(name, int | np.integer):
        return int(name)
    text = str(name)
    match = re.search(r"(\d+)$", text)
    # An unnamed worker is called by its address, whose trailing number is a port, not an index.
    if match is None or "://" in text:
        return 0
    return int(match.group(1))


def pin_device(requested: str, index: int) -> str:
    """Device of the worker with this index: cuda:<index mod device count> for auto/cuda when CUDA is
    visible, cpu for auto without CUDA, anything else (cpu, cuda:N) as requested."""
    text = str(requested).strip().lower()
    if text in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{index % torch.cuda.device_count()}"
    return "cpu" if text == "auto" else text


class FneWorkerState(WorkerPlugin):
    """Sent once to every worker, replacements included: pins a device, sets torch threads, holds the data."""

    def __init__(self, space: Any, images: np.ndarray, fitness_config: Any, labels: np.ndarray | None = None) -> None:
        self.space = space
        self.images_cpu = images
        self.labels_cpu = labels
        self.labels: torch.Tensor | None = None
        self.fitness_config = fitness_config
        self.images: torch.Tensor | None = None
        self.config: Any = None
        self.device = ""

    def setup(self, worker: Any) -> None:
        """Pin this worker's device and thread count; move the image batch to the device once."""
        missing = [name for name in self.fitness_config.heuristics if name not in HEURISTICS]
        if missing:  # else every candidate would fail on this worker and score +inf
            raise ConfigError(f"heuristic(s) {', '.join(missing)} are not registered on dask worker {worker.name}; "
                              "load the module that registers them there with `dask worker --preload MODULE`")
        torch.set_num_threads(max(1, int(worker.state.nthreads)))
        index = worker_index(worker.name)
        if "://" in str(worker.name) and torch.cuda.device_count() > 1:
            log.warning("worker %s has no index in its name; it uses cuda:0 (start workers with --name)",
                        worker.name)
        device = resolve_device(pin_device(self.fitness_config.device, index))
        self.device = str(device)
        self.config = replace(self.fitness_config, device=self.device)
        self.images = torch.from_numpy(self.images_cpu).to(device)
        self.labels = None if self.labels_cpu is None else torch.from_numpy(self.labels_cpu).to(device)
        log.info("fne worker %s: device %s, %d torch threads", worker.name, self.device, torch.get_num_threads())

    def teardown(self, worker: Any) -> None:
        """Drop the device copy of the images."""
        self.images = None
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


def score_on_worker(plugin_name: str, genotype: str) -> pd.DataFrame:
    """Task body: score one genotype with the space, images and config the named plugin put on this worker."""
    from distributed import get_worker

    state = get_worker().plugins.get(plugin_name)
    if state is None or state.images is None:
        raise RuntimeError(f"worker has no fne state {plugin_name!r}: its plugin setup failed (see worker log)")
    return score_genotypes(state.space, [genotype], state.images, state.config, labels=state.labels)


# ---------------------------------------------------------------- the client side
class DaskEvaluator:
    """Evaluator that scores each genotype as one task on a dask cluster; rows come back in input order."""

    chunk_size = None  # the whole generation at once: the cluster parallelises it

    def __init__(self, client: Any, space: Any, images: torch.Tensor, fitness_config: Any, *,
                 labels: torch.Tensor | None = None, max_attempts: int = 3, cluster: Any = None,
                 owns_client: bool = False, progress: bool = False, worker_timeout_s: float = 120.0) -> None:
        if max_attempts < 1:
            raise ConfigError(f"max_attempts={max_attempts}: expected at least 1")
        self.client = client
        # Closed with the evaluator only when they were started for it (make_evaluator), not a caller's.
        self.cluster = cluster
        self.owns_client = owns_client or cluster is not None
        self.space = space
        self.fitness_config = fitness_config
        self.max_attempts = max_attempts
        self.progress = progress
        # A unique name per evaluator, so runs sharing one scheduler never read each other's data.
        self._token = uuid.uuid4().hex[:12]
        self.plugin_name = f"fne-state-{self._token}"
        self._submitted = 0
        self._closed = False
        try:
            client.wait_for_workers(1, timeout=worker_timeout_s)
        except TimeoutError:
            self.close()
            raise ConfigError(f"no dask worker joined scheduler {client.scheduler.address} within "
                              f"{worker_timeout_s:.0f} s; start workers with `dask worker ADDRESS`") from None
        # score_genotypes reads only the first batch_size images; too few fails there, as in process.
        images = np.ascontiguousarray(load_images(images, fitness_config)[:fitness_config.batch_size].numpy())
        try:
            plugin = FneWorkerState(space, images, fitness_config,
                                    None if labels is None else labels[:fitness_config.batch_size].numpy().copy())
            responses = client.register_plugin(plugin, name=self.plugin_name)
        except Exception as error:  # a worker's setup raised (e.g. --device cuda on a CPU-only worker)
            self.close()
            if isinstance(error, FneError):
                raise
            raise ConfigError(f"dask workers could not set up fne: {type(error).__name__}: {error}") from error
        failed = {w: r for w, r in (responses or {}).items() if isinstance(r, dict) and r.get("status") == "error"}
        if failed:
            worker, response = next(iter(failed.items()))
            self.close()
            raise ConfigError(f"dask worker {worker} could not set up fne: {response.get('exception')!r}")
        log.info("dask evaluator on %s: %d workers", client.scheduler.address,
                 len(client.scheduler_info().get("workers", {})))

    def _refill(self, waiting: deque[str], live: dict[Any, tuple[Any, str]], stream: Any) -> None:
        # At most one task per worker in flight: each worker scores one candidate at a time with all its
        # threads (torch's intra-op pool; on a GPU, one probe's memory budget), and a dying worker takes
        # only that candidate with it (dask counts every task assigned to a dead worker towards KilledWorker).
        window = max(1, len(self.client.nthreads()))
        while waiting and len(live) < window:
            genotype = waiting.popleft()
            future = self._submit(genotype)
            live[future.key] = (future, genotype)
            stream.add(future)

    def _submit(self, genotype: str) -> Any:
        self._submitted += 1
        # Explicit unique keys: a re-submission must be a new task, not the scheduler's cached failure.
        return self.client.submit(score_on_worker, self.plugin_name, genotype,
                                  key=f"fne-score-{self._token}-{self._submitted}", pure=False, retries=0)

    def evaluate(self, genotypes: Sequence[str]) -> pd.DataFrame:
        """Score rows of the genotypes in input order (score_genotypes' columns); a candidate whose task
        failed max_attempts times gets +inf heuristics and the error text."""
        from distributed import as_completed

        if self._closed:
            raise ConfigError("this DaskEvaluator is closed")
        genotypes = [str(g) for g in genotypes]
        for genotype in genotypes:  # GenotypeError up front, before any work, as score_genotypes does
            self.space.canonical(genotype)
        unique = list(dict.fromkeys(genotypes))  # equal strings score equally: score each once
        if not unique:
            return pd.DataFrame(columns=list(self._columns(None)))
        attempts = dict.fromkeys(unique, 1)
        waiting = deque(unique)  # not yet submitted, in input order; re-submissions go first
        live: dict[Any, tuple[Any, str]] = {}  # key -> (future, genotype) of every task in flight
        frames: dict[str, pd.DataFrame] = {}
        failures: dict[str, str] = {}
        stream = as_completed()
        started = time.perf_counter()
        try:
            self._refill(waiting, live, stream)
            with tqdm(total=len(unique), desc="scoring (dask)", unit="net", leave=False,
                      disable=not self.progress) as bar:
                for future in stream:
                    _, genotype = live.pop(future.key)
                    try:
                        frames[genotype] = future.result()
                        bar.update(1)
                    except FneError:  # bad input fails the same way on every worker, as it does in process
                        raise
                    except Exception as error:  # KilledWorker, a lost connection, or a bug escaping scoring
                        if attempts[genotype] < self.max_attempts:
                            attempts[genotype] += 1
                            log.warning("re-submitting %s (attempt %d of %d) after %s: %s", genotype,
                                        attempts[genotype], self.max_attempts, type(error).__name__, error)
                            waiting.appendleft(genotype)
                        else:
                            failures[genotype] = (f"{type(error).__name__}: {error} "
                                                  f"(failed {attempts[genotype]} submissions)")
                            log.error("scoring %s failed: %s", genotype, failures[genotype])
                            bar.update(1)
                    self._refill(waiting, live, stream)
        finally:
            if live:  # interrupted: do not leave tasks running on a shared cluster
                self.client.cancel([future for future, _ in live.values()])
        seconds = time.perf_counter() - started
        template = next(iter(frames.values()), None)
        for genotype, message in failures.items():
            frames[genotype] = self._failure_row(genotype, message, template)
        rows = pd.concat([frames[g] for g in genotypes], ignore_index=True)
        log.info("scored %d genotypes (%d distinct, %d failed) on dask in %.1f s", len(genotypes), len(unique),
                 len(failures), seconds)
        return rows

    def _columns(self, template: pd.DataFrame | None) -> list[str]:
        if template is not None:
            return list(template.columns)
        heuristics = list(self.fitness_config.heuristics)
        return [ROW_COLUMNS[0], *heuristics, *ROW_COLUMNS[1:]]

    def _failure_row(self, genotype: str, message: str, template: pd.DataFrame | None) -> pd.DataFrame:
        row: dict[str, Any] = dict.fromkeys(self._columns(template), np.nan)
        row.update(dict.fromkeys(self.fitness_config.heuristics, np.inf))  # every heuristic is minimised
        # As score_genotypes writes a candidate that failed to build; seconds stays NaN: not measured.
        row.update(genotype=genotype, params=-1, flops=-1, device="", error=message)
        return pd.DataFrame([row])

    def close(self) -> None:
        """Unregister the worker state; close the client and cluster if they were started for this evaluator."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.client.status == "running":
                self.client.unregister_worker_plugin(self.plugin_name)
        except Exception as error:  # never registered, or the scheduler is already gone
            log.debug("could not unregister %s: %s", self.plugin_name, error)
        if self.owns_client:
            self.client.close()
        if self.cluster is not None:
            # A worker slow to exit on a busy machine is killed after 4 s with a WARNING: expected when fne
            # closes its own finished cluster, so it shows only at -vv like dask's other records.
            nanny = logging.getLogger("distributed.nanny")
            level = nanny.level
            if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
                nanny.setLevel(logging.ERROR)
            try:
                self.cluster.close()
            finally:
                nanny.setLevel(level)

    def __enter__(self) -> DaskEvaluator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def quiet_dask_logs() -> None:
    """Show dask's own log records at WARNING and above, or all of them when the console logs DEBUG (-vv)."""
    # distributed sets its logger to INFO on import and its records reach the CLI's console handler: 25
    # lines about schedulers and nannies per run, even without -v. They are dask's business, not fne's.
    console = logging.getLogger().getEffectiveLevel()
    logging.getLogger("distributed").setLevel(console if console <= logging.DEBUG else logging.WARNING)


def start_local_cluster(workers: int) -> Any:
    """A LocalCluster of `workers` single-threaded processes on 127.0.0.1, without a dashboard."""
    try:
        import dask
        from distributed import LocalCluster
    except ImportError:
        raise ConfigError(DASK_MISSING) from None
    quiet_dask_logs()
    # dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's adaptive mmap
    # threshold: every large tensor is then mmapped and unmapped, and scoring ran 2x slower (measured).
    # The scheduler's health/metrics HTTP server binds even without a dashboard: a free port, not 8787.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                            dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                            silence_logs=logging.WARNING)


def connect(scheduler: str | Any, timeout_s: float = 30.0) -> Any:
    """A distributed.Client of a scheduler address or cluster object; ConfigError naming the address if unreachable."""
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError(DASK_MISSING) from None
    quiet_dask_logs()
    try:
        return Client(scheduler, timeout=timeout_s)
    except (OSError, TimeoutError, ValueError) as error:
        raise ConfigError(f"cannot reach dask scheduler {scheduler!r}: {error}; expected tcp://HOST:PORT of a "
                          "running `dask scheduler`") from None


def make_evaluator(space_name: str, space_options: Mapping[str, Any] | None, data_spec: Any, fitness_config: Any,
                   workers: int = 0, scheduler: str | None = None, *, max_attempts: int = 3,
                   progress: bool = False) -> Any:
    """The Evaluator for these options: in process (default), a local cluster of `workers` processes, or the
    dask cluster at `scheduler`; `close()` it when done (`with contextlib.closing(make_evaluator(...))`)."""
    if workers < 0:
        raise ConfigError(f"--workers {workers}: expected 0 (in process) or a positive number of processes")
    if workers and scheduler:
        raise ConfigError("--workers and --scheduler exclude each other: give one of them")
    space = get_space(space_name, **dict(space_options or {}))
    if isinstance(data_spec, torch.Tensor):
        images, labels = load_images(data_spec, fitness_config), None
    else:
        images, labels = (t.contiguous() for t in probe_tensors(data_spec, fitness_config))
    if not workers and not scheduler:
        return _in_process(space, images, fitness_config, progress, labels)
    cluster = start_local_cluster(workers) if workers else None
    try:
        client = connect(cluster if cluster is not None else scheduler)
    except BaseException:
        if cluster is not None:
            cluster.close()
        raise
    return DaskEvaluator(client, space, images, fitness_config, labels=labels, max_attempts=max_attempts,
                         cluster=cluster, owns_client=True, progress=progress)


def _in_process(space: Any, images: torch.Tensor, fitness_config: Any, progress: bool,
                labels: torch.Tensor | None = None) -> Any:
    return InProcessEvaluator(space, images, fitness_config, progress=progress, labels=labels)
