"""Where independent jobs run: local processes by default, Dask on a cluster.

:class:`ExecutorConfig` is the ``executor`` section of the configs whose jobs are independent
(labelling).  ``kind``:

* ``"local"``: a process pool on this machine (the caller's own default);
* ``"dask"``: an existing Dask scheduler, by ``address`` (``tcp://host:8786``) or by the path
  of its scheduler file (``dask scheduler --scheduler-file``);
* ``"slurm"``, ``"pbs"``, ``"sge"``, ``"lsf"``: batch jobs started by dask-jobqueue, each a
  Dask worker with one process per core (so BLAS and GPAW run single-threaded, as the local
  pool does); ``jobqueue`` holds the keyword arguments of the dask-jobqueue cluster class
  (``cores``, ``memory``, ``queue``, ``account``, ``walltime``, ``job_script_prologue``, ...)
  and ``jobs`` how many batch jobs to request.

Dask ships in the ``cluster`` extra: ``pip install 'hardcarbon[cluster]'``.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from hardcarbon.errors import InputError
from hardcarbon.settings import Settings

_JOBQUEUE = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster",
             "lsf": "LSFCluster"}
_INSTALL = "Dask is not installed: pip install 'hardcarbon[cluster]'"


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
