"""pytest-benchmark suite for gradient flow to t = 1e300 (issue 5, item 4).

Run: ``pytest bench/bench_flow.py --benchmark-only``. Target: ``fastbias.flow`` on
``soudry2018()`` to ``t = 1e300`` in under 1 s (the whole call: max-margin reference, compiled
integration, history). Next to it: the compiled integrator alone, scipy's ``solve_ivp``
(RK45, same tolerance, same log-time ODE with a NumPy log-domain right-hand side), and the
flow of two deep models. ``extra_info`` records the accepted/rejected steps and the final
angle gap.
"""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import fastbias as fb
from fastbias.kernels import _numba_flow as nf
from fastbias.models import Convolutional, FullyConnected
from fastbias.optim.flow import flow

SOUDRY = fb.datasets.soudry2018()
T_MAX = 1e300


def _info(benchmark, run):
    benchmark.extra_info["accepted_steps"] = run.settings["accepted_steps"]
    benchmark.extra_info["rejected_steps"] = run.settings["rejected_steps"]
    benchmark.extra_info["records"] = len(run.history)
    if "angle_gap" in run.history:
        benchmark.extra_info["angle_gap_at_t_max"] = float(run.history["angle_gap"][-1])


def test_flow_soudry2018_to_1e300(benchmark):
    benchmark.group = "gradient flow to t = 1e300, soudry2018 (N=16, d=2)"
    X, y = SOUDRY
    flow(X, y)  # compile / load the cache
    run = benchmark(flow, X, y)
    _info(benchmark, run)
    assert run.status == "completed"
    assert run.history["angle_gap"][-1] < 1.0 / np.log(T_MAX) ** 2


def test_integrator_only_soudry2018(benchmark):
    """The compiled integration with 10 records per decade, without reference or history."""
    benchmark.group = "gradient flow to t = 1e300, soudry2018 (N=16, d=2)"
    X, y = SOUDRY
    kind, ZT, ints, offsets, pos, jidx, vals, net = fb.models.Linear().gradient_data(X * y[:, None])
    rec_s = np.logaddexp(0.0, np.arange(0, 3001) / 10 * np.log(10.0))

    def go():
        theta, state, k1 = np.zeros(2), np.zeros(nf.STATE_SIZE), np.zeros(2)
        rec = np.zeros((rec_s.size, 2))
        args = (ZT, np.zeros(len(X)), 0, ints, offsets, pos, jidx, vals, net)
        code = nf.integrate(
            kind, theta, state, k1, rec_s[-1], rec_s, rec, 1e-8, 1e-12, 10**7, *args
        )
        assert code == nf.FLOW_DONE
        return theta

    go()
    benchmark(go)


def _scipy_log_time_flow(Z, s_end, rtol):
    """The same ODE, ``d w/ds = exp(s - m_min) Z^T exp(-(m - m_min))``, in scipy (NumPy RHS)."""

    def f(s, w):
        m = Z @ w
        top = m.min()
        return np.exp(s - top) * (Z.T @ np.exp(-(m - top)))

    return solve_ivp(f, (0.0, s_end), np.zeros(Z.shape[1]), method="RK45", rtol=rtol, atol=1e-12)


def test_scipy_rk45_soudry2018(benchmark):
    benchmark.group = "gradient flow to t = 1e300, soudry2018 (N=16, d=2)"
    X, y = SOUDRY
    Z = X * y[:, None]
    sol = benchmark(_scipy_log_time_flow, Z, float(np.log1p(T_MAX)), 1e-8)
    assert sol.success
    benchmark.extra_info["accepted_steps"] = int(sol.t.size - 1)


@pytest.mark.parametrize(
    "model", [FullyConnected([50]), Convolutional(2)], ids=["fc50", "conv2-full"]
)
def test_flow_deep_model_to_1e300(benchmark, model):
    X, y = fb.datasets.separable_gaussian(200, 50, margin=0.1, seed=0)
    benchmark.group = f"gradient flow to t = 1e300, {model!r}, d=50, N=200"
    flow(X, y, model=model, t_max=10.0)
    run = benchmark.pedantic(flow, (X, y), {"model": model, "record": 2}, rounds=1, iterations=1)
    _info(benchmark, run)
    assert run.status == "completed"
