"""fastbias.sweep: grids of runs on threads and on a real Dask cluster of worker processes."""

import contextlib
import os
import signal
import threading
import time

import numpy as np
import pytest

import fastbias as fb
from fastbias.optim.checkpoint import load_checkpoint

pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def data():
    return fb.datasets.soudry2018()


def test_every_run_is_fastbias_train(data):
    X, y = data
    grid = {"lr": [0.01, 0.05], "seed": [0, 1]}
    df, runs = fb.sweep(grid, X, y, steps=500, return_runs=True)
    assert sorted(df["run"].unique()) == [0, 1, 2, 3]
    for k, (lr, seed) in enumerate([(0.01, 0), (0.01, 1), (0.05, 0), (0.05, 1)]):
        ref = fb.train(X, y, lr=lr, seed=seed, steps=500)
        np.testing.assert_array_equal(runs[k].coef, ref.coef)
        part = df[df["run"] == k]
        assert (part["lr"] == lr).all() and (part["seed"] == seed).all()
        np.testing.assert_array_equal(part["step"].to_numpy(), ref.history["step"])
        np.testing.assert_array_equal(part["angle_gap"].to_numpy(), ref.history["angle_gap"])
    assert (df["status"] == "completed").all() and (df["resumed_at_step"] == 0).all()
    assert list(df.columns[:3]) == ["run", "lr", "seed"]


def test_depth_and_model_axes(data):
    X, y = data
    grid = {"model": ["diag", "conv"], "depth": [2, 3]}
    df, runs = fb.sweep(grid, X, y, steps=200, init="yun", init_scale=0.5, return_runs=True)
    assert [r.model.depth for r in runs] == [2, 3, 2, 3]
    assert [repr(r.model) for r in runs] == [
        repr(fb.models.get_model(m)) for m in ("diag:2", "diag:3", "conv:2", "conv:3")
    ]
    assert df.groupby("run")["model"].first().tolist() == ["diag", "diag", "conv", "conv"]
    # each run as train gives it: no shared L2 reference forced onto the diagonal model
    ref = fb.train(X, y, model="diag:3", steps=200, init="yun", init_scale=0.5)
    np.testing.assert_array_equal(runs[1].coef, ref.coef)
    assert "angle_gap" not in ref.history and "angle_gap" not in df.columns
    assert fb.sweep({"model": ["fc:3"], "depth": [3]}, X, y, steps=5)["model"].iloc[0] == "fc:3"
    with pytest.raises(ValueError, match="depth=2 cannot be applied to model 'fc:3,4'"):
        fb.sweep({"depth": [2]}, X, y, model="fc:3,4", steps=5)


def test_failed_runs_are_recorded_or_raised(data):
    X, y = data
    # least squares with a step above 2 / sigma_max(X)^2 diverges
    df = fb.sweep({"lr": [0.01, 10.0]}, X, y, loss="squared", steps=200)
    status = df.groupby("run")["status"].first()
    assert status[0] == "completed" and status[1].startswith("failed: DivergenceError: ")
    failed = df[df["run"] == 1]
    assert len(failed) == 1 and np.isnan(failed["loss"]).all()
    # the failed run's row still says what it was asked to do
    assert failed["model"].iloc[0] == "Linear()" and failed["steps"].iloc[0] == 200
    assert failed["loss_function"].iloc[0] == "squared" and failed["lr"].iloc[0] == 10.0
    with pytest.raises(fb.DivergenceError):
        fb.sweep({"lr": [0.01, 10.0]}, X, y, loss="squared", steps=200, errors="raise")


@pytest.mark.parametrize(
    ("grid", "kwargs", "message"),
    [
        ({"lr": 0.1}, {}, r"grid\['lr'\] must be a list"),
        ({"lr": []}, {}, r"grid\['lr'\] is empty"),
        ({}, {}, "grid is empty"),
        ({"stpes": [1]}, {}, "Unknown sweep argument 'stpes'"),
        ({"lr": [0.1]}, {"checkpoint": "x"}, "checkpoint_dir"),
        ({"lr": [0.1]}, {"lr": 0.2}, "both grid axes and common"),
        ({"lr": [0.1]}, {"errors": "ignore"}, "errors must be"),
        ({"lr": [0.1]}, {"batch_size": 0}, "batch_size must be >= 1"),
        ({"depth": [0]}, {"model": "diag"}, "depth must be an int >= 1"),
    ],
)
def test_bad_sweeps_are_named(data, grid, kwargs, message):
    X, y = data
    with pytest.raises(ValueError, match=message):
        fb.sweep(grid, X, y, steps=10, **kwargs)


def test_checkpoints_make_a_sweep_resumable(data, tmp_path):
    X, y = data
    grid = [{"lr": 0.02}, {"lr": 0.05, "steps": 800}]
    first = fb.sweep(grid, X, y, steps=600, checkpoint_dir=tmp_path)
    assert len(list(tmp_path.glob("run-*.ckpt"))) == 2
    again = fb.sweep(grid, X, y, steps=600, checkpoint_dir=tmp_path)  # read back, not rerun
    assert again.groupby("run")["resumed_at_step"].first().tolist() == [600, 800]
    pd.testing.assert_frame_equal(
        first.drop(columns="resumed_at_step"), again.drop(columns="resumed_at_step")
    )
    # a damaged checkpoint is run again from the start
    next(tmp_path.glob("run-*.ckpt")).write_bytes(b"not a checkpoint")
    third = fb.sweep(grid, X, y, steps=600, checkpoint_dir=tmp_path)
    pd.testing.assert_frame_equal(
        first.drop(columns="resumed_at_step"), third.drop(columns="resumed_at_step")
    )


# ---- on a real Dask cluster: two worker processes with one thread each ----------------------

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=50,  # the killed worker's tracebacks are expected
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def test_cluster_results_equal_local_results(data, client, tmp_path):
    X, y = data
    grid = {"lr": [0.01, 0.05], "seed": [0, 1], "model": ["linear", "diag:2"]}
    local = fb.sweep(grid, X, y, steps=400, init_scale=0.5)
    remote = fb.sweep(grid, X, y, steps=400, init_scale=0.5, client=client, batch_size=3)
    pd.testing.assert_frame_equal(local, remote)
    pids = set(client.run(os.getpid).values())
    assert len(pids) == 2 and os.getpid() not in pids  # really other processes
    # failures come back as rows from the workers too
    bad = fb.sweep({"lr": [0.01, 10.0]}, X, y, loss="squared", steps=100, client=client)
    assert bad.groupby("run")["status"].first()[1].startswith("failed: DivergenceError")


def test_killed_worker_resumes_from_its_checkpoint(data, client, tmp_path):
    X, y = data
    grid = {"lr": [0.02, 0.03, 0.04, 0.05]}
    common = dict(steps=2 * 10**7, chunk_seconds=0.02)  # ~1 s per run on a quiet machine
    box = {}

    def run_sweep():
        try:
            box["df"] = fb.sweep(
                grid, X, y, client=client, batch_size=1, checkpoint_dir=tmp_path,
                checkpoint_every=0.05, **common,
            )  # fmt: skip
        except BaseException as exc:  # surfaced below
            box["error"] = exc

    thread = threading.Thread(target=run_sweep)
    thread.start()

    def runs_in_progress():
        steps = []
        for path in tmp_path.glob("run-*.ckpt"):
            try:
                steps.append(int(load_checkpoint(path)[1].done))
            except Exception:  # replaced while we read it
                pass
        return sum(0 < step < common["steps"] for step in steps)

    # Freeze both workers at a moment when each is inside a run that has a checkpoint (one
    # thread each, one run per task: two unfinished checkpoints are their two current runs),
    # so the run on the worker we kill is sure to have a checkpoint to continue from.
    pids = client.run(os.getpid)
    deadline = time.monotonic() + 60
    try:
        while True:
            for pid in pids.values():
                os.kill(pid, signal.SIGSTOP)
            both = runs_in_progress() == 2
            if both or time.monotonic() > deadline:
                break
            for pid in pids.values():
                os.kill(pid, signal.SIGCONT)
            time.sleep(0.02)
        assert both, "the workers never ran two checkpointed runs at once"
        # kill the one holding the sweep's data, so Dask must also compute the data again
        # for the batches still to run (data scattered to that worker were lost with it)
        holders = {w for key, ws in client.who_has().items() if "_data_pair" in key for w in ws}
        victim = next((w for w in pids if w in holders), next(iter(pids)))
        os.kill(pids[victim], signal.SIGKILL)
    finally:
        for pid in pids.values():
            # the killed one too: a no-op while it is a zombie, but its nanny reaps it within
            # ~40 ms, and then its pid is gone (ProcessLookupError would leave the other one
            # stopped, and the sweep hung)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    thread.join(timeout=120)
    assert not thread.is_alive() and "error" not in box, box.get("error")
    df = box["df"]
    assert sorted(df["run"].unique()) == [0, 1, 2, 3]
    assert (df["status"] == "completed").all()
    resumed = df.groupby("run")["resumed_at_step"].first()
    assert (resumed > 0).any(), "no run continued from a checkpoint"
    # a finished run whose batch result died with the worker is read back from its checkpoint
    assert (resumed <= common["steps"]).all()
    local = fb.sweep(grid, X, y, **common)
    pd.testing.assert_frame_equal(
        local.drop(columns="resumed_at_step"), df.drop(columns="resumed_at_step")
    )
