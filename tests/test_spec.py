"""The RunSpec pipeline (issue 14): build_spec -> plan -> execute, and the spec as a value."""

import dataclasses
import pickle

import numpy as np
import pytest
from conftest import random_separable

import fastbias as fb
from fastbias.models import Diagonal, FullyConnected, LowRank, Network
from fastbias.optim import RunSpec, build_spec, execute, plan
from fastbias.optim.planner import TABLE, kernel_table

pytestmark = pytest.mark.filterwarnings("ignore:the initialization does not satisfy")


def test_a_spec_is_frozen_and_owns_its_arrays():
    X, y = random_separable(20, 4, seed=0)
    X_before = X.copy()
    spec = build_spec(X, y, steps=100)
    assert isinstance(spec, RunSpec) and fb.RunSpec is RunSpec
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.lr = 1.0
    for name in ("X", "y", "theta0", "schedule"):
        arr = getattr(spec, name)
        assert not arr.flags.writeable
        assert not np.shares_memory(arr, X)
    X[0, 0] = 99.0  # the caller's array is theirs: the spec does not change with it
    np.testing.assert_array_equal(spec.X, X_before)
    assert X.flags.writeable


def test_pickled_specs_run_bit_for_bit_like_train():
    """What a Dask worker does: unpickle a spec and execute it."""
    X, y = random_separable(30, 5, seed=1)
    for kw in (
        dict(steps=500),
        dict(model=Diagonal(2), steps=500, lr=0.01, precision="compensated"),
        dict(model=LowRank(2, (5, 1)), steps=300, lr=0.01, optimizer="momentum"),
    ):
        spec = build_spec(X, y, **kw)
        blob = pickle.dumps(spec)
        # cheap: the data plus a few vectors (and the reference's copy of the data)
        assert len(blob) < 3 * (X.nbytes + y.nbytes) + 20_000
        remote = execute(pickle.loads(blob))
        local = fb.train(X, y, **kw)
        np.testing.assert_array_equal(remote.coef, local.coef)
        np.testing.assert_array_equal(remote.history.iterates, local.history.iterates)
        assert remote.settings == local.settings


@pytest.mark.parametrize(
    "build, kernel",
    [
        (lambda X, y: build_spec(X, y), "model"),
        (lambda X, y: build_spec(X, y, model=Diagonal(2), precision="extended"), "model"),
        (lambda X, y: build_spec(X, y, model=Network.fully_connected(5, [3])), "network"),
        (lambda X, y: build_spec(X, y, optimizer="adam"), "optimizer"),
        (lambda X, y: build_spec(X, y, step_rule="loss-scaled-backtracking"), "backtracking"),
        (lambda X, y: build_spec(X, y, optimizer="flow", t_max=10.0), "flow"),
        (
            lambda X, y: build_spec(X, (y > 0) + np.arange(len(y)) % 2, loss="cross-entropy"),
            "multiclass",
        ),
    ],  # fmt: skip
)
def test_the_kernel_table_routes_each_kind_of_run(build, kernel):
    X, y = random_separable(12, 5, seed=2)
    p = plan(build(X, y))
    assert p.kernel == kernel and TABLE[p.row][-1] == kernel
    assert kernel in kernel_table()


def test_continued_keeps_the_recorded_steps():
    X, y = random_separable(10, 3, seed=3)
    spec = build_spec(X, y, steps=100, record=[5, 50])
    more = spec.continued(done=100, more=100)  # the end of the first leg stays recorded
    assert more.steps == 200 and more.settings["steps"] == 200
    np.testing.assert_array_equal(more.schedule, [5, 50, 100, 200])
    early = spec.continued(done=60, more=140)  # (a run stopped at 60 recorded 5 and 50)
    np.testing.assert_array_equal(early.schedule, [5, 50, 200])
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        spec.continued(done=60, more=0)


def test_build_spec_is_where_the_errors_come_from():
    X, y = random_separable(10, 3, seed=4)
    with pytest.raises(ValueError, match="Unknown loss 'hinge'"):
        build_spec(X, y, loss="hinge")
    with pytest.raises(ValueError, match="precision='extended' is available for Linear"):
        build_spec(X, y, model=Network.fully_connected(3, [2]), precision="extended")
    with pytest.raises(ValueError, match="does not compose with optimizer='adam'"):
        build_spec(X, y, optimizer="adam", step_rule="normalized")
    with pytest.raises(ValueError, match="rtol must be in"):
        build_spec(X, y, optimizer="flow", optimizer_options={"rtol": 1.0})
    with pytest.raises(ValueError, match="gradient flow"):
        fb.train(X, y, optimizer="flow")
    with pytest.raises(ValueError, match="multi-class"):
        fb.train(X, y, loss="cross-entropy")


def test_the_reference_is_solved_once_per_data_set():
    X, y = random_separable(25, 4, seed=5)
    a = fb.train(X, y, steps=10, model=FullyConnected([3]), lr=1e-3)
    b = fb.train(X.copy(), y.copy(), steps=10)  # equal content, other arrays: same solution
    assert a.reference is b.reference
    assert not a.reference.coef.flags.writeable  # shared by runs: read-only
    c = fb.train(X + 1e-3, y, steps=10)  # other data: solved anew
    assert c.reference is not a.reference


def test_w_tilde_of_a_step_size_sweep_comes_from_one_solve(monkeypatch):
    """Theorem 4's w_tilde for step eta is w_tilde(1) + log(eta) w_hat (eq. 2.7 with
    z_n.w_hat = 1 on the support vectors): a sweep over lr solves eq. 2.7 once per data set
    and start, and each spec's w_tilde equals the direct solve for its lr to round-off."""
    from fastbias.references import MaxMarginSolution, w_tilde

    X, y = random_separable(20, 4, seed=11)
    solves = []
    original = MaxMarginSolution.w_tilde

    def counted(self, lr, w0=None):
        solves.append(lr)
        return original(self, lr, w0)

    monkeypatch.setattr(MaxMarginSolution, "w_tilde", counted)
    for lr in (1e-4, 0.01, 0.3, 1.0, 2.5):
        spec = build_spec(X, y, steps=10, lr=lr)
        direct = w_tilde(X, y, lr, w0=np.zeros(4))
        np.testing.assert_allclose(spec.w_tilde, direct, rtol=0, atol=1e-13 * np.abs(direct).max())
        # eq. 2.7 itself: eta exp(-z_n.w_tilde) = alpha_n on the support vectors
        S, alpha = spec.reference.support, spec.reference.dual
        Z = X * y[:, None]
        np.testing.assert_allclose(lr * np.exp(-Z[S] @ spec.w_tilde), alpha[S], rtol=1e-12)
    assert solves == [1.0]


def test_w_tilde_path_does_not_depend_on_other_entries_of_the_cache(monkeypatch):
    """A run's w_tilde takes the shared w_tilde(1) path whenever its reference is the solution
    resolved for its data, even if other threads' results evicted that solution from the
    cache meanwhile (here: a cache that keeps nothing), so it is the same bits either way."""
    import fastbias.optim.reference as reference

    X, y = random_separable(20, 4, seed=12)
    want = build_spec(X, y, steps=10, lr=0.3).w_tilde
    monkeypatch.setattr(reference, "_CACHE", type(reference._CACHE)())
    monkeypatch.setattr(reference, "_CACHE_SIZE", 0)
    solves = []
    original = reference._w_tilde_at

    def counted(*args):
        solves.append(args[1])
        return original(*args)

    monkeypatch.setattr(reference, "_w_tilde_at", counted)
    got = build_spec(X, y, steps=10, lr=0.3).w_tilde
    assert solves == [0.3]  # the shared path, though nothing stayed cached
    assert got.tobytes() == want.tobytes()


def _start_fields(spec):
    return (spec.safe_lr, spec.floor, spec.log_loss0)


def test_start_is_kept_per_model_start_data_and_loss():
    """spec._start keeps a run's start (safe step, divergence bound, initial log-loss) by the
    model's type and constructor arguments, theta0's bytes, the data and the loss: a kept
    start equals a fresh one, and any change of those gives the fresh value of the new run."""
    from fastbias.models import Convolutional
    from fastbias.optim import spec as spec_module

    X, y = random_separable(30, 6, seed=3)

    def fresh(*args, **kw):
        spec_module._START_CACHE.clear()
        return _start_fields(build_spec(*args, **kw))

    rng = np.random.default_rng(0)
    layers = [rng.standard_normal(6), rng.standard_normal(6)]
    cases = [
        (X, y, dict(model=Diagonal(2), init=layers)),
        (X, y, dict(model=Convolutional(2), init=layers)),  # same theta0 bytes, other map
        (X, y, dict(model=Convolutional(2, [3]), init=[layers[0][:3], layers[1]])),
        (X, y, dict(model=Diagonal(2), init=layers, loss="logistic")),
        (X, y, dict(model=Diagonal(2), init=layers, init_scale=2.0)),
        (X, y, dict(model=Diagonal(2), init=layers, lr=0.5, steps=3)),  # the same start
        (X * 2.0, y, dict(model=Diagonal(2), init=layers)),
        (X, -y, dict(model=Diagonal(2), init=layers)),
        (X, X @ np.ones(6), dict(model=Diagonal(2), init=layers, loss="squared")),
        (X, y, dict(model=FullyConnected([3]), seed=1)),
        (X, y, dict(model=FullyConnected([3]), seed=2)),
        (X, y, dict(model="linear")),
    ]
    expected = [fresh(Xc, yc, **kw) for Xc, yc, kw in cases]
    assert len({e for e in expected}) == len(expected) - 1  # (only the lr/steps case repeats)
    spec_module._START_CACHE.clear()
    for _ in range(2):  # first computed and kept, then read back
        for (Xc, yc, kw), want in zip(cases, expected, strict=True):
            assert _start_fields(build_spec(Xc, yc, **kw)) == want
    # a model changed after use has another key
    model = Convolutional(2, [3])
    init = [layers[0][:3], layers[1]]
    build_spec(X, y, model=model, init=init)
    model.kernel_sizes = (6,)
    assert _start_fields(build_spec(X, y, model=model, init=layers)) == fresh(
        X, y, model=Convolutional(2), init=layers
    )


def test_start_warns_on_every_call():
    """A kept start still warns that the convergence condition fails, on each call."""
    X, y = random_separable(20, 4, seed=2)
    init = [np.array([1.0, -1.0, 0.5, 0.2]), np.array([0.1, 2.0, -0.3, 1.0])]
    for _ in range(3):
        with pytest.warns(UserWarning, match="sufficient convergence condition"):
            build_spec(X, y, model=Diagonal(2), init=init)


def test_start_of_a_large_model_is_not_kept():
    """A theta0 (or model array) over 256 KiB is no key: such starts are not kept."""
    from fastbias.optim import spec as spec_module

    X, y = random_separable(10, 4, seed=5)
    spec_module._START_CACHE.clear()
    build_spec(X, y, model=FullyConnected([8]))
    assert len(spec_module._START_CACHE) == 1
    build_spec(X, y, model=FullyConnected([8000]), steps=2)  # 40 000 parameters, 320 KB
    assert len(spec_module._START_CACHE) == 1


def test_concurrent_first_solves_share_the_result_stored_first():
    """Two threads that miss the reference cache at once both compute, and both must get the
    same object: resolve_reference takes Theorem 4's w_tilde from the cached eta = 1 solve only
    when its max-margin solution *is* the cached one, and otherwise solves directly, which
    differs in the last bits (theorem4_residual_norm of 17 of 20 data sets). A thread whose
    solution had been replaced in the cache by the other's got a different history."""
    import threading

    from fastbias.optim.reference import solve_once

    key = ("test-concurrent-first-solves", threading.get_ident())
    inside = threading.Barrier(2, timeout=60)

    def compute():
        inside.wait()  # both threads are computing: neither found a cached value
        return object()

    got = [None, None]

    def call(i):
        got[i] = solve_once(key, compute)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got[0] is not None and got[0] is got[1]
    assert solve_once(key, object) is got[0]  # the cached value
