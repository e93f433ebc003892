"""Optimizers other than GD (Soudry et al. 2018, Sections 3-4, Appendix E).

* every compiled optimizer against the NumPy reference loop of ``_reference_optim``, step for
  step, for several models, losses and step rules (SGD through the same index sequence); the
  reference itself against textbook formulas written out here;
* chunked runs and saved/restored state are bit-identical to one uninterrupted call;
* the papers' behaviour: momentum (Fig. 3.1) and SGD (Fig. E.1) keep the L2 max-margin bias,
  Adam does not (Fig. 4.1), greedy coordinate descent approaches the L1 max-margin direction
  (Section 4.2, checked against scipy's LP solver);
* bad input gives clear errors.
"""

import numpy as np
import pytest
from conftest import KERNEL_RTOL, random_separable
from scipy.optimize import linprog

import fastbias as fb
from fastbias.diagnostics import angle_gap
from fastbias.kernels import STATUS_DIVERGED, STATUS_OK, STEP_RULE_CODES, _numba_optim
from fastbias.kernels import _reference_optim as ref
from fastbias.models import Convolutional, Diagonal, FullyConnected, Linear, Tensor
from fastbias.optim.optimizers import (
    OPTIMIZERS,
    check_optimizer,
    default_optimizer_lr,
    make_optimizer_runner,
)

NO_RECORD = (np.zeros(0, dtype=np.int64), np.zeros((0, 1)), -1e300)  # + the floor


def _problem(model, n=12, d=5, seed=0, scale=0.5):
    X, y = random_separable(n, d, seed)
    Z = np.ascontiguousarray(X * y[:, None])
    params = model.init_params(d, "gaussian", scale, seed + 1)
    return Z, model.flatten(params)


def _reference_run(model, Z, targets, theta0, lr, loss, rule, steps, sched, runner):
    """The NumPy reference loop with the runner's optimizer code and hyperparameters."""
    d = Z.shape[1]

    def predictor(theta):
        return model.predictor(model.unflatten(theta, d))

    def vjp(theta, G):
        return model.flatten(model.vjp(model.unflatten(theta, d), G))

    theta = theta0.copy()
    p = theta.size
    rec = np.zeros((sched.size, p))
    vel, sq, scale = np.zeros(p), np.zeros(p), np.full(1, -np.inf)
    status = ref.optimizer_model(
        predictor, vjp, Z, targets, theta, lr, loss, rule, 0, steps, sched, rec, -1e300,
        runner._code, runner._hyper, runner._batch, runner._seed, vel, sq, scale,
    )  # fmt: skip
    return status, theta, rec


def _compiled_run(runner, theta0, lr, rule, steps, sched, chunks=1):
    theta = theta0.copy()
    rec = np.zeros((sched.size, theta.size))
    bounds = np.linspace(0, steps, chunks + 1).astype(int)
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        a, b = np.searchsorted(sched, [lo + 1, hi + 1])
        status = runner(theta, lr, rule, lo, hi - lo, sched[a:b], rec[a:b], -1e300)
        assert status == (STATUS_OK, hi)
    return theta, rec


# ---------------------------------------------------------------------------------------------
# The SGD index sequence


@pytest.mark.parametrize("seed", [0, 1, 2**62 + 12345])
def test_epoch_permutation_numba_matches_numpy(seed):
    for epoch in (0, 1, 7, 10**9):
        for n in (1, 2, 3, 16, 101):
            fast = np.empty(n, dtype=np.int64)
            _numba_optim.epoch_permutation(seed, epoch, fast)
            slow = ref.epoch_permutation(seed, epoch, n)
            np.testing.assert_array_equal(fast, slow)
            np.testing.assert_array_equal(np.sort(fast), np.arange(n))


def test_epoch_permutations_differ_between_epochs_and_seeds():
    perms = {tuple(ref.epoch_permutation(s, e, 20)) for s in range(3) for e in range(3)}
    assert len(perms) == 9


def test_batch_indices_cover_each_epoch_once():
    n, batch = 10, 3  # batches straddle epoch boundaries (30 positions = 3 epochs)
    stream = np.concatenate([ref.batch_indices(5, t, batch, n) for t in range(10)])
    for e in range(3):
        np.testing.assert_array_equal(stream[e * n : (e + 1) * n], ref.epoch_permutation(5, e, n))


def test_splitmix64_known_values():
    # splitmix64 with state 0: the first outputs of the reference C implementation
    # (Vigna, prng.di.unimi.it/splitmix64.c), whose output function is applied to
    # 0x9E3779B97F4A7C15 * k for k = 1, 2.
    out = ref.splitmix64(np.array([0, 0x9E3779B97F4A7C15], dtype=np.uint64))
    assert out[0] == np.uint64(0xE220A8397B1DCDAF)
    assert out[1] == np.uint64(0x6E789E6AA1B965F4)
    assert _numba_optim.splitmix64(np.uint64(0)) == np.uint64(0xE220A8397B1DCDAF)
    # and against Python's arbitrary-precision integers for random counters
    mask = (1 << 64) - 1

    def mix(x):
        z = (x + 0x9E3779B97F4A7C15) & mask
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    xs = np.random.default_rng(0).integers(0, 2**63, 50, dtype=np.uint64) * np.uint64(2)
    np.testing.assert_array_equal(
        ref.splitmix64(xs), np.array([mix(int(x)) for x in xs], dtype=np.uint64)
    )


# ---------------------------------------------------------------------------------------------
# Compiled kernels against the NumPy reference, step for step

CASES = [
    ("momentum", {"beta": 0.9}, "fixed"),
    ("momentum", {"beta": 0.5}, "normalized"),
    ("momentum", {"beta": 0.9}, "loss-scaled"),
    ("sgd", {"batch_size": 5, "seed": 3}, "fixed"),
    ("sgd", {"batch_size": 4, "seed": 11, "momentum": 0.8}, "normalized"),
    ("sgd", {"batch_size": 1, "seed": 2}, "loss-scaled"),
    ("adam", {}, "fixed"),
    # eps = 0 with default betas; with beta1 = 0.5, beta2 = 0.9, eps = 0 the map is chaotic
    # here (two float64 implementations of the textbook formulas drift apart by 1e-3 in 300
    # steps), so no step-for-step comparison is meaningful there.
    ("adam", {"eps": 0.0}, "fixed"),
    ("adam", {"beta1": 0.5, "beta2": 0.99, "eps": 1e-4}, "fixed"),
    ("adagrad", {}, "fixed"),
    ("adagrad", {"eps": 0.1}, "fixed"),
]
MODELS = [Linear(), Diagonal(2), FullyConnected([3])]
LR = {"momentum": 0.02, "sgd": 0.02, "adam": 0.01, "adagrad": 0.05, "coordinate": 0.05}


@pytest.mark.parametrize("loss", [0, 1, 2])
@pytest.mark.parametrize(
    ("optimizer", "options", "rule"), CASES + [("coordinate", {}, "normalized")]
)
def test_linear_kernel_is_the_general_kernel_bit_for_bit(optimizer, options, rule, loss):
    """The linear model runs ``opt_linear`` (its own compiled loop), and every step equals
    ``opt_model``'s for ``kind = KIND_LINEAR`` bit for bit: same gradient, same update."""
    from fastbias.models.registry import gradient_data

    Z, theta0 = _problem(Linear())
    targets = np.random.default_rng(5).normal(size=len(Z)) if loss == 2 else np.zeros(len(Z))
    if rule == "loss-scaled" and loss == 1:
        rule = "fixed"  # logistic does not compose with the loss-scaled rule
    if loss == 2 and rule != "fixed":
        rule = "fixed"
    runner = make_optimizer_runner(Linear(), Z, targets, loss, optimizer, options)
    assert runner._kernel is _numba_optim.opt_linear
    general = make_optimizer_runner(Linear(), Z, targets, loss, optimizer, options)
    kind, ZT, ints, offsets, pos, jidx, vals, net = gradient_data(Linear(), Z)
    general._kernel = _numba_optim.opt_model
    general._before = (kind, ZT, general._before[1])
    general._after = (ints, offsets, pos, jidx, vals, net)
    lr = LR[optimizer] * (0.1 if rule == "loss-scaled" else 1.0)
    sched = np.array([1, 7, 60, 200])
    code = STEP_RULE_CODES[rule]
    theta, rec = _compiled_run(runner, theta0, lr, code, 200, sched, chunks=2)
    theta_g, rec_g = _compiled_run(general, theta0, lr, code, 200, sched, chunks=2)
    assert np.linalg.norm(theta - theta0) > 1e-3  # the run moved
    np.testing.assert_array_equal(theta, theta_g)
    np.testing.assert_array_equal(rec, rec_g)


@pytest.mark.parametrize("model", MODELS, ids=repr)
@pytest.mark.parametrize(("optimizer", "options", "rule"), CASES)
def test_compiled_matches_reference(model, optimizer, options, rule):
    Z, theta0 = _problem(model)
    runner = make_optimizer_runner(model, Z, np.zeros(len(Z)), 0, optimizer, options)
    lr = LR[optimizer] * (0.1 if rule == "loss-scaled" else 1.0)
    code = STEP_RULE_CODES[rule]
    steps = 300
    sched = np.array([1, 2, 50, 123, 299, 300])
    theta, rec = _compiled_run(runner, theta0, lr, code, steps, sched, chunks=3)
    status, theta_ref, rec_ref = _reference_run(
        model, Z, np.zeros(len(Z)), theta0, lr, 0, code, steps, sched, runner
    )
    assert status == (STATUS_OK, steps)
    assert np.linalg.norm(theta - theta0) > 1e-3  # the run moved
    scale = np.abs(rec_ref).max(axis=1, keepdims=True)
    np.testing.assert_allclose(rec / scale, rec_ref / scale, rtol=0, atol=KERNEL_RTOL)


@pytest.mark.parametrize("loss", [1, 2], ids=["logistic", "squared"])
@pytest.mark.parametrize("optimizer", ["momentum", "sgd", "adam", "adagrad"])
def test_compiled_matches_reference_other_losses(loss, optimizer):
    model = FullyConnected([3])
    Z, theta0 = _problem(model, seed=4)
    targets = np.random.default_rng(0).standard_normal(len(Z)) if loss == 2 else np.zeros(len(Z))
    opts = {"batch_size": 4, "seed": 1} if optimizer == "sgd" else {}
    runner = make_optimizer_runner(model, Z, targets, loss, optimizer, opts)
    lr = 0.2 * LR[optimizer] if loss == 2 else LR[optimizer]
    sched = np.array([10, 200])
    _, rec = _compiled_run(runner, theta0, lr, 0, 200, sched, chunks=2)
    _, _, rec_ref = _reference_run(model, Z, targets, theta0, lr, loss, 0, 200, sched, runner)
    scale = np.abs(rec_ref).max(axis=1, keepdims=True)
    np.testing.assert_allclose(rec / scale, rec_ref / scale, rtol=0, atol=KERNEL_RTOL)


@pytest.mark.parametrize(
    "model",
    [Convolutional(2), Convolutional(3, [2, 3]), Diagonal(3), Tensor.convolutional(5, [2, 5])],
    ids=repr,
)
@pytest.mark.parametrize("optimizer", ["momentum", "sgd", "adam"])
def test_compiled_matches_reference_deep_models(model, optimizer):
    Z, theta0 = _problem(model, seed=2)
    opts = {"batch_size": 3, "seed": 9} if optimizer == "sgd" else {}
    runner = make_optimizer_runner(model, Z, np.zeros(len(Z)), 0, optimizer, opts)
    sched = np.array([7, 150])
    lr = 0.2 * LR[optimizer]
    _, rec = _compiled_run(runner, theta0, lr, 0, 150, sched, chunks=2)
    _, _, rec_ref = _reference_run(model, Z, np.zeros(len(Z)), theta0, lr, 0, 0, 150, sched, runner)
    scale = np.abs(rec_ref).max(axis=1, keepdims=True)
    np.testing.assert_allclose(rec / scale, rec_ref / scale, rtol=0, atol=KERNEL_RTOL)


@pytest.mark.parametrize("rule", ["fixed", "normalized", "loss-scaled"])
def test_coordinate_matches_reference(rule):
    Z, theta0 = _problem(Linear(), n=10, d=8, seed=3)
    runner = make_optimizer_runner(Linear(), Z, np.zeros(len(Z)), 0, "coordinate")
    code = STEP_RULE_CODES[rule]
    sched = np.array([1, 100, 300])
    _, rec = _compiled_run(runner, theta0, 0.02, code, 300, sched, chunks=2)
    _, _, rec_ref = _reference_run(
        Linear(), Z, np.zeros(len(Z)), theta0, 0.02, 0, code, 300, sched, runner
    )
    np.testing.assert_allclose(rec, rec_ref, rtol=KERNEL_RTOL, atol=KERNEL_RTOL)
    # exactly one coordinate moves per step
    assert np.count_nonzero(rec[0] - theta0) == 1


# ---------------------------------------------------------------------------------------------
# The reference loop against textbook formulas (linear model, exp loss, no underflow here)


def _textbook(optimizer, Z, w, lr, steps, **o):
    """Plain float64 loops written from the papers' formulas, ``grad = -Z^T exp(-Z w)``."""
    w = w.copy()
    a = np.zeros_like(w)
    b = np.zeros_like(w)
    N = len(Z)
    for t in range(steps):
        if optimizer == "sgd":
            idx = ref.batch_indices(o["seed"], t, o["batch_size"], N)
            grad = -(N / len(idx)) * Z[idx].T @ np.exp(-(Z[idx] @ w))
        else:
            grad = -Z.T @ np.exp(-(Z @ w))
        if optimizer in ("momentum", "sgd"):  # Soudry Fig. 3.1 GDMO: v <- gamma v - eta grad
            a = o.get("beta", o.get("momentum", 0.0)) * a - lr * grad
            w = w + a
        elif optimizer == "adam":  # Kingma and Ba (2015), Algorithm 1
            b1, b2, eps = o["beta1"], o["beta2"], o["eps"]
            a = b1 * a + (1 - b1) * grad
            b = b2 * b + (1 - b2) * grad**2
            w = w - lr * (a / (1 - b1 ** (t + 1))) / (np.sqrt(b / (1 - b2 ** (t + 1))) + eps)
        elif optimizer == "adagrad":  # Duchi et al. (2011), diagonal version
            b = b + grad**2
            w = w - lr * grad / (np.sqrt(b) + o["eps"])
        else:  # greedy coordinate descent on the exp loss
            j = np.argmax(np.abs(grad))
            w[j] -= lr * grad[j]
    return w


@pytest.mark.parametrize(
    ("optimizer", "options"),
    [
        ("momentum", {"beta": 0.9}),
        ("sgd", {"batch_size": 3, "seed": 4, "momentum": 0.5}),
        ("adam", {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}),
        ("adagrad", {"eps": 1e-10}),
        ("coordinate", {}),
    ],
)
def test_reference_matches_textbook(optimizer, options):
    Z, w0 = _problem(Linear(), seed=6)
    runner = make_optimizer_runner(Linear(), Z, np.zeros(len(Z)), 0, optimizer, options)
    sched = np.array([400])
    _, w_ref, _ = _reference_run(Linear(), Z, np.zeros(len(Z)), w0, 0.01, 0, 0, 400, sched, runner)
    w_book = _textbook(optimizer, Z, w0, 0.01, 400, **runner.options)
    np.testing.assert_allclose(w_ref, w_book, rtol=1e-11, atol=1e-12)


def test_sgd_full_batch_is_gd_and_momentum_zero_is_gd():
    """Cross-check with the existing GD kernels: SGD with B = N visits every sample each step
    (a permutation, so only the summation order differs); momentum 0 and "gd" are GD."""
    model = Diagonal(2)
    Z, theta0 = _problem(model, n=9, seed=8)
    sched = np.array([300])
    gd = model.runner(Z, np.zeros(9), 0, "float64")
    theta_gd = theta0.copy()
    rec_gd = np.zeros((1, theta0.size))
    gd(theta_gd, 0.05, 0, 0, 300, sched, rec_gd, -1e300)
    for opt, opts in [
        ("sgd", {"batch_size": 9, "seed": 1}),
        ("momentum", {"beta": 0.0}),
        ("gd", None),
    ]:
        runner = make_optimizer_runner(model, Z, np.zeros(9), 0, opt, opts)
        theta, _ = _compiled_run(runner, theta0, 0.05, 0, 300, sched)
        np.testing.assert_allclose(theta, theta_gd, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------------------------
# Chunking, state, scale invariance, divergence


@pytest.mark.parametrize(
    ("optimizer", "options"),
    [
        ("momentum", {}),
        ("sgd", {"batch_size": 5, "seed": 2, "momentum": 0.9}),
        ("adam", {}),
        ("adagrad", {}),
        ("coordinate", {}),
    ],
)
def test_chunks_and_restored_state_are_bit_identical(optimizer, options):
    model = Linear()
    Z, theta0 = _problem(model, n=13, seed=5)
    sched = np.array([3, 250, 500])
    one = make_optimizer_runner(model, Z, np.zeros(13), 0, optimizer, options)
    theta_one, rec_one = _compiled_run(one, theta0, 0.02, 0, 500, sched, chunks=1)
    many = make_optimizer_runner(model, Z, np.zeros(13), 0, optimizer, options)
    theta_many, rec_many = _compiled_run(many, theta0, 0.02, 0, 500, sched, chunks=7)
    np.testing.assert_array_equal(theta_one, theta_many)
    np.testing.assert_array_equal(rec_one, rec_many)
    # checkpoint after 200 steps, resume in a fresh runner
    first = make_optimizer_runner(model, Z, np.zeros(13), 0, optimizer, options)
    theta = theta0.copy()
    first(theta, 0.02, 0, 0, 200, *NO_RECORD)
    saved = first.get_state()
    first(theta.copy(), 0.02, 0, 200, 5, *NO_RECORD)  # the saved copy does not change
    fresh = make_optimizer_runner(model, Z, np.zeros(13), 0, optimizer, options)
    fresh.set_state(saved)
    fresh(theta, 0.02, 0, 200, 300, *NO_RECORD)
    np.testing.assert_array_equal(theta, theta_one)


@pytest.mark.parametrize(
    ("optimizer", "options", "rule"),
    [
        ("adam", {"eps": 0.0}, "fixed"),
        ("adagrad", {"eps": 0.0}, "fixed"),
        ("momentum", {"beta": 0.9}, "normalized"),
    ],
)
def test_scale_invariant_optimizers_keep_moving_at_margins_of_1e4(optimizer, options, rule):
    """Exact invariance: with ``Z u = C 1`` every margin shifts by ``C`` and every gradient is
    multiplied by ``exp(-C)``; Adam and AdaGrad with eps = 0 and normalized momentum do not see
    that factor, so the run from ``w0 + u`` is the run from ``w0`` shifted by ``u``. With
    ``C = 1e4`` the gradient (``exp(-1e4)``) is not representable in float64; the log-domain
    state keeps the run exact."""
    rng = np.random.default_rng(3)
    Z = rng.standard_normal((4, 6))
    w0 = 0.3 * rng.standard_normal(6)
    u = np.linalg.lstsq(Z, np.full(4, 1e4), rcond=None)[0]
    code = STEP_RULE_CODES[rule]
    near = make_optimizer_runner(Linear(), Z, np.zeros(4), 0, optimizer, options)
    far = make_optimizer_runner(Linear(), Z, np.zeros(4), 0, optimizer, options)
    w_near, _ = _compiled_run(near, w0, 0.01, code, 300, np.array([300]))
    w_far, _ = _compiled_run(far, w0 + u, 0.01, code, 300, np.array([300]))
    assert np.linalg.norm(w_near - w0) > 0.1
    np.testing.assert_allclose(w_far - u, w_near, rtol=0, atol=1e-8)


def test_adam_state_log_scale_follows_the_loss():
    Z, w0 = _problem(Linear(), seed=1)
    runner = make_optimizer_runner(Linear(), Z, np.zeros(len(Z)), 0, "adam")
    assert runner.state["log_scale"][0] == -np.inf
    w = w0.copy()
    runner(w, 0.05, 0, 0, 2000, *NO_RECORD)
    m, v, M = runner.state["m"], runner.state["v"], runner.state["log_scale"][0]
    assert np.isfinite(M) and np.all(np.isfinite(m)) and np.all(v >= 0)
    runner.reset()
    assert runner.state["log_scale"][0] == -np.inf and not runner.state["m"].any()


def test_divergence_is_reported():
    Z, w0 = _problem(Linear(), seed=0)
    runner = make_optimizer_runner(Linear(), Z, np.zeros(len(Z)), 0, "momentum", {"beta": 0.99})
    w = -w0 - 5.0 * Z.mean(axis=0)  # misclassifies, so the first steps are huge
    status, fail = runner(w, 1e3, 0, 0, 1000, *NO_RECORD[:2], -50.0)
    assert status == STATUS_DIVERGED
    assert 0 <= fail < 1000


# ---------------------------------------------------------------------------------------------
# Behaviour (Soudry et al. 2018)


def _run_linear(Z, optimizer, options, lr, steps, sched, rule=0):
    runner = make_optimizer_runner(Linear(), Z, np.zeros(len(Z)), 0, optimizer, options)
    theta, rec = _compiled_run(runner, np.zeros(Z.shape[1]), lr, rule, steps, sched)
    return theta, rec


def test_figure_4_1_adam_stalls_off_the_l2_direction_while_gd_converges():
    """Fig. 4.1: x2 multiplied by 20. GD's angle gap to the L2 max-margin direction keeps
    falling (like 1/log^2 t, eq. 3.2); Adam (lr 1e-3, default betas and eps) separates the
    data but its direction stops improving at a point off the L2 direction: its gap is flat
    over the last decade of steps while GD's keeps shrinking. (At 2e6 steps Adam's angle gap,
    about 1e-3, is still smaller than GD's, about 2e-2: the difference is the trend.)"""
    X, y = fb.datasets.soudry2018()
    X = X.copy()
    X[:, 1] *= 20.0
    Z = X * y[:, None]
    w_hat = fb.max_margin(X, y).coef
    steps = 2 * 10**6
    sched = np.array([2 * 10**3, 2 * 10**4, 2 * 10**5, steps])
    sigma = np.linalg.norm(X, 2)
    gd = fb.train(X, y, steps=steps, lr=1.0 / sigma**2, record=sched)
    gd_gap = gd.history["angle_gap"][np.isin(gd.history["step"], sched)]
    _, rec = _run_linear(Z, "adam", {}, 1e-3, steps, sched)
    adam_gap = angle_gap(rec, w_hat)
    assert np.all(np.diff(gd_gap) < 0)  # GD: decreasing at every decade
    assert gd_gap[-1] < 0.7 * gd_gap[-2]  # measured: 0.51 over the last decade
    assert (Z @ rec[-1]).min() > 0  # Adam separates the data ...
    assert adam_gap[-1] > 0.8 * adam_gap[-2]  # ... but has stopped improving (measured: 0.93)
    assert adam_gap[-1] > 5e-4


def test_figure_3_1_momentum_and_figure_e_1_sgd_keep_the_l2_bias(soudry_data):
    """GDMO (gamma = 0.9) and SGD (batches of 1 and 4) on the Fig. 3.1 data: the angle gap to
    w_hat = (1, 1)/sqrt 2 decreases at every decade, as for GD (eq. 3.2)."""
    X, y = soudry_data
    Z = X * y[:, None]
    w_hat = fb.max_margin(X, y).coef
    sigma = np.linalg.norm(X, 2)
    steps = 10**6
    sched = np.array([10**2, 10**3, 10**4, 10**5, 10**6])
    for optimizer, options, lr in [
        ("momentum", {"beta": 0.9}, 0.1 / sigma**2),
        ("sgd", {"batch_size": 1, "seed": 0}, 1.0 / sigma**2),
        ("sgd", {"batch_size": 4, "seed": 1, "momentum": 0.9}, 0.1 / sigma**2),
    ]:
        _, rec = _run_linear(Z, optimizer, options, lr, steps, sched)
        gap = angle_gap(rec, w_hat)
        assert np.all(np.diff(gap) < 0), (optimizer, gap)
        assert gap[-1] < 1e-4, (optimizer, gap)


def _l1_max_margin(Z):
    """``argmin ||w||_1 s.t. Z w >= 1`` as an LP in ``w = a - b``, ``a, b >= 0`` (scipy HiGHS)."""
    N, d = Z.shape
    res = linprog(
        np.ones(2 * d), A_ub=-np.hstack([Z, -Z]), b_ub=-np.ones(N), bounds=(0, None),
        method="highs",
    )  # fmt: skip
    assert res.status == 0
    return res.x[:d] - res.x[d:]


def test_coordinate_descent_approaches_the_l1_max_margin_direction():
    """Section 4.2: greedy coordinate descent on the exp loss (steepest descent for the L1
    norm) is biased towards the L1 max-margin direction, not the L2 one."""
    X, y = random_separable(12, 8, seed=1, margin=0.1)
    Z = X * y[:, None]
    w1 = _l1_max_margin(Z)
    gamma1 = 1.0 / np.abs(w1).sum()  # the optimal L1-normalized margin
    w2 = fb.max_margin(X, y).coef
    l2_gap = gamma1 - (Z @ w2).min() / np.abs(w2).sum()
    assert l2_gap > 0.02  # the L2 solution is clearly not L1-optimal here

    def gaps(rec):
        margin = (rec @ Z.T).min(axis=1) / np.abs(rec).sum(axis=1)
        dist = np.abs(rec / np.abs(rec).sum(axis=1)[:, None] - w1 * gamma1).sum(axis=1)
        return gamma1 - margin, dist

    sched = np.array([10**3, 10**4, 10**5, 10**6])
    _, rec = _run_linear(Z, "coordinate", {}, 0.04, 10**6, sched)
    margin_gap, dist = gaps(rec)
    assert np.all(np.diff(margin_gap) < 0) and np.all(np.diff(dist) < 0)
    assert margin_gap[-1] < 0.5 * l2_gap
    # normalized steps (forward stagewise, step 0.01 along the chosen coordinate)
    sched = np.array([10**3, 10**4, 10**5])
    _, rec = _run_linear(Z, "coordinate", {}, 0.01, 10**5, sched, rule=1)
    margin_gap, dist = gaps(rec)
    assert np.all(np.diff(margin_gap) < 0)
    assert margin_gap[-1] < 1e-3 and dist[-1] < 1e-2


# ---------------------------------------------------------------------------------------------
# Bad input


def test_unknown_optimizer_lists_valid_names():
    Z, _ = _problem(Linear())
    with pytest.raises(ValueError, match="Unknown optimizer 'rmsprop'; expected one of .*'adam'"):
        make_optimizer_runner(Linear(), Z, np.zeros(len(Z)), 0, "rmsprop")


@pytest.mark.parametrize(
    ("optimizer", "options", "message"),
    [
        ("momentum", {"beta": 1.0}, r"beta must be in \[0, 1\)"),
        ("momentum", {"beta": -0.1}, r"beta must be in \[0, 1\)"),
        ("momentum", {"beta": "big"}, "beta must be a number"),
        ("adam", {"beta2": 1.5}, r"beta2 must be in \[0, 1\)"),
        ("adam", {"eps": -1e-8}, "eps must be finite and >= 0"),
        ("adagrad", {"eps": np.nan}, "eps must be finite and >= 0"),
        ("sgd", {"batch_size": 0}, "batch_size must be an integer >= 1"),
        ("sgd", {"batch_size": 13}, r"batch_size must be in \[1, N\] = \[1, 12\]"),
        ("sgd", {"batch_size": 2.5}, "batch_size must be an integer"),
        ("sgd", {"seed": -1}, "seed must be an integer"),
        ("sgd", {"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
        ("adam", {"lr": 0.1}, "Unknown option.*'lr'.*valid options: 'beta1', 'beta2', 'eps'"),
        ("coordinate", {"beta": 0.9}, "valid options: none"),
    ],
)
def test_bad_options(optimizer, options, message):
    Z, _ = _problem(Linear())
    with pytest.raises(ValueError, match=message):
        make_optimizer_runner(Linear(), Z, np.zeros(len(Z)), 0, optimizer, options)


def test_rejected_combinations():
    Z, w0 = _problem(Linear())
    with pytest.raises(ValueError, match="does not compose with optimizer='adam'"):
        check_optimizer("adam", step_rule="normalized")
    with pytest.raises(ValueError, match="does not compose with optimizer='adagrad'"):
        check_optimizer("adagrad", step_rule="loss-scaled")
    runner = make_optimizer_runner(Linear(), Z, np.zeros(len(Z)), 0, "adam")
    with pytest.raises(ValueError, match="normalized.*does not compose"):
        runner(w0.copy(), 0.1, 1, 0, 10, *NO_RECORD)
    with pytest.raises(ValueError, match="coordinate.*linear model.*Diagonal"):
        make_optimizer_runner(Diagonal(2), Z, np.zeros(len(Z)), 0, "coordinate")
    with pytest.raises(ValueError, match="Unknown step_rule"):
        check_optimizer("momentum", step_rule="cosine")
    with pytest.raises(ValueError, match="runs in float64"):
        runner(w0.astype(np.longdouble), 0.1, 0, 0, 10, *NO_RECORD)


def test_non_finite_data_and_bad_state():
    Z, _ = _problem(Linear())
    bad = Z.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="Z contains NaN or inf"):
        make_optimizer_runner(Linear(), bad, np.zeros(len(Z)), 0, "adam")
    targets = np.zeros(len(Z))
    targets[0] = np.inf
    with pytest.raises(ValueError, match="targets contain NaN or inf"):
        make_optimizer_runner(Linear(), Z, targets, 2, "momentum")
    with pytest.raises(ValueError, match="targets must have shape"):
        make_optimizer_runner(Linear(), Z, np.zeros(3), 0, "momentum")
    runner = make_optimizer_runner(Linear(), Z, np.zeros(len(Z)), 0, "adam")
    with pytest.raises(ValueError, match="needs \\['log_scale', 'm', 'v'\\]"):
        runner.load_state({"m": np.zeros(5)})
    with pytest.raises(ValueError, match="state\\['m'\\] has shape"):
        runner.load_state({"m": np.zeros(4), "v": np.zeros(5), "log_scale": np.zeros(1)})


def test_defaults():
    assert set(OPTIMIZERS) == {"gd", "momentum", "sgd", "adam", "adagrad", "coordinate"}
    opts = check_optimizer("adam", {"beta1": 0.5})
    assert opts == {"beta1": 0.5, "beta2": 0.999, "eps": 1e-8}
    sgd = check_optimizer("sgd", {"batch_size": 4}, n_samples=16)
    assert default_optimizer_lr("sgd", sgd, 0.1, 16) == pytest.approx(0.025)
    assert default_optimizer_lr("adam", opts, 0.1, 16) == 1e-3
    assert default_optimizer_lr("momentum", check_optimizer("momentum"), 0.1, 16) == 0.1


@pytest.mark.parametrize("optimizer", ["momentum", "sgd", "coordinate"])
def test_default_lr_is_stable_from_the_start(optimizer, soudry_data):
    """The default steps do not blow up the loss on the Fig. 3.1 data from w = 0."""
    X, y = soudry_data
    Z = X * y[:, None]
    opts = check_optimizer(optimizer, {"batch_size": 1} if optimizer == "sgd" else None)
    lr = default_optimizer_lr(optimizer, opts, fb.optim.gd.default_lr(Z), len(Z))
    runner = make_optimizer_runner(Linear(), Z, np.zeros(len(Z)), 0, optimizer, opts)
    sched = np.arange(1, 2001)
    _, rec = _compiled_run(runner, np.zeros(2), lr, 0, 2000, sched)
    loss = np.exp(-(rec @ Z.T)).sum(axis=1)
    assert loss.max() <= len(Z) * (1 + 1e-12)  # never above L(0) = N
    assert loss[-1] < 0.05 * len(Z)


# ---- through fastbias.train ---------------------------------------------------------------


def test_train_with_optimizers_matches_the_runner_and_resumes(tmp_path):
    import fastbias as fb
    from fastbias.models import Diagonal
    from fastbias.optim.optimizers import make_optimizer_runner

    rng = np.random.default_rng(5)
    X = rng.standard_normal((12, 4))
    y = np.sign(X @ np.array([1.0, -0.5, 0.2, 0.0]))
    model = Diagonal(2)
    for opt, opts in (("momentum", {"beta": 0.8}), ("adam", None), ("sgd", {"batch_size": 3})):
        kw = dict(model=model, lr=1e-2, seed=2, optimizer=opt, optimizer_options=opts)
        run = fb.train(X, y, steps=600, **kw)
        assert run.settings["optimizer"] == opt
        theta = model.flatten(model.init_params(4, None, 1.0, 2))
        full_opts = {"seed": 2, **(opts or {})} if opt == "sgd" else opts
        runner = make_optimizer_runner(model, X * y[:, None], np.zeros(12), 0, opt, full_opts)
        runner(theta, 1e-2, 0, 0, 600, np.zeros(0, np.int64), np.zeros((0, theta.size)), -1e300)
        np.testing.assert_array_equal(model.flatten(run.params), theta)
        # checkpoint/resume carries the optimizer state (momentum, moments, SGD position)
        fb.train(X, y, steps=250, checkpoint=tmp_path / f"{opt}.ckpt", **kw)
        resumed = fb.resume(tmp_path / f"{opt}.ckpt", steps=350)
        np.testing.assert_array_equal(model.flatten(resumed.params), theta)


def test_train_rejects_bad_optimizers():
    import fastbias as fb

    X, y = np.eye(3), np.ones(3)
    with pytest.raises(ValueError, match="Unknown optimizer|unknown optimizer"):
        fb.train(X, y, steps=10, optimizer="rmsprop")
    with pytest.raises(ValueError, match="float64"):
        fb.train(X, y, steps=10, optimizer="adam", precision="extended")


# ---- ReLU networks (Vardi et al.) -----------------------------------------------------------


@pytest.mark.parametrize("loss", [0, 2])
@pytest.mark.parametrize(
    "optimizer, options",
    [("momentum", {"beta": 0.8}), ("sgd", {"batch_size": 3, "seed": 4}), ("adam", None),
     ("adagrad", None)],
)  # fmt: skip
def test_relu_network_optimizers_match_reference(optimizer, options, loss):
    from fastbias.models import Network
    from fastbias.optim.optimizers import make_optimizer_runner

    net = Network.fully_connected(3, [4], "relu")
    rng = np.random.default_rng(3)
    X = rng.standard_normal((9, 3))
    targets = np.sign(X[:, 0] + 0.2) if loss != 2 else rng.standard_normal(9)
    theta0 = net.flatten(net.init_params(3, None, 1.0, 7))
    lr, steps = (0.01, 300)
    sched = np.array([50, 200, 300], dtype=np.int64)
    runner = make_optimizer_runner(net, X, targets, loss, optimizer, options)
    got_theta, got_rec = _compiled_run(runner, theta0, lr, 0, steps, sched, chunks=3)
    p = theta0.size
    theta = theta0.copy()
    rec = np.zeros((sched.size, p))
    vel, sq, scale = np.zeros(p), np.zeros(p), np.full(1, -np.inf)
    status, _ = ref.optimizer_network(
        lambda th, x: net.forward(th, x), lambda th, x: net.gradient(th, x), X, targets,
        theta, lr, loss, 0, 0, steps, sched, rec, -1e300, runner._code, runner._hyper,
        runner._batch, runner._seed, vel, sq, scale,
    )  # fmt: skip
    assert status == 0
    np.testing.assert_allclose(got_theta, theta, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(got_rec, rec, rtol=1e-11, atol=1e-13)


def test_relu_network_optimizer_through_train_and_resume(tmp_path):
    import fastbias as fb
    from fastbias.models import Network

    net = Network.fully_connected(2, [2], "relu")
    X = np.array([[1.0, 0.25], [-1.0, 0.25]])
    kw = dict(model=net, lr=0.02, optimizer="momentum", init_scale=0.5, seed=1)
    run = fb.train(X, np.ones(2), steps=3000, **kw)
    h = run.history
    assert run.settings["optimizer"] == "momentum" and h["log_loss"][-1] < h["log_loss"][0]
    fb.train(X, np.ones(2), steps=1000, checkpoint=tmp_path / "r.ckpt", **kw)
    resumed = fb.resume(tmp_path / "r.ckpt", steps=2000)
    for a, b in zip(resumed.params, run.params, strict=True):
        np.testing.assert_array_equal(a, b)
