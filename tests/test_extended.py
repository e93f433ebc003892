"""The long double C kernel (``fastbias._cext``) against the NumPy specification.

The C kernel runs in 80-bit extended precision and the reference in float64, so iterates agree
to float64 round-off (checked at 1e-12 relative after 1000 steps); one test checks that the
kernel really carries the extra bits.
"""

from __future__ import annotations

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
from fastbias.kernels._c import available, gd_linear_extended
from fastbias.kernels._reference import gd_linear

LD = np.longdouble
RTOL = 1e-12
N_STEPS = 1000
SHAPES = [(16, 2), (50, 7), (20, 4)]  # d = 2: specialized copy; 4: small, generic; 7: generic
LOSSES = [0, 1]
RULES = [0, 1, 2]
HAS_EXTENDED = np.finfo(LD).nmant >= 63


def separable(N: int, d: int, seed: int) -> np.ndarray:
    """Rows ``z_n = y_n x_n`` of random data separable by a random unit vector with margin."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    X = rng.standard_normal((N, d))
    return X * np.sign(X @ u)[:, None] + 0.2 * u


def step_size(Z: np.ndarray, rule: int) -> float:
    """A stable step size for each rule."""
    if rule == 0:
        return 1.0 / np.linalg.norm(Z, 2) ** 2
    return 0.1 if rule == 1 else 0.05


def run_both(Z, w0, lr, loss, rule, step0, n_steps, rec_steps, s_floor):
    """Run the reference (float64) and the C kernel (long double) from the same start."""
    d = Z.shape[1]
    K = rec_steps.shape[0]
    w_ref = np.array(w0, dtype=np.float64)
    rec_ref = np.full((K, d), np.nan)
    out_ref = gd_linear(Z, w_ref, lr, loss, rule, step0, n_steps, rec_steps, rec_ref, s_floor)
    w_c = np.array(w0, dtype=LD)
    rec_c = np.full((K, d), np.nan, dtype=LD)
    out_c = gd_linear_extended(
        Z.astype(LD), w_c, lr, loss, rule, step0, n_steps, rec_steps, rec_c, s_floor
    )
    return (out_ref, w_ref, rec_ref), (out_c, w_c, rec_c)


def assert_close(actual: np.ndarray, desired: np.ndarray, rtol: float = RTOL) -> None:
    """Agreement relative to the size of the iterate (max norm)."""
    actual = np.asarray(actual, dtype=LD)
    desired = np.asarray(desired, dtype=LD)
    assert actual.shape == desired.shape
    scale = np.max(np.abs(desired))
    err = np.max(np.abs(actual - desired))
    assert err <= rtol * scale, f"max abs difference {float(err):.3e} > {rtol} * {float(scale):.3e}"


def test_available() -> None:
    assert available()


@pytest.mark.parametrize("N,d", SHAPES)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("start", ["zero", "random"])
def test_matches_reference(N: int, d: int, loss: int, rule: int, start: str) -> None:
    Z = separable(N, d, seed=N + d)
    # a random start has negative margins: the logistic branch for min margin < 0 is used
    w0 = np.zeros(d)
    if start == "random":
        w0 = np.random.default_rng(1).standard_normal(d) / np.sqrt(d)
        assert (Z @ w0).min() < 0
    step0 = 5
    rng = np.random.default_rng(2)
    rec_steps = np.sort(rng.choice(np.arange(step0 + 1, step0 + N_STEPS), 10, replace=False))
    rec_steps = np.append(rec_steps, step0 + N_STEPS).astype(np.int64)
    lr = step_size(Z, rule)

    (out_ref, w_ref, rec_ref), (out_c, w_c, rec_c) = run_both(
        Z, w0, lr, loss, rule, step0, N_STEPS, rec_steps, -1e3
    )
    assert out_ref == (STATUS_OK, step0 + N_STEPS)
    assert out_c == out_ref
    assert all(isinstance(v, int) for v in out_c)
    assert_close(w_c, w_ref)
    for k in range(rec_steps.shape[0]):
        assert_close(rec_c[k], rec_ref[k])
    assert rec_c[-1].tolist() == w_c.tolist()


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("rule", RULES)
def test_records_at_the_right_steps(loss: int, rule: int) -> None:
    """Running up to each record step in separate calls gives the records bit for bit."""
    N, d = 16, 2
    Z = separable(N, d, seed=3).astype(LD)
    lr = step_size(Z.astype(np.float64), rule)
    step0 = 10
    rec_steps = np.array([11, 12, 50, 51, 300, 310], dtype=np.int64)
    w = np.zeros(d, dtype=LD)
    rec = np.full((rec_steps.shape[0], d), np.nan, dtype=LD)
    assert gd_linear_extended(Z, w, lr, loss, rule, step0, 290, rec_steps, rec, -1e3) == (
        STATUS_OK,
        300,
    )
    # 310 lies beyond the run: not written
    assert np.isnan(rec[-1]).all()
    assert rec[-2].tolist() == w.tolist()

    no_steps = np.zeros(0, dtype=np.int64)
    no_rec = np.zeros((0, d), dtype=LD)
    w2 = np.zeros(d, dtype=LD)
    t = step0
    for k, s in enumerate(rec_steps[:-1]):
        out = gd_linear_extended(Z, w2, lr, loss, rule, t, int(s) - t, no_steps, no_rec, -1e3)
        assert out == (STATUS_OK, int(s))
        assert w2.tolist() == rec[k].tolist(), f"record {k} (step {s})"
        t = int(s)


def test_zero_steps() -> None:
    Z = separable(16, 2, seed=4).astype(LD)
    w = np.array([0.5, -0.25], dtype=LD)
    rec = np.zeros((0, 2), dtype=LD)
    out = gd_linear_extended(Z, w, 0.1, 0, 0, 7, 0, np.zeros(0, np.int64), rec, -1e3)
    assert out == (STATUS_OK, 7)
    assert w.tolist() == [0.5, -0.25]


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("lr", [1e6, 1e9])
def test_divergence_detected(loss: int, rule: int, lr: float) -> None:
    Z = separable(50, 7, seed=57)
    step0 = 3
    rec_steps = np.array([step0 + 1, step0 + 2, step0 + 3, step0 + 50], dtype=np.int64)
    s_floor = -50.0
    with np.errstate(over="ignore"):
        (out_ref, w_ref, rec_ref), (out_c, w_c, rec_c) = run_both(
            Z, np.zeros(7), lr, loss, rule, step0, 100, rec_steps, s_floor
        )
    status, fail_step = out_ref
    assert status == STATUS_DIVERGED
    assert (Z @ w_ref).min() < 10 * s_floor  # far past the floor: not a borderline case
    assert out_c == out_ref
    assert_close(w_c, w_ref)
    # records up to the failing iterate (the last one computed) are written, later ones not
    written = rec_steps <= fail_step
    assert written.any() and not written.all()
    assert np.isnan(rec_c[~written].astype(np.float64)).all()
    assert not np.isnan(rec_c[written].astype(np.float64)).any()
    if written.any():
        assert_close(rec_c[written], rec_ref[written])


def test_divergence_after_several_steps() -> None:
    """Fixed steps just too large: the oscillation grows for a few steps before failing."""
    Z = separable(50, 7, seed=57)
    lr = 15.0 / np.linalg.norm(Z, 2) ** 2
    (out_ref, w_ref, _), (out_c, w_c, _) = run_both(
        Z, np.zeros(7), lr, 0, 0, 0, 100, np.zeros(0, np.int64), -50.0
    )
    assert out_ref[0] == STATUS_DIVERGED and out_ref[1] >= 3
    assert (Z @ w_ref).min() < 10 * -50.0
    assert out_c == out_ref
    assert_close(w_c, w_ref)


def test_nan_fails_the_divergence_test() -> None:
    Z = separable(16, 2, seed=5).astype(LD)
    w = np.array([np.nan, 1.0], dtype=LD)
    rec = np.zeros((0, 2), dtype=LD)
    assert gd_linear_extended(Z, w, 0.1, 1, 0, 4, 10, np.zeros(0, np.int64), rec, -np.inf) == (
        STATUS_DIVERGED,
        4,
    )


@pytest.mark.skipif(not HAS_EXTENDED, reason="np.longdouble is not 80-bit extended here")
def test_computes_in_extended_precision() -> None:
    """w = 1 plus 2**-60 per step: long double keeps every increment, float64 none.

    One point z = 1 with the exponential loss and the normalized rule: G = exp(0) = 1 and the
    step is exactly lr = 2**-60, which float64 rounds away at 1 (its ulp there is 2**-52).
    """
    Z = np.ones((1, 1))
    lr = 2.0**-60
    (out_ref, w_ref, _), (out_c, w_c, _) = run_both(
        Z, np.ones(1), lr, 0, 1, 0, N_STEPS, np.zeros(0, np.int64), -1.0
    )
    assert out_c == out_ref == (STATUS_OK, N_STEPS)
    assert w_ref[0] == 1.0
    assert w_c[0] == LD(1) + LD(N_STEPS) * LD(2) ** -60
    assert w_c[0] - 1 == LD(N_STEPS) * LD(2) ** -60


@pytest.mark.skipif(not HAS_EXTENDED, reason="np.longdouble is not 80-bit extended here")
def test_long_double_step_size_is_not_rounded() -> None:
    """An np.longdouble lr reaches C with all its bits: 1 + (1 + 2**-62) = 2 + 2**-62."""
    lr = LD(1) + LD(2) ** -62
    assert lr != 1
    w = np.ones(1, dtype=LD)
    rec = np.zeros((0, 1), dtype=LD)
    assert gd_linear_extended(
        np.ones((1, 1), LD), w, lr, 0, 1, 0, 1, np.zeros(0, np.int64), rec, LD(-1)
    ) == (STATUS_OK, 1)
    assert w[0] == LD(2) + LD(2) ** -62


def test_bad_arguments() -> None:
    Z = separable(16, 2, seed=6).astype(LD)
    w = np.zeros(2, dtype=LD)
    steps = np.zeros(0, np.int64)
    rec = np.zeros((0, 2), dtype=LD)
    with pytest.raises(TypeError, match="longdouble"):
        gd_linear_extended(Z.astype(np.float64), w, 0.1, 0, 0, 0, 1, steps, rec, -1e3)
    with pytest.raises(TypeError, match="longdouble"):
        gd_linear_extended(Z, np.zeros(2), 0.1, 0, 0, 0, 1, steps, rec, -1e3)
    with pytest.raises(ValueError, match="shape"):
        gd_linear_extended(Z, np.zeros(3, LD), 0.1, 0, 0, 0, 1, steps, rec, -1e3)
    with pytest.raises(ValueError, match="C-contiguous"):
        gd_linear_extended(np.asfortranarray(Z), w, 0.1, 0, 0, 0, 1, steps, rec, -1e3)
    with pytest.raises(ValueError, match="shape"):
        gd_linear_extended(Z, w, 0.1, 0, 0, 0, 1, np.array([1], np.int64), rec, -1e3)
    with pytest.raises(TypeError, match="int64"):
        gd_linear_extended(Z, w, 0.1, 0, 0, 0, 1, np.zeros(0, np.int32), rec, -1e3)
    with pytest.raises(ValueError, match="loss"):
        gd_linear_extended(Z, w, 0.1, 2, 0, 0, 1, steps, rec, -1e3)
    with pytest.raises(ValueError, match="step-rule"):
        gd_linear_extended(Z, w, 0.1, 0, 3, 0, 1, steps, rec, -1e3)
    with pytest.raises(ValueError, match="bad sizes"):
        gd_linear_extended(Z, w, 0.1, 0, 0, 0, -1, steps, rec, -1e3)
