"""Scale-out of backtests: folds (and configurations x folds) on local processes or Dask.

A backtest is a list of independent folds and a sweep is several model configurations
(specs, e.g. ``d = 2, 3, 4``) over the same folds. :func:`run_folds` and
:func:`run_sweep` run those tasks through one of three executors:

serial (``workers=1``, no scheduler)
    In this process, on one :class:`~bayescale.evaluate.BacktestEngine` per
    configuration; nutpie samples the chains of a fold on ``min(chains, cores)``
    threads.
local processes (the default on a machine with more than one core)
    A :class:`concurrent.futures.ProcessPoolExecutor` with the ``spawn`` start method
    (nutpie, numba and OpenBLAS run threads, which ``fork`` would copy in an undefined
    state). The spec and the universe table are sent to each process once, by its
    initializer; each process compiles the engine of a configuration the first time it
    runs one of its folds and keeps it for the next folds. The processes start with
    one BLAS thread (``OMP/OPENBLAS/MKL_NUM_THREADS=1``, as Dask's nanny does).
Dask (``scheduler="tcp://host:8786"`` or a ``distributed.Client``)
    One task per (configuration, fold). The universe and the specs are scattered to the
    workers once; each worker process keeps its compiled engines in a cache keyed by
    the spec's config id and a hash of the universe table, so it compiles once per
    configuration, not once per fold. The workers need bayescale (the same version)
    installed; start them with one thread each (``dask worker --nthreads 1``, or
    ``LocalCluster(threads_per_worker=1)``), or give a worker ``n`` threads and its
    folds sample their chains on ``min(chains, n)`` threads, one fold at a time.

Results are identical to a serial run for the same seed: fold ``k`` (its index in
``folds``) samples with seed ``seed + 1000 k`` and predicts with ``seed + 1000 k + 1``
whichever process runs it, the MAP start, its jitter and nutpie's chains depend only on
those seeds, and nutpie's draws do not depend on its number of threads. nutpie's threads
ask for the chains' starts in an order that varies between runs, so each chain's start
is a function of the seed nutpie passes that chain, never of the call order
(:func:`bayescale.sample.small_jitter`, :meth:`MapStarter.chain_optima`). The engine's
numba kernels are compiled without fastmath: with it, a kernel freshly compiled (and
inlined) in one process rounds differently from the same kernel loaded from PyTensor's
on-disk cache in another, and the sampler amplifies the last bits into other draws.
Bit-identity across machines also needs the same CPU and library versions. Tasks are
queued configuration by configuration, so a process that moves on to the next
configuration never needs the previous one again.

Scripts that use the local processes must guard their entry point with
``if __name__ == "__main__":`` (the ``spawn`` start method imports the main module in
every worker).
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pandas as pd

from bayescale.errors import SchedulerError

if TYPE_CHECKING:
    from bayescale.evaluate import BacktestEngine, Fold, FoldResult
    from bayescale.spec import ModelSpec

log = logging.getLogger(__name__)

#: Compiled engines kept per process (least recently used dropped first).
CACHE_SIZE = 4
#: Seconds to wait for a Dask scheduler to answer.
CONNECT_TIMEOUT = 10.0
#: Start method of the local worker processes.
START_METHOD = "spawn"


# ---------------------------------------------------------------------- engine cache
def universe_hash(universe: pd.DataFrame) -> str:
    """Short content hash of a universe table (values, index, column names and dtypes)."""
    h = hashlib.sha256()
    h.update(repr([(str(c), str(t)) for c, t in universe.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(universe, index=True).to_numpy().tobytes())
    return h.hexdigest()[:16]


def engine_key(spec: ModelSpec, universe: pd.DataFrame) -> str:
    """Cache key of the engine of ``spec`` on ``universe``: config id and universe hash."""
    return f"{spec.config_id}-{universe_hash(universe)}"


class _Entry:
    def __init__(self, engine: BacktestEngine) -> None:
        self.engine = engine
        # an engine is stateful (its training mask), so one fold at a time runs on it
        self.lock = threading.Lock()


_ENGINES: OrderedDict[str, _Entry] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def cached_engine(spec: ModelSpec, universe: pd.DataFrame, key: str | None = None
                  ) -> tuple[BacktestEngine, float]:
    """Return this process's engine of ``spec`` on ``universe``, compiled on first use.

    Parameters
    ----------
    spec : ModelSpec
        A skills spec.
    universe : DataFrame
        Every row any fold is fit or tested on.
    key : str, optional
        :func:`engine_key` of the pair, if the caller has it.

    Returns
    -------
    engine : BacktestEngine
    compile_seconds : float
        Time spent compiling it now (0 when it came from the cache).
    """
    return _entry(spec, universe, key or engine_key(spec, universe))[:2]


def _entry(spec, universe, key) -> tuple[BacktestEngine, float, threading.Lock]:
    from bayescale.evaluate import BacktestEngine

    with _CACHE_LOCK:
        entry = _ENGINES.get(key)
        seconds = 0.0
        if entry is None:
            t0 = time.perf_counter()
            entry = _Entry(BacktestEngine(spec, universe))
            seconds = time.perf_counter() - t0
            _ENGINES[key] = entry
            while len(_ENGINES) > CACHE_SIZE:
                _ENGINES.popitem(last=False)
        _ENGINES.move_to_end(key)
    return entry.engine, seconds, entry.lock


def clear_engine_cache() -> None:
    """Drop this process's compiled engines (the serial path keeps up to CACHE_SIZE)."""
    with _CACHE_LOCK:
        _ENGINES.clear()


def _run_task(key: str, spec, universe, fold, k: int, settings: dict[str, Any],
              cores: int | None) -> FoldResult:
    """Run fold ``k`` of configuration ``key`` on this process's cached engine."""
    engine, seconds, lock = _entry(spec, universe, key)
    with lock:
        result = engine.run_fold(fold, k, cores=cores, **settings)
    result.diagnostics["compile_seconds"] = seconds
    result.diagnostics["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    return result


# ---------------------------------------------------------------------- local processes
_PAYLOAD: dict[str, Any] = {}


def _init_local_worker(specs: dict[str, Any], universe: pd.DataFrame) -> None:
    _PAYLOAD["specs"] = specs
    _PAYLOAD["universe"] = universe


def _local_task(key: str, fold, k: int, settings: dict[str, Any], cores: int) -> FoldResult:
    return _run_task(key, _PAYLOAD["specs"][key], _PAYLOAD["universe"], fold, k, settings,
                     cores)


def default_workers(n_tasks: int, chains: int, cpus: int | None = None) -> tuple[int, int]:
    """Local worker processes and nutpie threads per process for ``n_tasks`` folds.

    One process per core, at most one per task, each sampling its chains on
    ``cpus // workers`` threads (at least 1, at most ``chains``). A fold has serial
    stages (MAP optimisation, prediction, diagnostics) during which the other threads
    of a multi-threaded fold idle, so several folds at once use the cores better than
    one fold on all of them; the price is one compilation per process (in parallel, so
    about one compilation of wall time) and one compiled model in memory per process.
    On 2 cores: 2 processes of 1 thread for 2 or more folds, 1 process (serial, in
    this process) of 2 threads for a single fold.

    Parameters
    ----------
    n_tasks : int
        Number of (configuration, fold) tasks.
    chains : int
        Chains per fold.
    cpus : int, optional
        Cores to use (default ``os.cpu_count()``).

    Returns
    -------
    workers, cores : int
    """
    cpus = max(1, cpus or os.cpu_count() or 1)
    workers = max(1, min(n_tasks, cpus))
    return workers, max(1, min(chains, cpus // workers))


@contextmanager
def _single_threaded_blas():
    """Set ``*_NUM_THREADS=1`` while worker processes start (as Dask's nanny does).

    The parallelism is in the folds and chains; a BLAS pool per worker process would
    oversubscribe the cores (and OpenBLAS threads spin while they wait).
    """
    saved = {name: os.environ.get(name) for name in _BLAS_THREADS}
    os.environ.update(dict.fromkeys(_BLAS_THREADS, "1"))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_BLAS_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def map_local(function, items: Sequence[tuple], *, workers: int, desc: str,
              progress: bool = False, initializer=None, initargs: tuple = ()) -> list[Any]:
    """``[function(*item) for item in items]`` on ``workers`` local ``spawn`` processes.

    The processes start with single-threaded BLAS and ignore SIGINT (the parent handles
    Ctrl-C); on an error or an interrupt the queued items are dropped and the running
    ones stopped at once. With one worker the items run in this process, in order
    (after ``initializer``), with the same progress bar. ``function`` and the items
    must pickle (a module-level function), and a script using this must guard its
    entry point with ``if __name__ == "__main__":``.

    Parameters
    ----------
    function : callable
        Module-level function run on each item's arguments.
    items : sequence of tuple
        Positional arguments of each call.
    workers : int
        Processes (at most one per item is useful); 1 runs in this process.
    desc : str
        Label of the progress bar (``"folds"``, ``"variants"``).
    progress : bool
        Show a progress bar over completed items.
    initializer, initargs
        Run once in each process (after SIGINT is ignored), e.g. to receive a payload
        shared by every item.

    Returns
    -------
    list
        The results, in the order of ``items``.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm.auto import tqdm

    if workers <= 1:
        if initializer is not None:
            initializer(*initargs)
        return [function(*item) for item in tqdm(items, desc=desc, disable=not progress)]
    context = multiprocessing.get_context(START_METHOD)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=_init_process, initargs=(initializer, initargs))
    results: list[Any] = [None] * len(items)
    try:
        # the pool spawns its processes in submit(); they inherit this environment
        with _single_threaded_blas():
            futures = {pool.submit(function, *item): i for i, item in enumerate(items)}
        with tqdm(total=len(items), desc=desc, disable=not progress) as bar:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
    except BaseException:
        # an error or Ctrl-C: drop the queued items and stop the running ones now
        # rather than after they finish (the executor has no public way to do it)
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        raise
    pool.shutdown()
    return results


def _init_process(initializer, initargs: tuple) -> None:
    # Ctrl-C goes to the whole process group: the parent cancels, the workers stay quiet
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)


def _run_local(tasks, specs, universe, settings, workers, cores, progress):
    return map_local(_local_task, [(key, fold, k, settings, cores) for key, fold, k in tasks],
                     workers=workers, desc="folds", progress=progress,
                     initializer=_init_local_worker, initargs=(specs, universe))


# ---------------------------------------------------------------------- Dask
def connect(scheduler, *, timeout: float = CONNECT_TIMEOUT):
    """Return ``(client, owned)`` for a scheduler address or an existing Client.

    Raises
    ------
    SchedulerError
        The address is malformed, the scheduler does not answer within ``timeout``
        seconds, or dask.distributed is not installed.
    """
    try:
        import distributed
    except ImportError:
        raise SchedulerError("--scheduler needs dask.distributed "
                             "(pip install 'dask[distributed]')") from None
    if isinstance(scheduler, distributed.Client):
        return scheduler, False
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise SchedulerError(f"not a Dask scheduler address: {scheduler!r} "
                             "(expected e.g. tcp://host:8786)")
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import get_backend

    address = scheduler.strip()
    try:
        scheme, location = parse_address(address)
        get_backend(scheme)
        if scheme in ("tcp", "tls", "ws", "wss"):
            parse_host_port(location)
    except (ValueError, TypeError) as exc:
        raise SchedulerError(f"not a Dask scheduler address: {address!r} ({exc})") from None
    try:
        client = distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise SchedulerError(f"cannot reach the Dask scheduler at {address} "
                             f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                             ) from None
    return client, True


def _dask_task(key: str, spec, universe, fold, k: int, settings: dict[str, Any],
               cores: int | None) -> FoldResult:
    if cores is None:
        from distributed import get_worker

        try:
            threads = get_worker().state.nthreads
        except (ValueError, AttributeError):
            threads = 1
        cores = max(1, min(settings["chains"], threads))
    return _run_task(key, spec, universe, fold, k, settings, cores)


def _run_dask(tasks, specs, universe, settings, scheduler, cores, progress, timeout):
    from distributed import as_completed
    from tqdm.auto import tqdm

    client, owned = connect(scheduler, timeout=timeout)
    try:
        universe_f = client.scatter(universe, broadcast=True)
        spec_f = {key: client.scatter(spec, broadcast=True) for key, spec in specs.items()}
        futures = [client.submit(_dask_task, key, spec_f[key], universe_f, fold, k, settings,
                                 cores, pure=False)
                   for key, fold, k in tasks]
        try:
            with client.as_current(), tqdm(total=len(tasks), desc="folds",
                                           disable=not progress) as bar:
                for _ in as_completed(futures):
                    bar.update()
            return client.gather(futures)
        except BaseException:
            client.cancel(futures)
            raise
    finally:
        if owned:
            client.close()


# ---------------------------------------------------------------------- API
def run_sweep(configs, universe: pd.DataFrame, folds: Sequence[Fold], *, draws: int,
              tune: int, chains: int, seed: int, workers: int | None = None, scheduler=None,
              progress: bool = False, cores: int | None = None,
              timeout: float = CONNECT_TIMEOUT):
    """Run every fold of a backtest for each of several configurations.

    Parameters
    ----------
    configs : sequence of ModelSpec, or mapping of label to ModelSpec
        The configurations (skills specs), e.g.
        ``{f"d={d}": spec.with_overrides(skills={"d": d}) for d in (2, 3, 4)}``.
    universe : DataFrame
        Every row any fold is fit or tested on (from a protocol function of
        :mod:`bayescale.evaluate`).
    folds : sequence of Fold
        The folds; fold ``k`` uses seeds ``seed + 1000 k`` (sampling) and
        ``seed + 1000 k + 1`` (prediction), as :meth:`BacktestEngine.run` does.
    draws, tune, chains, seed : int
        Sampler settings per fold.
    workers : int, optional
        Local worker processes; 1 runs serially in this process. Default:
        :func:`default_workers` (serial on a single core or for a single task).
        Ignored with ``scheduler``.
    scheduler : str or distributed.Client, optional
        Run the tasks on a Dask cluster: a scheduler address (``tcp://host:8786``) or a
        connected client (which is left open).
    progress : bool
        Show a progress bar over completed folds.
    cores : int, optional
        nutpie threads per fold (default: see :func:`default_workers`; on Dask, the
        worker's threads; serially, ``min(chains, os.cpu_count())``).
    timeout : float
        Seconds to wait for the scheduler.

    Returns
    -------
    list of list of FoldResult, or dict of label to list of FoldResult
        Per configuration (in the order, or with the labels, of ``configs``), the
        results in fold order.

    Raises
    ------
    SchedulerError
        The scheduler address is malformed or the scheduler does not answer.
    """
    labels = list(configs) if isinstance(configs, Mapping) else None
    spec_list = list(configs.values()) if isinstance(configs, Mapping) else list(configs)
    folds = list(folds)
    uni_hash = universe_hash(universe)
    keys = [f"{spec.config_id}-{uni_hash}" for spec in spec_list]
    specs = dict(zip(keys, spec_list, strict=True))
    # configuration-major order: a process never goes back to a configuration it left
    tasks = [(key, fold, k) for key in dict.fromkeys(keys) for k, fold in enumerate(folds)]
    settings = {"draws": draws, "tune": tune, "chains": chains, "seed": seed}
    t0 = time.perf_counter()
    if scheduler is not None:
        mode = "dask"
        flat = _run_dask(tasks, specs, universe, settings, scheduler, cores, progress,
                         timeout)
    else:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        n_workers, local_cores = default_workers(len(tasks), chains)
        if workers is not None:
            n_workers = min(workers, max(1, len(tasks)))
            local_cores = max(1, min(chains, (os.cpu_count() or 1) // n_workers))
        if n_workers == 1:
            mode = "serial"
            flat = _run_serial(tasks, specs, universe, settings, cores, progress)
        else:
            mode = f"{n_workers} local processes"
            flat = _run_local(tasks, specs, universe, settings, n_workers,
                              cores or local_cores, progress)
    log.info("%d folds x %d configurations (%s): %.1f s", len(folds), len(specs), mode,
             time.perf_counter() - t0)
    by_key = {key: flat[i * len(folds):(i + 1) * len(folds)]
              for i, key in enumerate(dict.fromkeys(keys))}
    out = [by_key[key] for key in keys]
    return dict(zip(labels, out, strict=True)) if labels is not None else out


def _run_serial(tasks, specs, universe, settings, cores, progress):
    from tqdm.auto import tqdm

    return [_run_task(key, specs[key], universe, fold, k, settings, cores)
            for key, fold, k in tqdm(tasks, desc="folds", disable=not progress)]


def run_folds(spec: ModelSpec, universe: pd.DataFrame, folds: Sequence[Fold], *, draws: int,
              tune: int, chains: int, seed: int, workers: int | None = None, scheduler=None,
              progress: bool = False, cores: int | None = None,
              timeout: float = CONNECT_TIMEOUT) -> list[FoldResult]:
    """Run the folds of one backtest, serially, on local processes or on Dask.

    The results are those of ``BacktestEngine(spec, universe).run(folds, ...)`` with the
    same seed, in fold order; each fold's diagnostics also record ``compile_seconds``
    (compilation that fold waited for, 0 on a cached engine) and ``worker``
    (``host:pid``). See :func:`run_sweep` for the parameters.
    """
    return run_sweep([spec], universe, folds, draws=draws, tune=tune, chains=chains,
                     seed=seed, workers=workers, scheduler=scheduler, progress=progress,
                     cores=cores, timeout=timeout)[0]


def sweep_metrics(sweep) -> pd.DataFrame:
    """One row per configuration of a :func:`run_sweep` result: its scalar metrics.

    Parameters
    ----------
    sweep : list of list of FoldResult, or dict of label to list of FoldResult
        The result of :func:`run_sweep`.
    """
    from bayescale.evaluate import metrics

    items = sweep.items() if isinstance(sweep, Mapping) else enumerate(sweep)
    rows = {}
    for label, results in items:
        m = metrics(pd.concat([r.predictions for r in results], ignore_index=True))
        row = {k: v for k, v in m.items() if isinstance(v, int | float)}
        row.update({f"coverage_{k}": v for k, v in m["coverage"].items()})
        rows[label] = row
    return pd.DataFrame.from_dict(rows, orient="index")
