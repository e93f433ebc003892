"""The float64 C kernel (``fb_gd_linear_f64``) against the NumPy specification.

The kernel sums in another order, fuses multiply-adds, uses its own vectorized exp and takes
the log-domain shift only when it is needed, so iterates agree with the reference to round-off
(checked at 1e-12 relative after 1000 steps), not bit for bit. Every case runs serially and
with two OpenMP threads (the threaded driver runs when n_threads > 1 and the problem has more
than one group of 256 samples: (600, 9) and (700, 5) below; smaller ones run serially), and the
baseline x86-64 code is checked as well as the AVX2 code. That threads give the same bits as
one thread: test_c_float64_threads.py.
"""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest

try:
    import fastbias._cext  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the build
    if exc.name != "fastbias._cext":  # the package itself is broken: report, do not skip
        raise
    pytest.skip(
        f"fastbias._cext is not built ({exc}); build it with `python setup.py build_ext "
        "--inplace` or install the package with a C compiler",
        allow_module_level=True,
    )

from fastbias.kernels import STATUS_DIVERGED, STATUS_OK
from fastbias.kernels._c import gd_linear_float64
from fastbias.kernels._reference import gd_linear

RTOL = 1e-12
N_STEPS = 1000
# (16, 2): Figure 3.1's size (one panel of 16 samples, a copy of the driver for d = 2);
# (1, 1), (3, 5), (10, 3): padding; (50, 7), (37, 13): several panels, odd d; (300, 80): the
# large-problem loops; (33, 1), (40, 2), (70, 3): the copies for several panels and small d;
# (600, 9): three groups of 256 samples, which two threads share.
SHAPES = [
    (16, 2), (1, 1), (3, 5), (10, 3), (50, 7), (37, 13), (300, 80), (33, 1), (40, 2), (70, 3),
    (600, 9),
]  # fmt: skip
LOSSES = [0, 1]
RULES = [0, 1, 2]
THREADS = [1, 2]
NO_STEPS = np.zeros(0, dtype=np.int64)


def separable(N: int, d: int, seed: int, scale: float = 1.0) -> np.ndarray:
    """Rows ``z_n = y_n x_n`` of random data separable by a random unit vector with margin."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    X = rng.standard_normal((N, d))
    return scale * (X * np.sign(X @ u)[:, None] + 0.2 * u)


def step_size(Z: np.ndarray, rule: int) -> float:
    """A stable step size for each rule."""
    if rule == 0:
        return 1.0 / np.linalg.norm(Z, 2) ** 2
    return 0.1 if rule == 1 else 0.05


def run_both(Z, w0, lr, loss, rule, step0, n_steps, rec_steps, s_floor, n_threads):
    """Run the reference and the C kernel from the same start."""
    d = Z.shape[1]
    K = rec_steps.shape[0]
    w_ref = np.array(w0, dtype=np.float64)
    rec_ref = np.full((K, d), np.nan)
    out_ref = gd_linear(Z, w_ref, lr, loss, rule, step0, n_steps, rec_steps, rec_ref, s_floor)
    w_c = np.array(w0, dtype=np.float64)
    rec_c = np.full((K, d), np.nan)
    out_c = gd_linear_float64(
        Z, w_c, lr, loss, rule, step0, n_steps, rec_steps, rec_c, s_floor, n_threads
    )
    return (out_ref, w_ref, rec_ref), (out_c, w_c, rec_c)


def assert_close(
    actual: np.ndarray, desired: np.ndarray, rtol: float = RTOL, scale: float | None = None
) -> None:
    """Agreement relative to the size of the iterate (max norm), or to ``scale``."""
    assert actual.shape == desired.shape
    if scale is None:
        scale = np.max(np.abs(desired))
    err = np.max(np.abs(actual - desired))
    assert err <= rtol * scale, f"max abs difference {err:.3e} > {rtol} * {scale:.3e}"


@pytest.mark.parametrize("N,d", SHAPES)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("n_threads", THREADS)
@pytest.mark.parametrize("start", ["zero", "random"])
def test_matches_reference(N: int, d: int, loss: int, rule: int, n_threads: int, start: str):
    Z = separable(N, d, seed=N + d)
    w0 = np.zeros(d)
    if start == "random":
        # negative margins: the logistic loss's branch for min margin < 0 is used
        w0 = np.random.default_rng(1).standard_normal(d) / np.sqrt(d)
        if (Z @ w0).min() >= 0:
            w0 = -w0
    n_steps = N_STEPS if N * d < 10000 else 400
    step0 = 5
    rng = np.random.default_rng(2)
    rec_steps = np.sort(rng.choice(np.arange(step0 + 1, step0 + n_steps), 10, replace=False))
    rec_steps = np.append(rec_steps, step0 + n_steps).astype(np.int64)
    lr = step_size(Z, rule)

    (out_ref, w_ref, rec_ref), (out_c, w_c, rec_c) = run_both(
        Z, w0, lr, loss, rule, step0, n_steps, rec_steps, -1e3, n_threads
    )
    assert out_ref == (STATUS_OK, step0 + n_steps)
    assert out_c == out_ref
    assert all(isinstance(v, int) for v in out_c)
    assert_close(w_c, w_ref)
    for k in range(rec_steps.shape[0]):
        assert_close(rec_c[k], rec_ref[k])
    assert rec_c[-1].tolist() == w_c.tolist()


# "inside" with rule 2: its steps grow as the loss falls, and from there the runs amplify
# round-off past 1e-12 for every driver (3e-11 to 6e-9 measured, before the tiny path too)
FAR_CASES = [
    (start, rule)
    for start in ("negative", "positive", "inside")
    for rule in RULES
    if not (start == "inside" and rule == 2)
]


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("start,rule", FAR_CASES)
@pytest.mark.parametrize("n_threads", THREADS)
@pytest.mark.parametrize("N", [40, 12])
def test_far_margins_use_the_exact_shift(loss: int, rule: int, n_threads: int, start: str, N: int):
    """Minimum margins beyond +-300: the kernel switches to the reference's shift.

    "negative": margins in [-600, 600] (the exponential loss needs the shift, exp(600) would
    overflow the gradient sums of larger data); "positive": margins >= 400 (both losses need
    it, the weights exp(-m) would be lost to underflow); "inside": minimum margin 290, the
    direct mode's largest exp arguments. N = 12 (one padded panel, d = 3) takes the serial
    path of the tiniest problems (its tests and its fallback to the exact shift).
    """
    rng = np.random.default_rng(3)
    u = rng.standard_normal(3)
    u /= np.linalg.norm(u)
    X = rng.standard_normal((N, 3))
    Z = 100.0 * (X * np.sign(X @ u)[:, None] + 0.2 * u)  # z.u >= 20
    if start == "negative":
        w0 = rng.standard_normal(3)
        w0 *= 600.0 / np.abs(Z @ w0).max()
        assert (Z @ w0).min() < -300
    elif start == "positive":
        w0 = 20.0 * u
        assert (Z @ w0).min() >= 400
    else:
        w0 = u * 290.0 / (Z @ u).min()
    scale = -(Z @ w0).min()
    lr = {0: 1e-3 * np.exp(-max(scale, 0.0)) / np.linalg.norm(Z, 2) ** 2, 1: 0.1, 2: 0.05}[rule]
    if start == "inside":  # steps that move the margins by about 1 (larger ones are chaotic)
        lr = {0: 1e-3 * np.exp(-scale) / np.linalg.norm(Z, 2) ** 2, 1: 0.01}[rule]
    rec_steps = np.array([1, 2, 50], dtype=np.int64)
    with np.errstate(over="ignore"):  # the reference's exp(m) for the logistic loss
        (out_ref, w_ref, rec_ref), (out_c, w_c, rec_c) = run_both(
            Z, w0, lr, loss, rule, 0, 50, rec_steps, -1e4, n_threads
        )
    assert out_ref == (STATUS_OK, 50)
    assert out_c == out_ref
    assert np.isfinite(w_ref).all()
    # relative to the start: from "negative", w shrinks by a factor 10 on the way
    size = max(np.abs(w0).max(), np.abs(w_ref).max())
    assert_close(w_c, w_ref, scale=size)
    for k in range(rec_steps.shape[0]):
        assert_close(rec_c[k], rec_ref[k], scale=size)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("n_threads", THREADS)
def test_records_at_the_right_steps(loss: int, rule: int, n_threads: int) -> None:
    """Running up to each record step in separate calls gives the records bit for bit."""
    N, d = 16, 2
    Z = separable(N, d, seed=3)
    lr = step_size(Z, rule)
    step0 = 10
    rec_steps = np.array([11, 12, 50, 51, 300, 310], dtype=np.int64)
    w = np.zeros(d)
    rec = np.full((rec_steps.shape[0], d), np.nan)
    out = gd_linear_float64(Z, w, lr, loss, rule, step0, 290, rec_steps, rec, -1e3, n_threads)
    assert out == (STATUS_OK, 300)
    # 310 lies beyond the run: not written
    assert np.isnan(rec[-1]).all()
    assert rec[-2].tolist() == w.tolist()

    no_rec = np.zeros((0, d))
    w2 = np.zeros(d)
    t = step0
    for k, s in enumerate(rec_steps[:-1]):
        out = gd_linear_float64(
            Z, w2, lr, loss, rule, t, int(s) - t, NO_STEPS, no_rec, -1e3, n_threads
        )
        assert out == (STATUS_OK, int(s))
        assert w2.tolist() == rec[k].tolist(), f"record {k} (step {s})"
        t = int(s)


@pytest.mark.parametrize("N,d", [(16, 2), (50, 7), (300, 80)])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("n_threads", THREADS)
def test_chunked_calls_equal_one_call(N: int, d: int, loss: int, rule: int, n_threads: int):
    """Two calls of 500 steps (the second with step0 = 500) give one call's iterate exactly."""
    Z = separable(N, d, seed=7)
    lr = step_size(Z, rule)
    no_rec = np.zeros((0, d))
    w_one = np.zeros(d)
    assert gd_linear_float64(
        Z, w_one, lr, loss, rule, 0, 1000, NO_STEPS, no_rec, -1e3, n_threads
    ) == (
        STATUS_OK,
        1000,
    )
    w_two = np.zeros(d)
    for step0 in (0, 500):
        out = gd_linear_float64(
            Z, w_two, lr, loss, rule, step0, 500, NO_STEPS, no_rec, -1e3, n_threads
        )
        assert out == (STATUS_OK, step0 + 500)
    assert w_two.tolist() == w_one.tolist()


@pytest.mark.parametrize("N,d", [(16, 2), (70, 3), (300, 80), (700, 5)])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("rule", [1, 2])
@pytest.mark.parametrize("n_threads", THREADS)
def test_margins_growing_past_the_direct_range(
    N: int, d: int, loss: int, rule: int, n_threads: int
) -> None:
    """Rules 1 and 2 make the margins grow linearly: the run crosses into the shift regime.

    Against the reference, and chunked: bit for bit, with or without threads (a step's
    arithmetic depends on its w alone: the shift is the exact minimum of its margins).
    """
    rng = np.random.default_rng(9)
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    X = rng.standard_normal((N, d))
    Z = X * np.sign(X @ u)[:, None] + 0.2 * u
    w0 = u * 295.0 / (Z @ u).min()  # minimum margin 295, just inside the direct range
    lr = 0.3 if rule == 1 or N < 100 else 0.1  # (larger steps make these runs chaotic)
    rec_steps = np.array([1, 150, 300], dtype=np.int64)
    (out_ref, w_ref, rec_ref), (out_c, w_c, rec_c) = run_both(
        Z, w0, lr, loss, rule, 0, 300, rec_steps, -1e3, n_threads
    )
    assert (Z @ w_ref).min() > 300
    assert out_c == out_ref == (STATUS_OK, 300)
    assert_close(w_c, w_ref)
    for k in range(rec_steps.shape[0]):
        assert_close(rec_c[k], rec_ref[k])

    w_two = w0.copy()
    no_rec = np.zeros((0, d))
    for step0, n in ((0, 150), (150, 75), (225, 75)):
        out = gd_linear_float64(
            Z, w_two, lr, loss, rule, step0, n, NO_STEPS, no_rec, -1e3, n_threads
        )
        assert out == (STATUS_OK, step0 + n)
    assert w_two.tolist() == w_c.tolist()


def test_zero_steps() -> None:
    Z = separable(16, 2, seed=4)
    w = np.array([0.5, -0.25])
    out = gd_linear_float64(Z, w, 0.1, 0, 0, 7, 0, NO_STEPS, np.zeros((0, 2)), -1e3)
    assert out == (STATUS_OK, 7)
    assert w.tolist() == [0.5, -0.25]


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("lr", [1e6, 1e9])
@pytest.mark.parametrize("n_threads", THREADS)
@pytest.mark.parametrize("N,d", [(50, 7), (12, 3)])  # (12, 3): the tiniest problems' path
def test_divergence_detected(loss: int, rule: int, lr: float, n_threads: int, N: int, d: int):
    Z = separable(N, d, seed=57)
    step0 = 3
    rec_steps = np.array([step0 + 1, step0 + 2, step0 + 3, step0 + 50], dtype=np.int64)
    s_floor = -50.0
    with np.errstate(over="ignore"):
        (out_ref, w_ref, rec_ref), (out_c, w_c, rec_c) = run_both(
            Z, np.zeros(d), lr, loss, rule, step0, 100, rec_steps, s_floor, n_threads
        )
    status, fail_step = out_ref
    assert status == STATUS_DIVERGED
    assert (Z @ w_ref).min() < 10 * s_floor  # far past the floor: not a borderline case
    assert out_c == out_ref
    assert_close(w_c, w_ref)
    # records up to the failing iterate (the last one computed) are written, later ones not
    written = rec_steps <= fail_step
    assert written.any() and not written.all()
    assert np.isnan(rec_c[~written]).all()
    assert not np.isnan(rec_c[written]).any()
    assert_close(rec_c[written], rec_ref[written])


@pytest.mark.parametrize("n_threads", THREADS)
def test_divergence_after_several_steps(n_threads: int) -> None:
    """Fixed steps just too large: the oscillation grows for a few steps before failing."""
    Z = separable(50, 7, seed=57)
    lr = 15.0 / np.linalg.norm(Z, 2) ** 2
    (out_ref, w_ref, _), (out_c, w_c, _) = run_both(
        Z, np.zeros(7), lr, 0, 0, 0, 100, NO_STEPS, -50.0, n_threads
    )
    assert out_ref[0] == STATUS_DIVERGED and out_ref[1] >= 3
    assert (Z @ w_ref).min() < 10 * -50.0
    assert out_c == out_ref
    assert_close(w_c, w_ref)


@pytest.mark.parametrize("n_threads", THREADS)
def test_nan_fails_the_divergence_test(n_threads: int) -> None:
    Z = separable(16, 2, seed=5)
    w = np.array([np.nan, 1.0])
    out = gd_linear_float64(Z, w, 0.1, 1, 0, 4, 10, NO_STEPS, np.zeros((0, 2)), -np.inf, n_threads)
    assert out == (STATUS_DIVERGED, 4)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("n_threads", THREADS)
@pytest.mark.parametrize("w0", [np.inf, -800.0])
def test_nan_never_returned_silently(loss: int, n_threads: int, w0: float) -> None:
    """A last step that leaves a non-finite iterate is reported; the reference returns OK.

    w = +inf: the margins (+inf) pass the test but the weights are NaN. w = -800 with the
    exponential loss: the step exp(800) overflows (with the logistic loss it is finite).
    The kernel reports the iterate of step0 + n_steps as failing.
    """
    Z = np.ones((3, 1))
    rec_steps = np.array([9], dtype=np.int64)
    with np.errstate(all="ignore"):
        (out_ref, w_ref, _), (out_c, w_c, rec_c) = run_both(
            Z, np.array([w0]), 1.0, loss, 0, 8, 1, rec_steps, -np.inf, n_threads
        )
    assert out_ref == (STATUS_OK, 9)
    if np.isfinite(w_ref).all():
        assert out_c == (STATUS_OK, 9)
        assert_close(w_c, w_ref)
    else:
        assert not np.isfinite(w_c).all()
        assert out_c == (STATUS_DIVERGED, 9)
        assert np.array_equal(rec_c[0], w_c, equal_nan=True)  # the failing iterate


def test_baseline_code_matches_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """FASTBIAS_NO_AVX2=1 selects the baseline x86-64 copy of the drivers."""
    monkeypatch.setenv("FASTBIAS_NO_AVX2", "1")
    for N, d in [(16, 2), (37, 13)]:
        Z = separable(N, d, seed=N + d)
        for loss in LOSSES:
            for rule in RULES:
                for n_threads in THREADS:
                    lr = step_size(Z, rule)
                    (out_ref, w_ref, _), (out_c, w_c, _) = run_both(
                        Z, np.zeros(d), lr, loss, rule, 0, 500, NO_STEPS, -1e3, n_threads
                    )
                    assert out_c == out_ref == (STATUS_OK, 500)
                    assert_close(w_c, w_ref)


def test_automatic_threads() -> None:
    """n_threads=0 (the default) picks serial or threaded code by size; both match."""
    Z = separable(600, 60, seed=8)  # N * d above the threshold for threads
    lr = step_size(Z, 0)
    (out_ref, w_ref, _), (out_c, w_c, _) = run_both(
        Z, np.zeros(60), lr, 0, 0, 0, 200, NO_STEPS, -1e3, 0
    )
    assert out_c == out_ref
    assert_close(w_c, w_ref)
    w = np.zeros(60)
    assert gd_linear_float64(Z, w, lr, 0, 0, 0, 200, NO_STEPS, np.zeros((0, 60)), -1e3) == (
        STATUS_OK,
        200,
    )
    assert w.tolist() == w_c.tolist()


def _fork_child_run(n_threads: int) -> list[float]:
    Z = separable(300, 80, seed=12)
    w = np.zeros(80)
    out = gd_linear_float64(Z, w, 1e-3, 0, 0, 0, 50, NO_STEPS, np.zeros((0, 80)), -1e3, n_threads)
    assert out == (STATUS_OK, 50)
    return w.tolist()


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() of a threaded process
def test_threads_after_fork() -> None:
    """A forked child of a process that used the threads must not hang (libgomp's pool does
    not survive fork): the kernel runs serially there."""
    expected = np.array(_fork_child_run(2))  # starts the OpenMP threads in this process
    with multiprocessing.get_context("fork").Pool(1) as pool:
        got = np.array(pool.apply_async(_fork_child_run, (2,)).get(timeout=60))
    assert_close(got, expected)


def test_bad_arguments() -> None:
    Z = separable(16, 2, seed=6)
    w = np.zeros(2)
    rec = np.zeros((0, 2))
    with pytest.raises(ValueError, match="n_threads"):
        gd_linear_float64(Z, w, 0.1, 0, 0, 0, 10, NO_STEPS, rec, -1e3, -1)
    with pytest.raises(TypeError, match="float64"):
        gd_linear_float64(Z.astype(np.float32), w, 0.1, 0, 0, 0, 10, NO_STEPS, rec, -1e3)
    with pytest.raises(ValueError, match="C-contiguous"):
        gd_linear_float64(np.asfortranarray(Z), w, 0.1, 0, 0, 0, 10, NO_STEPS, rec, -1e3)
    with pytest.raises(ValueError, match="loss"):
        gd_linear_float64(Z, w, 0.1, 5, 0, 0, 10, NO_STEPS, rec, -1e3)
    with pytest.raises(ValueError, match="step-rule"):
        gd_linear_float64(Z, w, 0.1, 0, 7, 0, 10, NO_STEPS, rec, -1e3)


# ---- the kernels' vector exp (csrc/fb_f64_core.h) ------------------------------------------


@pytest.mark.parametrize("which", [0, 1, 2], ids=["fb_exp", "fb_exp-avx2", "fb_exp_fma"])
def test_vector_exp_is_within_an_ulp_and_clamps_at_minus_708(which):
    """fb_exp (baseline and AVX2+FMA copies) and fb_exp_fma against np.longdouble's exp: at
    most 2.3e-16 relative error (documented: 2.2e-16 and 1.96e-16) over 2^16 arguments in each
    of [-1, 1], [-40, 40] and [-708, 300]; exp(-708) below -708; exactly 1 at 0; NaN stays NaN
    for fb_exp and gives exp(-708) for fb_exp_fma (the callers test arguments for NaN)."""
    from fastbias.kernels._c import exp_f64_check

    if exp_f64_check(np.zeros(4), which) is None:
        pytest.skip("this copy of the exp does not run here (no AVX2/FMA)")
    rng = np.random.default_rng(which)
    for lo, hi in [(-1.0, 1.0), (-40.0, 40.0), (-708.0, 300.0)]:
        x = rng.uniform(lo, hi, 1 << 16)
        got = exp_f64_check(x, which)
        want = np.exp(x.astype(np.longdouble))
        assert float(np.max(np.abs((got - want) / want))) < 2.3e-16, (lo, hi)
    e708 = exp_f64_check(np.array([-708.0]), which)[0]
    assert abs(e708 / float(np.exp(np.longdouble(-708))) - 1) < 2.3e-16
    edge = exp_f64_check(np.array([-709.0, -1e300, 0.0, np.nan, -np.inf]), which)
    assert edge[0] == edge[1] == edge[4] == e708
    assert edge[2] == 1.0
    assert np.isnan(edge[3]) if which < 2 else edge[3] == e708
    assert exp_f64_check(np.zeros(5), which, repeats=3).tolist() == [1.0] * 5  # the tail padded


@pytest.mark.parametrize("which", [0, 1, 2], ids=["fma", "fma-add", "fma-max"])
def test_fp_peak_check_computes_its_chains(which):
    """fb_fp_peak_check (bench/lockstep_bound.py's throughput probe) runs the operations it
    names: 10 chains a <- a m + c from 1, 1.001, ..., and 4 chains from -10, ..., -40 that stay
    (which 0), take a <- a + c (1) or a <- max(a, c) (2); the sum of the 4 lanes of all
    chains, against NumPy (no fused multiply-add: rtol 1e-13)."""
    from fastbias.kernels._c import fp_peak_check

    if fp_peak_check(1, which) is None:
        pytest.skip("no AVX2/FMA here")
    iters, m, c = 1000, 0.999999, 1e-9
    a, b = 1.0 + 1e-3 * np.arange(10), -10.0 * np.arange(1.0, 5.0)
    for _ in range(iters):
        a = a * m + c
        b = b if which == 0 else b + c if which == 1 else np.maximum(b, c)
    assert fp_peak_check(iters, which) == pytest.approx(4 * (a.sum() + b.sum()), rel=1e-13)
    with pytest.raises(ValueError, match="fb_fp_peak_check"):
        fp_peak_check(0, which)
