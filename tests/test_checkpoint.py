"""Checkpoint and resume: atomic files, bit-identical continuation for every model, precision,
optimizer and step rule, Ctrl-C saves. (The file format's safety: test_checkpoint_format.py.)"""

import pickle

import numpy as np
import pytest
from conftest import ctrl_c_while_running, random_separable

import fastbias as fb
from fastbias.models import Convolutional, Diagonal, FullyConnected, LowRank, Network, Tensor

pytestmark = pytest.mark.filterwarnings("ignore:the initialization does not satisfy")


def _assert_same_run(resumed, straight):
    """Same parameters bit for bit (final and at the steps both recorded); the diagnostics
    derived from them agree to round-off (BLAS may block the history's products by rows)."""
    for a, b in zip(resumed.params, straight.params, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(resumed.coef, straight.coef)
    common, ia, ib = np.intersect1d(
        resumed.history["step"], straight.history["step"], return_indices=True
    )
    assert len(common) >= len(straight.history) - 1
    np.testing.assert_array_equal(resumed.history.iterates[ia], straight.history.iterates[ib])
    for col in straight.history.columns:
        np.testing.assert_allclose(
            resumed.history[col][ia], straight.history[col][ib], rtol=1e-13, atol=1e-300
        )


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(loss="logistic", step_rule="normalized", lr=0.1),
        dict(precision="extended"),
        dict(precision="compensated"),
        dict(model=Diagonal(2), init="yun", lr=0.01),
        dict(model=FullyConnected([4]), step_rule="loss-scaled", lr=1e-3),
        dict(model=Convolutional(2), lr=0.01),
        dict(loss="squared", model=Diagonal(3), lr=0.01),
        dict(model=Tensor.diagonal(6, 2), lr=0.01),
        dict(model=Tensor.diagonal(6, 3), precision="extended", lr=0.01),
        dict(model=Diagonal(2), precision="extended", lr=0.01),
        dict(model=Convolutional(2), precision="compensated", lr=0.01),
        dict(model=Network.fully_connected(6, [3]), lr=0.01),
        dict(model=Network.fully_connected(6, [3]), precision="compensated", lr=0.01),
        dict(model=LowRank(2, (3, 2)), lr=0.01),
        dict(optimizer="momentum", optimizer_options={"beta": 0.5}),
        dict(optimizer="sgd", optimizer_options={"batch_size": 4}, seed=3),
        dict(optimizer="adam"),
        dict(optimizer="adagrad", model=Diagonal(2)),
        dict(optimizer="coordinate"),
        dict(step_rule="loss-scaled-backtracking", model=FullyConnected([3]), lr=0.01),
    ],
    ids=[
        "linear",
        "normalized",
        "extended",
        "compensated",
        "diagonal",
        "fc-loss-scaled",
        "conv",
        "squared",
        "tensor",
        "tensor-extended",
        "diagonal-extended",
        "conv-compensated",
        "relu-network",
        "relu-network-compensated",
        "lowrank",
        "momentum",
        "sgd",
        "adam",
        "adagrad",
        "coordinate",
        "backtracking",
    ],
)
def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, kw):
    if kw.get("loss") == "squared":
        rng = np.random.default_rng(0)
        X, y = rng.standard_normal((5, 8)), rng.standard_normal(5)
    else:
        X, y = random_separable(20, 6, seed=1)
    path = tmp_path / "run.ckpt"
    first = fb.train(X, y, steps=700, checkpoint=path, **kw)
    assert first.status == "completed" and path.exists()
    resumed = fb.resume(path, steps=1800)
    assert resumed.steps_done == 2500 and resumed.settings["steps"] == 2500
    straight = fb.train(X, y, steps=2500, **kw)
    _assert_same_run(resumed, straight)
    # The resumed history also keeps the row at the end of the first leg.
    assert 700 in resumed.history["step"]
    # The checkpoint was updated by resume: resuming it again continues from step 2500.
    again = fb.resume(path, steps=500)
    _assert_same_run(again, fb.train(X, y, steps=3000, **kw))


def test_ctrl_c_writes_a_checkpoint_that_finishes_the_run(tmp_path):
    X, y = fb.datasets.soudry2018()
    path = tmp_path / "long.ckpt"
    total = 3 * 10**8
    with ctrl_c_while_running():
        run = fb.train(X, y, steps=total, lr=0.05, chunk_seconds=0.05, checkpoint=path)
    assert run.status == "interrupted" and 0 < run.steps_done < total
    spec, state = fb.optim.checkpoint.load_checkpoint(path)
    assert state.done == run.steps_done and spec.steps == total
    # Continue for a few more steps only (the whole rest would take seconds): still exact.
    more = 1000
    resumed = fb.resume(path, steps=more)
    straight = fb.train(X, y, steps=run.steps_done + more, lr=0.05)
    np.testing.assert_array_equal(resumed.coef, straight.coef)


def test_resume_without_steps_finishes_the_original_target(tmp_path):
    X, y = random_separable(15, 4, seed=3)
    path = tmp_path / "part.ckpt"
    state_run = fb.train(X, y, steps=300, checkpoint=path)
    spec, state = fb.optim.checkpoint.load_checkpoint(path)
    # Rewind the stored target as if the run had been stopped at step 300 of 1000.
    spec = spec.continued(state.done, 700)
    assert spec.steps == 1000 and spec.settings["steps"] == 1000
    fb.optim.checkpoint.save_checkpoint(path, spec, state.resized(spec))
    done = fb.resume(path)
    assert state_run.steps_done == 300 and done.steps_done == 1000
    np.testing.assert_array_equal(done.coef, fb.train(X, y, steps=1000).coef)


def test_frequent_checkpoints_change_nothing_and_leave_no_temp_files(tmp_path):
    X, y = random_separable(30, 5, seed=4)
    path = tmp_path / "often.ckpt"
    run = fb.train(X, y, steps=200_000, chunk_seconds=0.002, checkpoint=path, checkpoint_every=1e-6)
    np.testing.assert_array_equal(run.coef, fb.train(X, y, steps=200_000).coef)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["often.ckpt"]


def test_checkpoint_errors(tmp_path):
    X, y = random_separable(10, 3, seed=5)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fb.resume(tmp_path / "missing.ckpt")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a fastbias checkpoint"):
        fb.resume(bad)
    other = tmp_path / "other.ckpt"
    other.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(ValueError, match="not a fastbias checkpoint"):
        fb.resume(other)
    with pytest.raises(FileNotFoundError, match="folder"):
        fb.train(X, y, steps=10, checkpoint=tmp_path / "nope" / "run.ckpt")
    with pytest.raises(ValueError, match="checkpoint_every"):
        fb.train(X, y, steps=10, checkpoint=tmp_path / "a.ckpt", checkpoint_every=0)
    fb.train(X, y, steps=10, checkpoint=tmp_path / "ok.ckpt")
    with pytest.raises(ValueError, match="steps"):
        fb.resume(tmp_path / "ok.ckpt", steps=0)
