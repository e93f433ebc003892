"""Gradient flow (issue 5, item 4): closed forms, GD with small steps, independent integrators.

Expected values and how they were obtained:

* Soudry et al. Appendix B: one point ``x = (1, 0)``, exp loss, ``w1' = exp(-w1)``, so
  ``w1(t) = log(t + exp(w1(0)))`` and ``w2(t) = w2(0)``.
* Orthonormal data ``z_n = q_n`` (rows of an orthogonal matrix): the margins ``u_n = q_n.w``
  decouple, ``u_n' = exp(-u_n)``, so ``u_n(t) = log(t + exp(u_n(0)))`` (the same closed form).
* Depth-2 diagonal network on ``z_n = e_n`` with balanced layers ``u = v``: the margin
  ``m = u v = u^2`` obeys ``m' = 2 m exp(-m)``, i.e. ``Ei(m(t)) = Ei(m(0)) + 2 t``, solved for
  ``m`` with mpmath.
* GD with step size ``eta`` at step k against the flow at ``t = eta k``: the error is O(eta).
* scipy's ``solve_ivp`` (DOP853, tolerance 1e-12) on the NumPy predictor/VJP of each model.
* Linear regression: ``w(t) = w* + V exp(-S^2 t) V^T (w(0) - w*)`` from the SVD of X.
* Soudry Theorem 4 for the flow (``eta = 1``): ``w(t) - w_hat log t -> w_tilde`` with
  ``exp(-z_n.w_tilde) = alpha_n`` (``fastbias.references.w_tilde(X, y, 1.0)``); Appendix B:
  ``1 - cos = ||P_perp w_tilde||^2 / (2 ||w_hat||^2 log^2 t) + O(1 / log^3 t)``.
"""

import warnings

import mpmath
import numpy as np
import pytest
from conftest import random_separable
from scipy.integrate import solve_ivp

import fastbias as fb
from fastbias.diagnostics import angle_gap
from fastbias.exceptions import NotSeparableError
from fastbias.kernels import _numba_flow as nf
from fastbias.losses import get_loss
from fastbias.models import Convolutional, Diagonal, FullyConnected, Linear, Model, Tensor
from fastbias.optim.flow import FlowHistory, flow
from fastbias.references import w_tilde

MODELS = [
    Linear(),
    FullyConnected([]),
    Convolutional(1),
    Diagonal(2),
    Diagonal(3),
    FullyConnected([3]),
    FullyConnected([3, 4]),
    Convolutional(2),
    Convolutional(3, kernel_sizes=[2, 6]),
    Tensor.convolutional(6, [3, 6]),
    Tensor.fully_connected(6, [2]),
]
IDS = [repr(m) for m in MODELS]


def numpy_velocity(mdl, params, Z, targets, loss):
    """``d theta/dt = -grad L`` from the model's NumPy predictor and VJP."""
    beta = mdl.predictor(params)
    if loss == "squared":
        Gb = Z.T @ (targets - Z @ beta)
    else:
        Gb = Z.T @ (-get_loss(loss).derivative(Z @ beta))
    return mdl.flatten(mdl.vjp(params, Gb))


def _problem(loss, seed=3):
    X, y = random_separable(7, 6, seed=seed, margin=0.3)
    if loss == "squared":
        rng = np.random.default_rng(seed)
        return X, rng.standard_normal(7), X
    return X, y, X * y[:, None]


@pytest.mark.parametrize("loss", ["exp", "logistic", "squared"])
@pytest.mark.parametrize("mdl", MODELS, ids=IDS)
def test_compiled_velocity_matches_numpy(mdl, loss):
    X, targets, Z = _problem(loss)
    params = mdl.init_params(6, "gaussian", 1.0, seed=5)
    theta = mdl.flatten(params)
    kind, ZT, ints, offsets, pos, jidx, vals, _ = mdl.gradient_data(Z)
    tg = targets if loss == "squared" else np.zeros(len(Z))
    code = {"exp": 0, "logistic": 1, "squared": 2}[loss]
    for s in (0.0, 0.7, 3.0):
        out = np.empty_like(theta)
        assert nf.flow_derivative(kind, s, theta, ZT, tg, code, ints, offsets, pos, jidx, vals, out)
        expected = np.exp(s) * numpy_velocity(mdl, params, Z, tg, loss)  # d/ds = (1 + t) d/dt
        np.testing.assert_allclose(out, expected, rtol=1e-11, atol=1e-13 * np.abs(expected).max())


# ---- (a) the closed form of Soudry Appendix B ----------------------------------------------


@pytest.mark.parametrize("rtol", [1e-8, 1e-10])
def test_appendix_b_closed_form_to_1e300(rtol):
    run = flow(np.array([[1.0, 0.0]]), init=[0.5, 0.3], rtol=rtol, record=5)
    h = run.history
    assert run.status == "completed" and h["step"][-1] == 1e300 and h["step"][0] <= 1.0
    exact = np.logaddexp(h["log_time"], 0.5)  # log(t + e^0.5)
    err = np.abs(h.iterates[:, 0] - exact) / exact
    assert err.max() < 100 * rtol
    assert np.all(h.iterates[:, 1] == 0.3)  # orthogonal to the data: never moves
    assert run.coef[0] == pytest.approx(np.logaddexp(np.log(1e300), 0.5), rel=100 * rtol)


@pytest.mark.parametrize("w0", [-500.0, 300.0])
def test_appendix_b_extreme_starts(w0):
    """Margin -500 (velocity e^500, time scale e^-500) and +300 (still until t ~ e^300)."""
    run = flow(np.array([[1.0]]), None, init=[w0], record=2)
    h = run.history
    exact = np.logaddexp(h["log_time"], w0)
    np.testing.assert_allclose(h.iterates[:, 0], exact, rtol=1e-8, atol=1e-8)
    assert h["log_loss"][-1] == pytest.approx(-exact[-1], rel=1e-8)


def test_tiny_horizons():
    run = flow(np.array([[1.0]]), None, t_max=1e-300, record=1)
    assert run.history["step"][-1] == 1e-300 and np.all(np.diff(run.history["step"]) > 0)
    assert run.coef[0] == pytest.approx(1e-300, rel=1e-12)  # w(t) = log(1 + t)
    run = flow(np.array([[1.0]]), None, loss="logistic", t_max=1e-5, record=1)
    assert run.coef[0] == pytest.approx(0.5e-5, rel=1e-5)  # w'(0) = 1 / (1 + e^0)


def test_appendix_b_short_horizon_and_explicit_times():
    times = np.array([1e-3, 0.5, 1.0, 7.0, 30.0])
    run = flow(np.array([[1.0, 0.0]]), init=[-1.0, 2.0], t_max=30.0, record=times, rtol=1e-10)
    np.testing.assert_allclose(run.history["step"], times, rtol=1e-15)
    np.testing.assert_allclose(run.history.iterates[:, 0], np.log(times + np.exp(-1.0)), rtol=1e-9)


# ---- (b) GD with small steps ----------------------------------------------------------------


def _gd_flow_error(X, y, model, eta, steps_at, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gd = fb.train(X, y, model=model, lr=eta, steps=int(steps_at[-1]), record=steps_at, **kw)
        fl = flow(X, y, model=model, t_max=eta * steps_at[-1], record=eta * steps_at, **kw)
    assert len(fl.history) == len(gd.history) == len(steps_at)
    return np.abs(fl.history.iterates - gd.history.iterates).max()


@pytest.mark.parametrize(
    "model, data",
    [("linear", "soudry"), (FullyConnected([3]), "random"), (Diagonal(2), "random")],
    ids=["linear", "fc", "diagonal"],
)
def test_gd_with_small_steps_tracks_the_flow(model, data):
    if data == "soudry":
        X, y = fb.datasets.soudry2018()
    else:
        X, y = random_separable(12, 4, seed=11, margin=0.3)
    errors = []
    for eta in (0.02, 0.002):
        steps_at = np.unique(np.round(np.geomspace(1, 50, 8) / eta)).astype(np.int64)
        errors.append(_gd_flow_error(X, y, model, eta, steps_at))
    # Euler's global error is O(eta): a ten times smaller step, about ten times closer
    assert errors[1] < 0.2 * errors[0]
    assert errors[1] < 0.05


# ---- independent integrator ------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["exp", "squared"])
@pytest.mark.parametrize(
    "mdl",
    [
        Diagonal(3),
        FullyConnected([3]),
        Convolutional(3, kernel_sizes=[2, 6]),
        Tensor.convolutional(6, [3, 6]),
    ],
    ids=lambda m: repr(m),
)
def test_matches_scipy_dop853_on_numpy_gradients(mdl, loss):
    X, targets, Z = _problem(loss, seed=4)
    params0 = mdl.init_params(6, "gaussian", 1.0, seed=2)
    theta0 = mdl.flatten(params0)
    tg = targets if loss == "squared" else np.zeros(len(Z))
    times = np.array([0.1, 1.0, 4.0, 10.0])

    def f(t, th):
        return numpy_velocity(mdl, mdl.unflatten(th, 6), Z, tg, loss)

    ref = solve_ivp(
        f, (0, times[-1]), theta0, method="DOP853", t_eval=times, rtol=1e-12, atol=1e-12
    )
    assert ref.success
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = flow(
            X, targets, model=mdl, loss=loss, init=params0, t_max=10.0, record=times, rtol=1e-10
        )
    params = [mdl.unflatten(th, 6) for th in ref.y.T]
    B_ref = np.array([mdl.predictor(p) for p in params])
    np.testing.assert_allclose(run.history.iterates, B_ref, rtol=1e-7, atol=1e-8)


# ---- (c) soudry2018 to t = 1e300 -----------------------------------------------------------


def test_soudry2018_to_1e300_max_margin_direction(soudry_data):
    X, y = soudry_data
    run = flow(X, y)
    h = run.history
    assert run.status == "completed" and h["step"][-1] == 1e300
    sol = fb.max_margin(X, y)
    np.testing.assert_allclose(sol.coef, [0.5, 0.5], atol=1e-12)
    logt = h["log_time"]
    late = logt >= 1.0
    # Appendix B: the angle gap is O(1/log^2 t) (here smaller: w_tilde is parallel to w_hat)
    assert np.all(h["angle_gap"][late] <= 1.0 / logt[late] ** 2)
    assert float(angle_gap(run.coef, sol.coef)) < 1.0 / np.log(1e300) ** 2
    # Theorem 4 with eta = 1: w(t) - w_hat log t -> w_tilde
    wt = w_tilde(X, y, 1.0)
    np.testing.assert_allclose(run.coef - sol.coef * np.log(1e300), wt, atol=1e-6)
    r4 = h["theorem4_residual_norm"]
    assert r4[-1] < 1e-10 and r4[logt > 100].max() < 1e-8 and r4[0] > 0.1
    # the loss falls like 1/t (eq. 3.4): log L + log t -> log sum_S exp(-z_n.w_tilde)
    lim = np.log(np.sum(np.exp(-(X * y[:, None])[sol.support] @ wt)))
    assert h["log_loss"][-1] + logt[-1] == pytest.approx(lim, abs=1e-6)
    assert run.settings["accepted_steps"] > 0 and run.settings["rejected_steps"] >= 0


def test_angle_gap_rate_one_over_log2_t():
    """Support vectors with unequal multipliers: P_perp w_tilde != 0, gap ~ c / log^2 t."""
    X = np.array([[1.0, 1.0], [1.0, -0.5], [2.0, 0.5], [1.5, -1.0]])
    sol = fb.max_margin(X, None)
    np.testing.assert_allclose(sol.coef, [1.0, 0.0], atol=1e-10)
    wt = w_tilde(X, None, 1.0)
    u = sol.coef / np.linalg.norm(sol.coef)
    perp = wt - (wt @ u) * u
    c = perp @ perp / (2 * sol.coef @ sol.coef)
    assert c > 0.05
    run = flow(X, None, record=2)
    h = run.history
    sel = h["log_time"] > 100
    logt = h["log_time"][sel]
    ratio = h["angle_gap"][sel] * logt**2 / c
    np.testing.assert_allclose(ratio, 1.0, atol=5.0 / logt.min())
    assert abs(ratio[-1] - 1) < abs(ratio[0] - 1)  # the O(1/log t) correction shrinks


def test_logistic_loss_to_1e300(soudry_data):
    X, y = soudry_data
    run = flow(X, y, loss="logistic", record=2)
    assert run.status == "completed"
    assert run.history["angle_gap"][-1] < 1e-20
    assert run.history["theorem4_residual_norm"][-1] < 1e-6


# ---- (d) margins of 1e4 and beyond -------------------------------------------------------------


def test_huge_margins_orthonormal_data_direction_moves():
    Q = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))[0]
    u0 = np.array([1e4, 1e4 + 3.0, 1e4 - 2.0])  # margins q_n.w(0); exp(-1e4) underflows
    assert np.exp(-u0).max() == 0.0  # a naive float64 gradient would be exactly zero
    log_t_end = 1e4 + 12.0
    run = flow(Q, None, init=Q.T @ u0, log_t_max=log_t_end, record=1)
    h = run.history
    assert run.status == "completed" and h["log_time"][-1] == log_t_end
    assert "step" not in h and "log_time" in h.overflowed["step"]  # t = exp(10012): no float
    exact_u = np.logaddexp(h["log_time"][:, None], u0[None, :])
    # rtol = 1e-8 of |theta| ~ 1e4: the margins are right to about 1e-4 absolute
    np.testing.assert_allclose(h.iterates @ Q.T, exact_u, rtol=1e-8)
    # the direction moves towards w_hat = Q^T 1 (the spread of the margins shrinks)
    spread = np.ptp(h.iterates @ Q.T, axis=1)
    late = h["log_time"] > 1e4 - 10
    assert spread[late][-1] < 0.01 < 4.9 < spread[late][0]
    assert np.all(np.diff(h["angle_gap"][late]) < 0)
    np.testing.assert_allclose(
        h["log_loss"][-1],
        np.log(np.sum(np.exp(-(exact_u[-1] - exact_u[-1].min())))) - exact_u[-1].min(),
        rtol=1e-10,
    )


def test_huge_margins_diagonal_network_exponential_integral():
    mpmath.mp.dps = 40
    m0 = np.array([1e4, 1e4 + 5.0])
    init = [np.sqrt(m0), np.sqrt(m0)]  # balanced layers u = v, margins u v = m0
    log_t_end = 1e4 + 16.0
    with pytest.warns(UserWarning, match="convergence condition"):  # lambda = 0: balanced
        run = flow(np.eye(2), None, model=Diagonal(2), init=init, log_t_max=log_t_end, record=1)
    h = run.history
    assert run.status == "completed"
    for lt, beta in zip(h["log_time"][-6:], h.iterates[-6:], strict=True):
        for j in range(2):
            target = mpmath.log(mpmath.ei(m0[j]) + 2 * mpmath.exp(lt))
            m = mpmath.findroot(lambda x, tg=target: mpmath.log(mpmath.ei(x)) - tg, lt)
            assert beta[j] == pytest.approx(float(m), rel=1e-7)


def test_moderate_margins_diagonal_network_to_1e300():
    mpmath.mp.dps = 30
    with pytest.warns(UserWarning, match="convergence condition"):
        run = flow(np.eye(1), None, model=Diagonal(2), init=[[1.0], [1.0]], record=1)
    h = run.history
    assert h["step"][-1] == 1e300
    for lt, beta in zip(h["log_time"][::25], h.iterates[::25], strict=True):
        target = mpmath.log(mpmath.ei(1.0) + 2 * mpmath.exp(lt))  # Ei(m) = Ei(1) + 2t
        m = mpmath.findroot(lambda x, tg=target: mpmath.log(mpmath.ei(x)) - tg, max(lt, 1.0) + 1)
        assert beta[0] == pytest.approx(float(m), rel=1e-7)


# ---- squared loss ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 8), (20, 4)], ids=["underdetermined", "overdetermined"])
def test_linear_regression_matches_svd_closed_form(shape):
    rng = np.random.default_rng(1)
    X = rng.standard_normal(shape)
    targets = rng.standard_normal(shape[0])
    w0 = rng.standard_normal(shape[1])
    run = flow(X, targets, loss="squared", init=w0, record=5)
    assert run.status == "converged" and run.history["step"][-1] == 1e300
    _, S, Vt = np.linalg.svd(X, full_matrices=False)
    w_star = w0 + np.linalg.lstsq(X, targets - X @ w0, rcond=None)[0]  # the flow's limit
    for lt, w in zip(run.history["log_time"], run.history.iterates, strict=True):
        exact = w_star + Vt.T @ (np.exp(-(S**2) * np.exp(lt)) * (Vt @ (w0 - w_star)))
        np.testing.assert_allclose(w, exact, atol=1e-7)
    assert run.settings["t_final"] < 1e4  # stopped at rest, not at t_max


# ---- bookkeeping -----------------------------------------------------------------------------


def test_chunked_integration_is_bit_identical():
    X, y = random_separable(9, 6, seed=1)
    mdl = FullyConnected([3])
    kind, ZT, ints, offsets, pos, jidx, vals, net = mdl.gradient_data(X * y[:, None])
    theta0 = mdl.flatten(mdl.init_params(6, "gaussian", 1.0, 0))
    rec_s = np.log1p(np.geomspace(0.1, 1e20, 9))
    args = (ZT, np.zeros(9), 0, ints, offsets, pos, jidx, vals, net)
    outs = []
    for chunk in (10**6, 7):
        theta, state, k1 = theta0.copy(), np.zeros(nf.STATE_SIZE), np.zeros(theta0.size)
        rec = np.zeros((9, theta0.size))
        while True:
            code = nf.integrate(
                kind, theta, state, k1, rec_s[-1], rec_s, rec, 1e-8, 1e-12, chunk, *args
            )
            if code != nf.FLOW_CHUNK:
                break
        assert code == nf.FLOW_DONE
        outs.append((theta, rec, state))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    np.testing.assert_array_equal(outs[0][2], outs[1][2])


def test_history_columns_and_csv(tmp_path, soudry_data):
    X, y = soudry_data
    run = flow(X, y, t_max=1e6, record=2)
    h = run.history
    assert isinstance(h, FlowHistory)
    assert list(h.columns)[:2] == ["step", "log_time"]
    assert h["step"].dtype == np.float64
    np.testing.assert_allclose(np.log(h["step"]), h["log_time"], rtol=1e-14, atol=1e-15)
    for key in ("accepted_steps", "rejected_steps", "gradient_evaluations"):
        assert run.settings[key] == h.meta[key] and isinstance(run.settings[key], int)
    assert run.steps_done == run.settings["accepted_steps"]
    data = np.genfromtxt(h.to_csv(tmp_path / "flow.csv"), delimiter=",", names=True)
    np.testing.assert_allclose(data["step"], h["step"], rtol=1e-15)
    np.testing.assert_allclose(data["angle_gap"], h["angle_gap"], rtol=1e-15)
    assert "log_time" in h.table()
    assert run.rates()["loss"].exponent == pytest.approx(1.0, abs=0.05)


def test_max_steps_stops_with_warning(soudry_data):
    X, y = soudry_data
    with pytest.warns(UserWarning, match="max_steps=20"):
        run = flow(X, y, max_steps=20)
    assert run.status == "max_steps"
    assert run.settings["accepted_steps"] + run.settings["rejected_steps"] == 20
    assert run.history["log_time"][-1] == pytest.approx(run.settings["log_t_final"])
    assert run.settings["t_final"] < 1e300


# ---- bad input ---------------------------------------------------------------------------------


def test_bad_arguments(soudry_data):
    X, y = soudry_data
    for bad in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="t_max must be > 0 and finite"):
            flow(X, y, t_max=bad)
    with pytest.raises(ValueError, match="log_t_max must be finite"):
        flow(X, y, log_t_max=np.inf)
    for bad in (0.0, -1e-8, 0.5, np.nan, 1e-15):
        with pytest.raises(ValueError, match="rtol must be in"):
            flow(X, y, rtol=bad)
    with pytest.raises(ValueError, match="atol must be >= 0"):
        flow(X, y, atol=-1.0)
    with pytest.raises(ValueError, match="record times must be <= t_max=10"):
        flow(X, y, t_max=10.0, record=[1.0, 100.0])
    with pytest.raises(ValueError, match="record times must be finite and > 0"):
        flow(X, y, record=[0.0, 1.0])
    with pytest.raises(ValueError, match="Unknown loss"):
        flow(X, y, loss="hinge")

    class Custom(Linear):
        pass

    with pytest.raises(ValueError, match="compiled gradients for Linear"):
        flow(X, y, model=Custom())
    assert issubclass(Custom, Model)


@pytest.mark.parametrize("loss", ["exp", "logistic"])
def test_non_separable_data_raise(loss):
    X = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(NotSeparableError, match="needs linearly separable data"):
        flow(X, np.array([1, 1, -1]), loss=loss)


def test_overflowing_start_is_reported():
    from fastbias.exceptions import SolverError

    with pytest.raises(SolverError, match="velocity is not finite"):
        flow(np.array([[1.0]]), np.array([1]), init=[-800.0])


def test_ctrl_c_returns_the_partial_run():
    from conftest import ctrl_c_while_running

    with ctrl_c_while_running():
        run = flow(np.array([[1.0, 0.0]]), init=[0.5, 0.0], log_t_max=1e8, record=[1.0, 10.0],
                   chunk_seconds=0.02)  # fmt: skip
    assert run.status == "interrupted"
    h = run.history
    assert h["log_time"][-1] == run.settings["log_t_final"] < 1e8
    # (t past 1.8e308 at the end: no step column, log_time has the times)
    np.testing.assert_allclose(np.exp(h["log_time"][:2]), [1.0, 10.0], rtol=1e-15)
    # the iterate kept is the flow at the time reached: Appendix B closed form
    assert run.coef[0] == pytest.approx(np.logaddexp(h["log_time"][-1], 0.5), rel=1e-8)
