"""pytest-benchmark suite for the regression references (Yun et al. 2021, Section 5).

Run: ``pytest bench/bench_regression_refs.py --benchmark-only``.

* ``H_L`` and ``h_L`` of Lemma 4 on 10^6 points (target: under 0.5 s), next to the NumPy
  closed forms that exist for L = 2 (asinh/sinh) and L = 3 (Cardano's root of T^3 + T = t,
  tan/atan): the compiled kernel has no closed form to lean on for L >= 4.
* The Theorem 5 minimizer (dual Newton + primal polish) for n = 20 constraints, d = 200.
* ``implicit_regularizer`` of a 3-layer convolutional network (d = 8).
"""

import numpy as np
import pytest

from fastbias.models import Convolutional
from fastbias.references.regression import H_L, h_L, lemma4_radius, q_minimizer
from fastbias.references.regularizer import implicit_regularizer

N_POINTS = 1_000_000
RNG = np.random.default_rng(0)
T_POINTS = RNG.standard_normal(N_POINTS) * 10.0 ** RNG.uniform(-3, 4, N_POINTS)
U_FRACTIONS = RNG.uniform(-0.999, 0.999, N_POINTS)


def numpy_H2(t):
    """H_2(t) = t asinh(2t)/2 - (sqrt(1 + 4t^2) - 1)/4."""
    return t * np.arcsinh(2 * t) / 2 - t * t / (np.hypot(1.0, 2 * t) + 1.0)


def numpy_H3(t):
    """H_3(t) = t atan(T) - T^2/2 with T^3 + T = |t| (Cardano, one real root)."""
    a = np.abs(t)
    r = np.sqrt(a * a / 4 + 1.0 / 27)
    T = np.cbrt(a / 2 + r) - np.cbrt(r - a / 2)
    return a * np.arctan(T) - T * T / 2


BACKENDS = ["fastbias-L2", "fastbias-L3", "fastbias-L4", "fastbias-L8", "numpy-L2", "numpy-L3"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_H_L_1e6(benchmark, backend):
    benchmark.group = "H_L on 1e6 points (|t| log-uniform in [1e-3, 1e4])"
    if backend.startswith("fastbias"):
        L = int(backend.split("L")[1])
        H_L(T_POINTS[:10], L)  # compile / warm up
        fn = lambda: H_L(T_POINTS, L)  # noqa: E731
    elif backend == "numpy-L2":
        fn = lambda: numpy_H2(T_POINTS)  # noqa: E731
    else:
        fn = lambda: numpy_H3(T_POINTS)  # noqa: E731
    benchmark.extra_info["points"] = N_POINTS
    benchmark(fn)


@pytest.mark.parametrize("L", [2, 3, 4, 8])
def test_h_L_1e6(benchmark, L):
    benchmark.group = "h_L on 1e6 points (uniform in (-0.999 c_L, 0.999 c_L), c_2 := 5)"
    c = lemma4_radius(L) if L > 2 else 5.0
    u = U_FRACTIONS * c
    h_L(u[:10], L)
    benchmark.extra_info["points"] = N_POINTS
    benchmark(lambda: h_L(u, L))


@pytest.mark.parametrize("L", [2, 3])
def test_q_minimizer_n20_d200(benchmark, L):
    benchmark.group = "Theorem 5 minimizer, n=20, d=200"
    rng = np.random.default_rng(1)
    X = rng.standard_normal((20, 200))
    y = rng.standard_normal(20)
    eta = rng.uniform(0.5, 2.0, 200)
    q_minimizer(X, y, L, 0.1, eta)
    benchmark(lambda: q_minimizer(X, y, L, 0.1, eta))


def test_implicit_regularizer_conv3(benchmark):
    benchmark.group = "implicit_regularizer, Convolutional(3), d=8, 3 starts"
    beta = np.random.default_rng(2).standard_normal(8)
    benchmark.pedantic(
        lambda: implicit_regularizer(Convolutional(3), beta, n_starts=3), rounds=3, iterations=1
    )
