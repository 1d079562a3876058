"""Jobs on a local pool or a Dask cluster, labelling there, and dask-jobqueue's batch scripts."""

from __future__ import annotations

import importlib.util
import math
import os
import signal
import subprocess
import sys
import time

import pytest
from ase.build import bulk

from hardcarbon import InputError
from hardcarbon.executors import (
    ExecutorConfig,
    completed,
    dask_client,
    jobqueue_cluster,
    open_executor,
)
from hardcarbon.forcefield.labelling import LabelConfig, label_structures

NEEDS_DASK = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("distributed", "dask_jobqueue")),
    reason="the cluster extra (Dask) is not installed")


def _job(x: float) -> tuple[float, str | None]:
    """A job: its value, and the thread count the worker was pinned to."""
    if x < 0:
        raise ValueError(f"negative input {x}")
    return math.sqrt(x), os.environ.get("OMP_NUM_THREADS")


def _run(config: ExecutorConfig) -> dict:
    jobs = {f"job{i}": (float(x),) for i, x in enumerate((4, 9, -1, 16))}
    out = {}
    with open_executor(config, workers=2) as where:
        for key, future in completed(_job, jobs, where):
            try:
                out[key] = future.result()
            except ValueError as exc:
                out[key] = str(exc)
    return out


def test_local_jobs_come_back_by_key_in_pinned_workers():
    out = _run(ExecutorConfig())
    assert out == {"job0": (2.0, "1"), "job1": (3.0, "1"), "job2": "negative input -1.0",
                   "job3": (4.0, "1")}


_KILLED_RUN = """
import os, time
from hardcarbon.executors import local_pool
pool = local_pool(1)
print(pool.submit(os.getpid).result(), flush=True)
pool.submit(time.sleep, 120)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux mechanism")
def test_local_workers_end_with_a_run_killed_by_sigterm():
    """SIGTERM skips the run's own clean-up; its worker, busy with a job, must end anyway."""
    run = subprocess.Popen([sys.executable, "-c", _KILLED_RUN], stdout=subprocess.PIPE,
                           text=True)
    worker = int(run.stdout.readline())
    assert _alive(worker)
    time.sleep(0.5)  # the worker is inside its 120 s job
    run.send_signal(signal.SIGTERM)
    run.wait(timeout=30)
    deadline = time.monotonic() + 20
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(worker)


@NEEDS_DASK
def test_dask_jobs_come_back_by_key_like_local_ones():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        out = _run(ExecutorConfig(kind="dask", address=cluster.scheduler_address))
    assert {k: v if isinstance(v, str) else v[0] for k, v in out.items()} == {
        "job0": 2.0, "job1": 3.0, "job2": "negative input -1.0", "job3": 4.0}


@NEEDS_DASK
def test_labels_computed_on_a_dask_cluster_match_the_local_ones(tmp_path):
    from distributed import LocalCluster

    cells = []
    for a in (3.50, 3.57, 3.64):  # diamond at three lattice constants: EMT knows carbon
        cell = bulk("C", "diamond", a=a, cubic=True)
        cell.rattle(0.02, seed=int(100 * a))
        cells.append(cell)
    local = label_structures(cells, LabelConfig(calculator="emt", workers=1), tmp_path / "l")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        config = LabelConfig(calculator="emt", executor={"kind": "dask",
                                                         "address": cluster.scheduler_address})
        remote = label_structures(cells, config, tmp_path / "d")
    assert len(remote) == 3
    for a, b in zip(local, remote, strict=True):
        assert a.info["REF_energy"] == pytest.approx(b.info["REF_energy"], abs=1e-10)


@NEEDS_DASK
def test_jobqueue_settings_reach_the_batch_script():
    config = ExecutorConfig(kind="slurm", jobs=2, jobqueue={
        "cores": 8, "memory": "16GB", "queue": "compute", "walltime": "02:00:00",
        "job_script_prologue": ["module load gpaw"], "scheduler_options": {
            "dashboard_address": None}})
    cluster = jobqueue_cluster(config)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH -p compute" in script and "#SBATCH -t 02:00:00" in script
    assert "module load gpaw" in script
    assert "--nworkers 8" in script and "--nthreads 1" in script  # one process per core


@NEEDS_DASK
def test_bad_executor_settings_are_one_line():
    with pytest.raises(InputError, match=r"cores and jobqueue\.memory"):
        jobqueue_cluster(ExecutorConfig(kind="pbs"))
    with pytest.raises(InputError, match="not a batch system"):
        jobqueue_cluster(ExecutorConfig(kind="dask"))
    with pytest.raises(InputError, match="needs address"):
        with dask_client(ExecutorConfig(kind="dask")):
            pass
    with pytest.raises(InputError):
        LabelConfig(executor={"kind": "kubernetes"})
