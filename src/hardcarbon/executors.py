"""Where independent jobs run: local processes by default, Dask on a cluster.

:class:`ExecutorConfig` is the ``executor`` section of the configs whose jobs are independent
(labelling, the reference relaxations of validation).  ``kind``:

* ``"local"``: a ``spawn`` process pool on this machine, each worker pinned to one
  BLAS/OpenMP thread (:func:`local_pool`);
* ``"dask"``: an existing Dask scheduler, by ``address`` (``tcp://host:8786``) or by the path
  of its scheduler file (``dask scheduler --scheduler-file``);
* ``"slurm"``, ``"pbs"``, ``"sge"``, ``"lsf"``: batch jobs started by dask-jobqueue, each a
  Dask worker with one process per core (so BLAS and GPAW run single-threaded, as the local
  pool does); ``jobqueue`` holds the keyword arguments of the dask-jobqueue cluster class
  (``cores``, ``memory``, ``queue``, ``account``, ``walltime``, ``job_script_prologue``, ...)
  and ``jobs`` how many batch jobs to request.

Dask ships in the ``cluster`` extra: ``pip install 'hardcarbon[cluster]'``.

:func:`open_executor` opens either kind, and :func:`completed` submits jobs to it and yields them
as they finish, so a caller writes each result the moment it exists.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import importlib.util
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from hardcarbon.errors import InputError
from hardcarbon.settings import Settings

_JOBQUEUE = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster",
             "lsf": "LSFCluster"}
_INSTALL = "Dask is not installed: pip install 'hardcarbon[cluster]'"
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
_LIMITS: Any = None


class ExecutorConfig(Settings):
    """Where the jobs of a command run (see the module docstring)."""

    kind: Literal["local", "dask", "slurm", "pbs", "sge", "lsf"] = "local"
    address: str | None = Field(None, description="Dask scheduler address or scheduler file")
    jobs: int = Field(1, ge=1, description="batch jobs to request (jobqueue kinds)")
    jobqueue: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of the dask-jobqueue cluster")


def jobqueue_cluster(config: ExecutorConfig) -> Any:
    """The dask-jobqueue cluster of ``config`` (not yet scaled), one process per core."""
    if config.kind not in _JOBQUEUE:
        raise InputError(f"executor kind {config.kind} is not a batch system: use one of "
                         f"{', '.join(_JOBQUEUE)}")
    if importlib.util.find_spec("dask_jobqueue") is None:
        raise InputError(_INSTALL)
    import dask_jobqueue

    options = dict(config.jobqueue)
    if "cores" not in options or "memory" not in options:
        raise InputError(f"executor {config.kind} needs jobqueue.cores and jobqueue.memory "
                         "(per batch job, e.g. cores: 32, memory: 64GB)")
    options.setdefault("processes", options["cores"])  # one single-threaded worker per core
    try:
        return getattr(dask_jobqueue, _JOBQUEUE[config.kind])(**options)
    except TypeError as exc:
        raise InputError(f"executor {config.kind}: {exc}") from None


@contextlib.contextmanager
def dask_client(config: ExecutorConfig) -> Iterator[Any]:
    """A ``distributed.Client`` for ``config`` (``kind`` not ``"local"``), closed on exit."""
    if importlib.util.find_spec("distributed") is None:
        raise InputError(_INSTALL)
    from distributed import Client

    cluster = None
    if config.kind == "dask":
        if not config.address:
            raise InputError("executor kind dask needs address: the scheduler's tcp:// "
                             "address or its scheduler file")
        target = config.address
        try:
            client = (Client(scheduler_file=target, timeout="30s") if Path(target).is_file()
                      else Client(target, timeout="30s"))
        except OSError as exc:
            raise InputError(f"cannot reach the Dask scheduler {target} ({exc})") from None
    else:
        cluster = jobqueue_cluster(config)
        cluster.scale(jobs=config.jobs)
        client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def pin_threads() -> None:
    """One BLAS/OpenMP thread in this process (worker initializer; tasks may call it too).

    The environment variables act on libraries loaded later (GPAW's OpenBLAS, torch);
    threadpoolctl, when installed, limits those already loaded (numpy's OpenBLAS).
    """
    global _LIMITS
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    _LIMITS = threadpool_limits(limits=1)


def end_with_parent(parent: int) -> None:
    """Have Linux send this process SIGTERM when ``parent`` (the pid that started it) ends.

    A run killed with SIGTERM skips its ``finally`` blocks, so its pool never shuts down and
    a worker would go on with its structure (a GPAW job: many minutes on a core).  Linux's
    ``prctl(PR_SET_PDEATHSIG)`` is the only way to tie a child to its parent's life; the
    standard library has no wrapper for it, hence ctypes.  Elsewhere this does nothing.
    Linux ties the signal to the *thread* that started the worker: the pool must be used
    from a thread that outlives it, as every caller here does (the pool lives in a ``with``
    block or a ``try``/``finally`` of the submitting thread).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent ended before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _start_worker(parent: int) -> None:
    end_with_parent(parent)
    pin_threads()


def local_pool(workers: int) -> cf.ProcessPoolExecutor:
    """``workers`` fresh (``spawn``) processes, each pinned to one BLAS/OpenMP thread.

    The workers end with the process that opened the pool, however it ends (SIGTERM and
    SIGKILL included), so an interrupted run leaves no job running (:func:`end_with_parent`).
    """
    return cf.ProcessPoolExecutor(max_workers=workers, initializer=_start_worker,
                                  initargs=(os.getpid(),),
                                  mp_context=multiprocessing.get_context("spawn"))


@contextlib.contextmanager
def open_executor(config: ExecutorConfig, workers: int) -> Iterator[Any]:
    """Where ``config`` says jobs run: a :func:`local_pool` of ``workers``, or a Dask client.

    Either is shut down on exit.  ``workers`` matters only for ``kind="local"``.
    """
    if config.kind == "local":
        with local_pool(workers) as pool:
            yield pool
    else:
        with dask_client(config) as client:
            yield client


def failure_reason(exc: BaseException) -> str:
    """One line naming a job's failure: the exception type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def completed(fn: Callable[..., Any], jobs: Mapping[Hashable, Sequence[Any]], where: Any
              ) -> Iterator[tuple[Hashable, Any]]:
    """Submit ``fn(*args)`` for each ``key: args`` of ``jobs`` to ``where``.

    ``where`` is anything with ``submit(fn, *args)`` returning a future (a process pool, a
    ``dask.distributed.Client``).  Yields ``(key, future)`` in the order the jobs finish;
    ``future.result()`` returns the value or raises the job's exception.
    """
    futures = {where.submit(fn, *args): key for key, args in jobs.items()}
    for future in _as_completed(list(futures)):
        yield futures[future], future


def _as_completed(futures: list[Any]) -> Iterator[Any]:
    if all(isinstance(f, cf.Future) for f in futures):
        return cf.as_completed(futures)
    try:
        from distributed import as_completed
    except ImportError:
        return iter(futures)
    try:
        return iter(as_completed(futures))
    except Exception:  # futures of another kind: wait for them in order
        return iter(futures)
