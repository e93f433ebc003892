"""The float64 C linear kernel gives the same bits whatever its number of OpenMP threads.

``fb_gd_linear_f64`` sums a step's gradient over groups of 16 panels (256 samples) added as
the leaves of a fixed binary tree, and its threaded driver takes the serial driver's decisions
(in the shift regime: a margins pass, the exact minimum, then the weights). So runs with 1, 2
and 3 threads (more threads than this machine's cores is allowed) must agree byte for byte, in
direct mode and in the shift regime, and chunked calls must reproduce one call. Agreement with
the NumPy reference is checked in ``test_c_float64.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

try:
    import fastbias._cext  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the build
    if exc.name != "fastbias._cext":
        raise
    pytest.skip(f"fastbias._cext is not built ({exc})", allow_module_level=True)

from fastbias.kernels import STATUS_OK
from fastbias.kernels._c import gd_linear_float64

GROUP = 256  # samples per group (FB_GROUP panels of 16)
# N not a multiple of 16 or of GROUP; 2..14 groups, so that 2 and 3 threads split the tree
# at different places (and 3 threads get unequal ranges).
SHAPES = [(300, 3), (777, 17), (1000, 64), (2049, 5), (3590, 8)]
THREADS = [1, 2, 3]


def separable(N: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``z_n = y_n x_n`` separable by the unit vector u (returned) with margin."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    X = rng.standard_normal((N, d))
    return X * np.sign(X @ u)[:, None] + 0.2 * u, u


def run(Z, w0, lr, loss, rule, n_threads, steps=200, chunks=None):
    """Status, fail step, final w and records (as bytes) of one call, or of chunked calls."""
    d = Z.shape[1]
    w = w0.copy()
    rec_steps = np.array([1, 77, steps], dtype=np.int64)
    rec = np.zeros((3, d))
    if chunks is None:
        out = gd_linear_float64(Z, w, lr, loss, rule, 0, steps, rec_steps, rec, -1e3, n_threads)
        return out, w.tobytes(), rec.tobytes()
    step0 = 0
    for n in chunks:
        inside = rec_steps[(rec_steps > step0) & (rec_steps <= step0 + n)]
        part = np.zeros((inside.shape[0], d))
        out = gd_linear_float64(Z, w, lr, loss, rule, step0, n, inside, part, -1e3, n_threads)
        assert out == (STATUS_OK, step0 + n)
        rec[np.searchsorted(rec_steps, inside)] = part
        step0 += n
    return out, w.tobytes(), rec.tobytes()


def problem(N: int, d: int, rule: int, start: str):
    """Data, start and step size. start "zero": direct mode throughout; "near": minimum
    margin 295, just inside the direct range (rules 1 and 2 grow the margins and cross into
    the shift regime); "far": minimum margin 400, the shift regime from step 0 on. Rule 0's
    step size is scaled by e^(that margin), or its steps would not change w."""
    Z, u = separable(N, d, seed=N + d)
    s = {"zero": 0.0, "near": 295.0, "far": 400.0}[start]
    w0 = u * s / (Z @ u).min()
    lr = {0: np.exp(s) / np.linalg.norm(Z, 2) ** 2, 1: 2.0, 2: 2.0}[rule]
    return Z, w0, lr


@pytest.mark.parametrize("N,d", SHAPES)
@pytest.mark.parametrize("loss", [0, 1])
@pytest.mark.parametrize("rule", [0, 1, 2])
@pytest.mark.parametrize("start", ["zero", "near", "far"])
def test_thread_count_does_not_change_the_bits(
    N: int, d: int, loss: int, rule: int, start: str
) -> None:
    Z, w0, lr = problem(N, d, rule, start)
    results = [run(Z, w0, lr, loss, rule, n_threads) for n_threads in THREADS]
    assert results[0][0] == (STATUS_OK, 200)
    w = np.frombuffer(results[0][1])
    assert np.all(np.isfinite(w)) and np.any(w != w0)
    if start == "far" or (start == "near" and rule != 0):  # not a test of direct mode only
        assert (Z @ w).min() > 300
    for other in results[1:]:
        assert other == results[0]


@pytest.mark.parametrize("N,d", [(777, 17), (3590, 8)])
@pytest.mark.parametrize("loss", [0, 1])
@pytest.mark.parametrize("rule", [0, 1, 2])
def test_chunked_calls_equal_one_call_in_the_shift_regime(
    N: int, d: int, loss: int, rule: int
) -> None:
    """Resumed runs (step0 > 0) take the same steps as one call, whatever the threads."""
    Z, w0, lr = problem(N, d, rule, "far")
    one = run(Z, w0, lr, loss, rule, 1)
    assert (Z @ np.frombuffer(one[1])).min() > 300
    for n_threads in THREADS:
        for chunks in ([100, 100], [1, 76, 60, 63]):
            assert run(Z, w0, lr, loss, rule, n_threads, chunks=chunks) == one


@pytest.mark.parametrize("rule", [0, 1, 2])
def test_baseline_code_too(rule: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The baseline x86-64 copy of the drivers (no AVX2, no FMA) is thread-independent too."""
    monkeypatch.setenv("FASTBIAS_NO_AVX2", "1")
    for start in ("zero", "far"):
        Z, w0, lr = problem(2049, 5, rule, start)
        for loss in (0, 1):
            results = [run(Z, w0, lr, loss, rule, n_threads) for n_threads in THREADS]
            assert results[0][0] == (STATUS_OK, 200)
            for other in results[1:]:
                assert other == results[0]
