"""Issues 11.3 and 15: the bad-input and fault corpus of the whole public API, table driven.

Every case is a few lines of user code run in a fresh namespace in a *subprocess* (so a
segfault or a hang is a failing case, not a dead suite), with one expectation:

* ``raises="ValueError: regex"``: a clear error of that type (or a subclass) whose message
  matches ``regex`` (it names the argument and the problem);
* otherwise the code must finish, every ``Run`` / history / array it leaves in the names
  ``r``, ``runs``, ``sol``, ``res`` must be finite, and ``check`` (assertions) must hold.

In every case the caller's arrays are never modified (each array in the namespace is
compared with a copy taken before), numpy's overflow / invalid / divide-by-zero warnings are
errors, and ``warns=regex`` asks for a warning. Cases run in batches of worker processes,
two at a time; a worker that dies or hangs fails the case it was running (each case has its
own time budget) and the rest of its batch is run again in a new worker.
"""

# ruff: noqa: E501  (the table's rows are user code in strings; they read best unbroken)
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest


@dataclass
class Case:
    id: str
    code: str
    raises: str | None = None
    check: str = ""
    warns: str | None = None
    # seconds: a hang detector, not a speed test. A case may be the first to compile a kernel
    # (25-35 s alone on a quiet 2-core VM, over 60 s with both cores busy: seen failing at 60)
    timeout: float = 300.0
    alone: bool = False


CASES: list[Case] = []


def case(id, code, raises=None, check="", warns=None, timeout=300.0, alone=False):
    assert id not in {c.id for c in CASES}, id
    CASES.append(Case(id, code, raises, check, warns, timeout, alone))


# ---- the namespace every case starts from ----------------------------------------------------
PRELUDE = r"""
import warnings
import numpy as np
import fastbias as fb
from fastbias import analysis
from fastbias.models import (Convolutional, Diagonal, FullyConnected, Linear, Network,
                             Tensor)

X, y = fb.datasets.soudry2018()                     # (16, 2), separable, labels -1/+1
Xg, yg = fb.datasets.separable_gaussian(12, 4, margin=0.1, seed=1)
Xn = X.copy(); Xn[3, 1] = np.nan
Xinf = X.copy(); Xinf[0, 0] = -np.inf
X1d = X[:, 0].copy()
X3d = X.reshape(16, 2, 1).copy()
X0rows = np.zeros((0, 2))
X0cols = np.zeros((16, 0))
Xobj = np.array([[1.0, "abc"]] * 16, dtype=object)
Xnone = np.array([[1.0, None]] * 16, dtype=object)     # None converts to NaN
Xstr = np.array([["1.0", "abc"]] * 16)
Xint = np.round(X * 4).astype(np.int64)
X32 = X.astype(np.float32)
XF = np.asfortranarray(X)
Xwide = np.zeros((16, 4)); Xwide[:, ::2] = X
Xstrided = Xwide[:, ::2]                            # a non-contiguous view of X
Xbig, Xtiny = X * 1e200, X * 1e-300
y01 = (y > 0).astype(np.int64)
ypm = y.astype(np.int64)
ystr = np.where(y > 0, "spam", "ham")
y3 = np.arange(16) % 3
yone = np.ones(16)
ynan = y.copy(); ynan[2] = np.nan
yshort = y[:15].copy()
y2d = np.stack([y, y], axis=1)
Xdup = np.vstack([X[:4], X[:4]]); ydup = np.concatenate([y[:4], -y[:4]])
Xsym = np.array([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
ysym = np.array([1.0, 1.0, -1.0, -1.0])
X4 = np.array([[1.0, 2.0], [2.0, 0.5], [-1.0, -1.5], [-2.0, -1.0]])   # issue 15's problem
y4 = np.array([1.0, 1.0, -1.0, -1.0])
Xm = np.array([[1.0, 0.0], [2.0, 0.1], [0.0, 1.0], [0.1, 2.0], [-1.0, -1.0], [-2.0, -1.5]])
ym = np.array([0, 0, 1, 1, 2, 2])                   # three classes, separable through 0
Xd1 = np.array([[1.0], [2.0], [-1.5], [0.5], [-0.7]]); yd1 = np.sign(Xd1[:, 0])
rng = np.random.default_rng(0)
Xr = rng.standard_normal((6, 10)); tr = rng.standard_normal(6)     # interpolable regression
Xover = rng.standard_normal((10, 3)); tover = rng.standard_normal(10)  # not interpolable
net = Network.fully_connected(2, [3], activation="relu")
# relu(w.x) - relu(-w.x) = w.x with w = w_hat: classifies the data with margins >= 1
theta = np.concatenate([[0.5, 0.5, -0.5, -0.5, 0.3, -0.2], [1.0, -1.0, 0.1]])
beta = fb.max_margin(X, y).coef
"""

HELPERS = r"""
import io, contextlib, math, tempfile, pathlib

def finite(obj, where="result"):
    '''Everything a user reads back from obj is finite (Runs, histories, arrays, solutions).'''
    from fastbias.optim.history import History, Run
    if obj is None or isinstance(obj, (str, bool, int)):
        return
    if isinstance(obj, float):
        assert math.isfinite(obj), f"{where} = {obj}"
        return
    if isinstance(obj, (list, tuple)):
        for i, o in enumerate(obj):
            finite(o, f"{where}[{i}]")
        return
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "fc":
            assert np.all(np.isfinite(obj)), f"{where} has NaN/inf"
        return
    if isinstance(obj, History):
        for name, col in obj.columns.items():
            assert np.all(np.isfinite(col)), f"{where}[{name!r}] has NaN/inf: {col}"
        finite(obj.directions, f"{where}.directions")
        return
    if isinstance(obj, Run):
        assert obj.status in ("completed", "interrupted", "converged", "max_steps",
                              "loss underflow: iterate frozen"), obj.status
        finite(obj.history, f"{where}.history")
        finite(obj.direction, f"{where}.direction")
        finite(obj.scaled_params, f"{where}.scaled_params")
        if obj.log_coef_norm is not None:
            finite(float(obj.log_coef_norm), f"{where}.log_coef_norm")
        return
    for attr in ("coef", "direction", "margin", "W", "iterates", "log_loss",
                 "normalized_margin", "residual"):
        if hasattr(obj, attr):
            val = getattr(obj, attr)
            if isinstance(val, (np.ndarray, float)):
                finite(val, f"{where}.{attr}")

def cli(*argv, data=None):
    '''Run `fastbias ...` in this process; returns (exit code, stderr text).'''
    from fastbias.cli import main
    tmp = pathlib.Path(tempfile.mkdtemp())
    args = list(argv)
    if data is not None:
        Xd, yd = data
        np.savez(tmp / "d.npz", X=Xd, **({} if yd is None else {"y": yd}))
        args = [args[0], str(tmp / "d.npz")] + args[1:]
    args += ["--out", str(tmp / "out")] if args and args[0] == "run" else []
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(args)
        except SystemExit as exc:  # argparse: a usage error
            code = exc.code
    return code, err.getvalue()

def same(a, b, rtol=1e-12):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=1e-14)
"""


# ---- the cases -------------------------------------------------------------------------------

# Which call each API gets, with {X} and {y} filled in by the variant under test.
CLASSIFIERS = {
    "train": "r = fb.train({X}, {y}, steps=30)",
    "train_deep": "r = fb.train({X}, {y}, model='diag:2', steps=30)",
    "train_batch": "runs = fb.train_batch({X}, {y}, seeds=[0, 1], steps=30, n_workers=1)",
    "flow": "r = fb.flow({X}, {y}, t_max=1e4)",
    "max_margin": "sol = fb.max_margin({X}, {y})",
    "max_margin_l1": "sol = fb.max_margin({X}, {y}, norm='l1')",
    "predicted_limit": "sol = fb.predicted_limit('diag:2', {X}, {y})",
    "stationarity": "res = fb.stationarity(beta, {X}, {y})",
    "kkt": "res = analysis.kkt(net, theta, {X}, {y})",
    "cli": "code, err = cli('run', '--steps', '30', data=({X}, {y})); assert code == 0, err",
}
CLI_ERROR = "code, err = cli('run', '--steps', '30', data=({X}, {y})); assert code == 2, err; assert {check!r} in err, err"

BAD_X = {
    # variant: (expression, regex of the error)
    "nan": ("Xn", r"X contains NaN or inf \(first at row 3, column 1\)"),
    "inf": ("Xinf", r"X contains NaN or inf"),
    "1d": ("X1d", r"X must be 2-D"),
    "3d": ("X3d", r"X must be 2-D"),
    "no_rows": ("X0rows", r"X is empty"),
    "no_cols": ("X0cols", r"X is empty"),
    "object": ("Xobj", r"X must be a numeric array"),
    "none": ("Xnone", r"X contains NaN or inf"),
    "str": ("Xstr", r"X must be a numeric array"),
}
for api, call in CLASSIFIERS.items():
    for variant, (expr, regex) in BAD_X.items():
        yexpr = "y" if variant not in ("no_rows",) else "None"
        if api == "cli":
            if variant in ("object", "str", "none"):
                continue  # np.savez cannot store these without pickle
            case(f"{api}/X_{variant}", CLI_ERROR.format(X=expr, y=yexpr, check="X "))
        else:
            case(f"{api}/X_{variant}", call.format(X=expr, y=yexpr), raises=f"ValueError: {regex}")

ACCEPTED_X = {
    "ints": "Xint",
    "float32": "X32",
    "fortran": "XF",
    "strided": "Xstrided",
    "list": "X.tolist()",
}
SAME_AS_FLOAT64 = {
    "train": "same(r.coef, fb.train(np.array({X}, float), y, steps=30).coef)",
    "train_deep": "same(r.coef, fb.train(np.array({X}, float), y, model='diag:2', steps=30).coef)",
    "train_batch": "same(runs[1].coef, fb.train(np.array({X}, float), y, seed=1, steps=30).coef)",
    "flow": "same(r.coef, fb.flow(np.array({X}, float), y, t_max=1e4).coef, rtol=1e-9)",
    "max_margin": "same(sol.coef, fb.max_margin(np.array({X}, float), y).coef, rtol=1e-9)",
    "max_margin_l1": "same(sol.coef, fb.max_margin(np.array({X}, float), y, norm='l1').coef, rtol=1e-9)",
    "predicted_limit": "same(sol.coef, fb.predicted_limit('diag:2', np.array({X}, float), y).coef, rtol=1e-9)",
    "stationarity": "assert res.residual == fb.stationarity(beta, np.array({X}, float), y).residual",
    "kkt": "same(res.residual, analysis.kkt(net, theta, np.array({X}, float), y).residual)",
    "cli": "",
}
for api, call in CLASSIFIERS.items():
    for variant, expr in ACCEPTED_X.items():
        if api == "cli" and variant == "list":
            continue
        case(
            f"{api}/X_{variant}_accepted",
            call.format(X=expr, y="y"),
            check=SAME_AS_FLOAT64[api].format(X=expr),
        )

BAD_Y = {
    "nan": ("ynan", r"y contains NaN"),
    "short": ("yshort", r"X has 16 rows but y has 15"),
    "2d": ("y2d", r"y must be a 1-D array"),
    "three_classes": ("y3", r"y has 3 distinct labels"),
}
for api, call in CLASSIFIERS.items():
    if api in ("cli",):
        continue
    for variant, (expr, regex) in BAD_Y.items():
        case(f"{api}/y_{variant}", call.format(X="X", y=expr), raises=f"ValueError: {regex}")
for variant, expr in {"01": "y01", "pm1_ints": "ypm", "strings": "ystr"}.items():
    for api in ("train", "max_margin", "flow", "stationarity", "kkt"):
        case(
            f"{api}/y_{variant}_accepted",
            CLASSIFIERS[api].format(X="X", y=expr),
            check=SAME_AS_FLOAT64[api].format(X="X"),
        )
case("cli/y_three_classes", CLI_ERROR.format(X="X", y="y3", check="3 distinct labels"))
# one label value: every point is +1; max_margin says why it is not separable
case("train/y_one_value", "r = fb.train(X, yone, steps=30)", warns="not linearly separable")
case(
    "max_margin/y_one_value",
    "fb.max_margin(X, yone)",
    raises="NotSeparableError: not linearly separable",
)
case(
    "max_margin/y_one_value_separable",
    "sol = fb.max_margin(np.abs(X), yone)",
    check="assert sol.margin > 0",
)

# duplicated points with opposite labels: not separable, said clearly
case(
    "train/duplicates_opposite_labels",
    "r = fb.train(Xdup, ydup, steps=50)",
    warns="not linearly separable",
)
case(
    "max_margin/duplicates_opposite_labels",
    "fb.max_margin(Xdup, ydup)",
    raises="NotSeparableError: not linearly separable",
)
case(
    "flow/duplicates_opposite_labels",
    "fb.flow(Xdup, ydup)",
    raises="NotSeparableError: needs linearly separable data",
)
case(
    "predicted_limit/duplicates_opposite_labels",
    "fb.predicted_limit('linear', Xdup, ydup)",
    raises="NotSeparableError: not linearly separable",
)
case("train_deep/duplicates_opposite_labels", "r = fb.train(Xdup, ydup, model='fc:3', steps=50)")

# ---- scale: 1e200 and 1e-300 ------------------------------------------------------------------
for tag, expr in (("1e200", "Xbig"), ("1e-300", "Xtiny")):
    scale = "1e200" if tag == "1e200" else "1e-300"
    # scale-invariant problems work at any scale (the solution scales by 1/c)
    case(
        f"max_margin/scale_{tag}",
        f"sol = fb.max_margin({expr}, y)",
        check=f"same(sol.coef * {scale}, fb.max_margin(X, y).coef, rtol=1e-9)",
    )
    case(
        f"max_margin_l1/scale_{tag}",
        f"sol = fb.max_margin({expr}, y, norm='l1')",
        check=f"same(sol.coef * {scale}, fb.max_margin(X, y, norm='l1').coef, rtol=1e-8)",
    )
    case(
        f"predicted_limit/scale_{tag}",
        f"sol = fb.predicted_limit('diag:2', {expr}, y)",
        check="same(sol.direction, fb.predicted_limit('diag:2', X, y).direction, rtol=1e-8)",
    )
    case(
        f"predicted_limit_linear/scale_{tag}",
        f"sol = fb.predicted_limit('linear', {expr}, y)",
        check="same(sol.direction, fb.predicted_limit('linear', X, y).direction, rtol=1e-9)",
    )
    case(
        f"stationarity/scale_{tag}",
        f"res = fb.stationarity(beta / {scale}, {expr}, y)",
        check="assert res.residual < 1e-9, res",
    )
    # the flow on c X at time t is the flow on X at time c**2 t (in w / c); for c = 1e-300 that
    # time is ~1e-596: the flow has moved along its first direction Z^T 1 only
    expected = (
        "fb.flow(X, y, log_t_max=np.log(1e4) + 2 * np.log(1e200)).direction"
        if tag == "1e200"
        else "(X * y[:, None]).sum(0) / np.linalg.norm((X * y[:, None]).sum(0))"
    )
    case(
        f"flow/scale_{tag}",
        f"r = fb.flow({expr}, y, t_max=1e4)",
        check=f"same(r.direction, {expected}, rtol=1e-8)",
    )
    # gradient descent is not scale-invariant (the step size is not): a clear error
    for api in ("train", "train_deep", "train_batch"):
        case(
            f"{api}/scale_{tag}",
            CLASSIFIERS[api].format(X=expr, y="y"),
            raises="ValueError: (default step size .* does not fit in float64|initial "
            "outputs .* largest entry of X)",
        )
    case(f"cli/scale_{tag}", CLI_ERROR.format(X=expr, y="y", check="does not fit in float64"))
    case(
        f"train/scale_{tag}_with_lr",
        f"r = fb.train({expr}, y, steps=30, lr=1e-3)",
        **({"raises": "DivergenceError: .*not representable in float64"} if tag == "1e200" else {}),
    )
for tag, scale in (("1e200", "1e200"), ("1e-300", "1e-300")):
    case(
        f"max_margin_multiclass/scale_{tag}",
        f"sol = fb.max_margin(Xm * {scale}, ym, multiclass=True)",
        check=f"same(sol.coef * {scale}, fb.max_margin(Xm, ym, multiclass=True).coef, rtol=1e-9)",
    )
    case(
        f"train_multiclass/scale_{tag}",
        f"fb.train_multiclass(Xm * {scale}, ym, steps=30)",
        raises="ValueError: default step size .* does not fit in float64",
    )
case(
    "train_multiclass/scale_1e-300_with_lr",
    "res = fb.train_multiclass(Xm * 1e-300, ym, steps=30, lr=1.0)",
)
case(
    "train_multiclass/scale_1e200_with_lr",
    "fb.train_multiclass(Xm * 1e200, ym, steps=30, lr=1e-3)",
    raises="DivergenceError: .*not representable in float64",
)
case(
    "max_margin_multiclass/not_separable",
    "fb.max_margin(X, y3, multiclass=True)",
    raises="NotSeparableError: not linearly separable into its classes",
)
case(
    "max_margin_multiclass/X_nan",
    "fb.max_margin(Xn, y3, multiclass=True)",
    raises="ValueError: X contains NaN",
)
case(
    "min_norm/scale_1e200",
    "sol = fb.min_norm(Xr * 1e200, tr)",
    check="same(sol.coef * 1e200, fb.min_norm(Xr, tr).coef, rtol=1e-9)",
)
case(
    "min_norm/scale_1e-300",
    "sol = fb.min_norm(Xr * 1e-300, tr)",
    check="same(sol.coef * 1e-300, fb.min_norm(Xr, tr).coef, rtol=1e-9)",
)

# ---- step size and steps ---------------------------------------------------------------------
for api, tmpl in {
    "train": "fb.train(X, y, steps=30, lr={v})",
    "train_deep": "fb.train(X, y, model='diag:2', steps=30, lr={v})",
    "train_batch": "fb.train_batch(X, y, lrs=[0.1, {v}], steps=30, n_workers=1)",
    "train_multiclass": "fb.train_multiclass(X, y3, steps=30, lr={v})",
}.items():
    for tag, v in (
        ("zero", "0"),
        ("negative", "-0.1"),
        ("nan", "float('nan')"),
        ("inf", "float('inf')"),
        ("string", "'fast'"),
    ):
        case(f"{api}/lr_{tag}", tmpl.format(v=v), raises="ValueError: lr must be")
for api, tmpl in {
    "train": "fb.train(X, y, steps={v})",
    "train_deep": "fb.train(X, y, model='diag:2', steps={v})",
    "train_batch": "fb.train_batch(X, y, seeds=[0], steps={v})",
    "train_multiclass": "fb.train_multiclass(X, y3, steps={v})",
}.items():
    for tag, v in (
        ("zero", "0"),
        ("negative", "-5"),
        ("fraction", "2.5"),
        ("nan", "float('nan')"),
        ("string", "'many'"),
        ("1e30", "1e30"),
    ):
        case(f"{api}/steps_{tag}", tmpl.format(v=v), raises="ValueError: steps must be")
case(
    "train/steps_float_whole_accepted",
    "r = fb.train(X, y, steps=30.0)",
    check="assert r.steps_done == 30",
)
case(
    "resume/steps_negative",
    "import tempfile, pathlib; p = pathlib.Path(tempfile.mkdtemp()) / 'c'; "
    "fb.train(X, y, steps=20, checkpoint=p); fb.resume(p, steps=-3)",
    raises="ValueError: steps must be",
)
case(
    "cli/steps_zero",
    "code, err = cli('run', '--steps', '0', data=(X, y)); assert code == 2 and 'steps' in err, err",
)
case(
    "cli/lr_negative",
    "code, err = cli('run', '--lr', '-1', data=(X, y)); assert code == 2 and 'lr' in err, err",
)

# a huge lr: a divergence error that names the failed lr and advises a smaller one, or a
# truthful status
case(
    "train/lr_huge_1e300",
    "r = fb.train(X, y, steps=30, lr=1e300)",
    check="assert r.status == 'loss underflow: iterate frozen'",
    warns="stopped moving",
)
case(
    "train/lr_huge_diverges",
    "fb.train(Xg, yg, steps=30, lr=1e4)",
    raises=r"DivergenceError: .*lr=10000 is too large.*try lr <= 0\.",
)
case(
    "train/lr_1e6_fixed_steps_frozen",
    "r = fb.train(X, y, steps=1000, lr=1e6)",
    check="assert r.status == 'loss underflow: iterate frozen', r.status",
    warns="stopped moving",
)
case(
    "train_deep/lr_huge",
    "r = fb.train(X, y, model='diag:2', steps=30, lr=1e6)",
    check="assert r.status == 'loss underflow: iterate frozen'",
    warns="stopped moving",
)
case(
    "train_multiclass/lr_huge",
    "fb.train_multiclass(X, y3, steps=30, lr=1e6)",
    raises="DivergenceError: .*lr=1e\\+06",
)

# steps=1e12: an estimate up front, and Ctrl-C returns the partial run. Ctrl-C is pressed
# right after the estimate (given after the run's second chunk), not by a timer: a timer can
# come before the estimate on a slow machine, or before the run listens for Ctrl-C at all.
case(
    "train/steps_1e12_estimate_and_ctrl_c",
    "import os, signal, threading\n"
    "from fastbias.optim import planner\n"
    "estimated, warn = threading.Event(), planner.StepRunner.warn_if_long\n"
    "def warn_and_tell(self, *args):\n"
    "    warn(self, *args)\n"
    "    estimated.set()\n"
    "planner.StepRunner.warn_if_long = warn_and_tell\n"
    "def ctrl_c():\n"
    "    estimated.wait(240)  # then Ctrl-C anyway: the case fails, but does not hang\n"
    "    os.kill(os.getpid(), signal.SIGINT)\n"
    "threading.Thread(target=ctrl_c, daemon=True).start()\n"
    "r = fb.train(X, y, steps=10**12)",
    check="assert r.status == 'interrupted' and 0 < r.steps_done < 10**12",
    warns=r"1e\+12 steps will take about .* Ctrl-C",
    alone=True,
)

# ---- unknown names ---------------------------------------------------------------------------
for tag, code, regex in (
    ("model", "fb.train(X, y, model='resnet')", "Unknown model 'resnet'"),
    ("model_bad_arg", "fb.train(X, y, model='fc:a')", "Unknown model 'fc:a'"),
    ("model_type", "fb.train(X, y, model=3)", "Unknown model 3"),
    ("loss", "fb.train(X, y, loss='hinge')", "Unknown loss 'hinge'"),
    ("step_rule", "fb.train(X, y, step_rule='adaptive')", "Unknown step_rule 'adaptive'"),
    ("precision", "fb.train(X, y, precision='quad')", "Unknown precision 'quad'"),
    ("optimizer", "fb.train(X, y, optimizer='rmsprop')", "optimizer"),
    ("reference", "fb.train(X, y, reference='best')", "Unknown reference 'best'"),
    ("init", "fb.train(X, y, model='diag:2', init='xavier')", "Unknown init 'xavier'"),
):
    case(f"train/unknown_{tag}", code, raises=f"ValueError: {regex}")
case("flow/unknown_loss", "fb.flow(X, y, loss='hinge')", raises="ValueError: Unknown loss")
case("flow/unknown_model", "fb.flow(X, y, model='resnet')", raises="ValueError: Unknown model")
case("max_margin/unknown_norm", "fb.max_margin(X, y, norm='l3')", raises="ValueError: norm")
case("min_norm/unknown_norm", "fb.min_norm(Xr, tr, norm='l7')", raises="ValueError: norm")
case(
    "stationarity/unknown_norm", "fb.stationarity(beta, X, y, norm='l7')", raises="ValueError: norm"
)
case(
    "predicted_limit/unknown_model",
    "fb.predicted_limit('resnet', X, y)",
    raises="ValueError: Unknown model",
)
case(
    "predicted_limit/unknown_loss",
    "fb.predicted_limit('linear', X, y, loss='hinge')",
    raises="ValueError: Unknown loss",
)
case(
    "train_multiclass/unknown_step_rule",
    "fb.train_multiclass(X, y3, step_rule='x')",
    raises="ValueError: Unknown step_rule",
)
case(
    "cli/unknown_model",
    "code, err = cli('run', '--model', 'resnet', data=(X, y)); assert code == 2 and 'resnet' in err, err",
)
case(
    "cli/missing_file",
    "code, err = cli('run', '/nonexistent/d.npz'); assert code == 2 and 'does not exist' in err, err",
)
case(
    "cli/npz_without_X",
    "import tempfile, pathlib; p = pathlib.Path(tempfile.mkdtemp()) / 'a.npz'; "
    "np.savez(p, A=X); code, err = cli('run', str(p)); assert code == 2 and \"no array named 'X'\" in err, err",
)
case(
    "cli/bad_suffix",
    "import tempfile, pathlib; p = pathlib.Path(tempfile.mkdtemp()) / 'a.txt'; "
    "p.write_text('1,2'); code, err = cli('run', str(p)); assert code == 2 and 'unsupported' in err, err",
)
case(
    "cli/csv_with_text",
    "import tempfile, pathlib; p = pathlib.Path(tempfile.mkdtemp()) / 'a.csv'; "
    "p.write_text('a,b,label\\n1,2,x\\n3,4,y\\n'); code, err = cli('run', str(p)); "
    "assert code == 2 and 'a.csv' in err, err",
)

# ---- models that do not fit the data ---------------------------------------------------------
case(
    "train/network_wrong_d",
    "fb.train(Xg, yg, model=net)",
    raises="ValueError: input dimension is 2 .* d = 4",
)
case(
    "train/conv_filter_too_long",
    "fb.train(X, y, model=Convolutional(2, kernel_sizes=[5]))",
    raises="ValueError: kernel",
)
case(
    "train/tensor_wrong_d", "fb.train(Xg, yg, model=Tensor.diagonal(3, 2))", raises="ValueError: d"
)
case("flow/network_wrong_d", "fb.flow(Xg, yg, model=net)", raises="ValueError: input dimension")
case(
    "predicted_limit/network_wrong_d",
    "fb.predicted_limit(net, Xg, yg)",
    raises="ValueError: input dimension",
)
case("kkt/network_wrong_d", "analysis.kkt(net, theta, Xg, yg)", raises="ValueError: ")
case("kkt/theta_wrong_length", "analysis.kkt(net, theta[:-1], X, y)", raises="ValueError: ")
case(
    "kkt/theta_nan",
    "t = theta.copy(); t[0] = np.nan; analysis.kkt(net, t, X, y)",
    raises="ValueError: .*(NaN|finite)",
)
case(
    "optimality/theta_wrong_length",
    "analysis.optimality(net, theta[:-1], X, y)",
    raises="ValueError: ",
)
case(
    "layer_margin/bad_layer",
    "analysis.layer_margin(net, theta, X, y, layer=7)",
    raises="ValueError: layer",
)
case(
    "stationarity/beta_wrong_length", "fb.stationarity(np.ones(3), X, y)", raises="ValueError: beta"
)
case(
    "stationarity/beta_nan",
    "fb.stationarity(np.array([np.nan, 1.0]), X, y)",
    raises="ValueError: beta",
)

# ---- initializations -------------------------------------------------------------------------
case("train/init_wrong_length", "fb.train(X, y, init=np.ones(3))", raises="ValueError: init")
case("train/init_nan", "fb.train(X, y, init=np.array([np.nan, 1.0]))", raises="ValueError: init")
case(
    "train/init_scale_zero",
    "fb.train(X, y, model='diag:2', init_scale=0)",
    raises="ValueError: init_scale",
)
case(
    "train/deep_init_wrong_layers",
    "fb.train(X, y, model='diag:2', init=[np.ones(2)])",
    raises="ValueError: init has 1 arrays",
)
case(
    "train/init_huge_scale",
    "fb.train(X, y, model='diag:2', init_scale=1e200)",
    raises="ValueError: (init|scale)",
)

case(
    "train/network_init_weight_matrix",
    "r = fb.train(X, y, model=net, init=[theta[:6].reshape(3, 2), theta[6:]], steps=30)",
    check="same(r.params[0], fb.train(X, y, model=net, init=[theta[:6], theta[6:]], steps=30).params[0])",
)
case(
    "train/network_init_wrong_shape",
    "fb.train(X, y, model=net, init=[np.ones((2, 2)), np.ones(3)])",
    raises=r"ValueError: init layer 1 has shape \(2, 2\); expected .*weight matrix W\^\(1\) of shape \(3, 2\)",
)
case(
    "train/fc_init_out_in_matrix",
    "r = fb.train(X, y, model='fc:3', init=[np.ones((3, 2)), np.ones(3)], steps=30)",
)
case(
    "train/init_string_entries",
    "fb.train(X, y, model='diag:2', init=[['a', 'b'], [1, 2]])",
    raises="ValueError: init layer 1 must be a numeric array",
)
case(
    "flow/network_init_weight_matrix",
    "r = fb.flow(X, y, model=net, init=[theta[:6].reshape(3, 2), theta[6:]], t_max=1e3)",
)
case(
    "kkt/scale_1e-300",
    "res = analysis.kkt(net, theta, Xtiny, y)",
    check="same(res.residual, analysis.kkt(net, theta, X, y).residual, rtol=1e-6)",
)
case(
    "optimality/scale_1e-300",
    "res = analysis.optimality(net, theta, Xtiny, y, global_check=False)",
    check="assert res.verdict == analysis.optimality(net, theta, X, y, global_check=False).verdict",
)
for api in ("kkt", "optimality", "layer_margin"):
    case(
        f"{api}/scale_1e200",
        f"analysis.{api}(net, theta, Xbig, y)",
        raises="ValueError: the largest entry of X is 3.99e\\+200, beyond 1e\\+150",
    )
case(
    "optimality/X_nan",
    "analysis.optimality(net, theta, Xn, y)",
    raises="ValueError: X contains NaN",
)
case(
    "layer_margin/X_nan",
    "analysis.layer_margin(net, theta, Xn, y)",
    raises="ValueError: X contains NaN",
)
case(
    "layer_margin/y_three",
    "analysis.layer_margin(net, theta, X, y3)",
    raises="ValueError: y has 3 distinct",
)
case(
    "optimality/not_a_network", "analysis.optimality('diag:2', theta, X, y)", raises="ValueError: "
)

# ---- other arguments ----------------------------------------------------------------------------
case("train/record_zero", "fb.train(X, y, record=0)", raises="ValueError: record")
case(
    "train/record_beyond_steps",
    "fb.train(X, y, steps=10, record=[5, 50])",
    raises="ValueError: record",
)
case(
    "train/chunk_seconds_zero",
    "fb.train(X, y, chunk_seconds=0)",
    raises="ValueError: chunk_seconds",
)
case(
    "train/checkpoint_folder_missing",
    "fb.train(X, y, checkpoint='/nonexistent/dir/c.ckpt')",
    raises="FileNotFoundError: /nonexistent/dir",
)
case(
    "train/checkpoint_is_a_directory",
    "import tempfile; fb.train(X, y, steps=20, checkpoint=tempfile.mkdtemp())",
    raises="ValueError: checkpoint .* is a directory",
)
case("resume/missing", "fb.resume('/nonexistent/c.ckpt')", raises="FileNotFoundError: ")
case(
    "resume/directory",
    "import tempfile; fb.resume(tempfile.mkdtemp())",
    raises="ValueError: .*directory",
)
case(
    "resume/not_a_checkpoint",
    "import tempfile, pathlib; p = pathlib.Path(tempfile.mkdtemp()) / 'c'; "
    "p.write_bytes(b'hello'); fb.resume(p)",
    raises="ValueError: .*not a fastbias checkpoint",
)
case(
    "train_batch/empty_seeds", "fb.train_batch(X, y, seeds=[])", raises="ValueError: seeds is empty"
)
case("train_batch/nothing", "fb.train_batch(X, y)", raises="ValueError: train_batch needs")
case(
    "train_batch/n_workers_zero",
    "fb.train_batch(X, y, seeds=[0, 1], n_workers=0)",
    raises="ValueError: n_workers",
)
case(
    "train_batch/unknown_argument",
    "fb.train_batch(X, y, seeds=[0], stepz=10)",
    raises="(TypeError|ValueError): .*stepz",
)
case(
    "train_batch/bad_config_key",
    "fb.train_batch(X, y, configs=[{'lr': 0.1, 'foo': 1}])",
    raises="(TypeError|ValueError): .*foo",
)
case(
    "flow/times_past_float64",
    "r = fb.flow(X, y, log_t_max=2000.0, record=2); rep = r.rates()",
    check="assert 'step' in r.history.overflowed and 'log t in' in str(rep)",
)
case(
    "flow/default_horizon_rates",
    "r = fb.flow(X, y); rep = r.rates()",
    check="assert 'norm' in rep.fits",
)
case(
    "flow/records_too_many",  # 4e12 recorded points: was a MemoryError after a 31 TiB request
    "fb.flow(X, y, log_t_max=1e12)",
    raises="ValueError: record=10 points per decade .* recorded points",
)
case("flow/t_max_negative", "fb.flow(X, y, t_max=-1)", raises="ValueError: t_max")
case("flow/t_max_inf", "fb.flow(X, y, t_max=float('inf'))", raises="ValueError: t_max")
case("flow/rtol_zero", "fb.flow(X, y, rtol=0)", raises="ValueError: rtol")
case("flow/max_steps_zero", "fb.flow(X, y, max_steps=0)", raises="ValueError: max_steps")
case("max_margin/p_negative", "fb.max_margin(X, y, norm='lp', p=-1)", raises="ValueError: p")
case("max_margin/lp_without_p", "fb.max_margin(X, y, norm='lp')", raises="ValueError: p")
case("min_norm/targets_missing", "fb.min_norm(Xr, None)", raises="ValueError: ")
case(
    "min_norm/targets_nan",
    "t = tr.copy(); t[0] = np.nan; fb.min_norm(Xr, t)",
    raises="ValueError: y",
)
case(
    "min_norm/not_interpolable",
    "fb.min_norm(Xover, tover)",
    raises="ValueError: .*(interpol|solution)",
)
case(
    "train/squared_targets_none",
    "fb.train(Xr, None, loss='squared')",
    raises="ValueError: regression targets",
)
case(
    "train/squared_targets_nan",
    "t = tr.copy(); t[1] = np.inf; fb.train(Xr, t, loss='squared')",
    raises="ValueError: y contains NaN or inf",
)
case(
    "train/squared_targets_short",
    "fb.train(Xr, tr[:4], loss='squared')",
    raises="ValueError: X has 6 rows but y",
)
case(
    "train/squared_scale_1e200",
    "fb.train(Xr * 1e200, tr, loss='squared')",
    raises="ValueError: default step size .* does not fit in float64",
)
case(
    "train/squared_ints_accepted",
    "r = fb.train(np.round(Xr * 3).astype(int), tr, loss='squared', steps=30)",
)
case(
    "flow/squared_scale_1e200",
    "r = fb.flow(Xr * 1e200, tr, loss='squared', t_max=1e3)",
    check="same(r.coef * 1e200, fb.min_norm(Xr, tr).coef, rtol=1e-5)",
)
case("train_multiclass/one_class", "fb.train_multiclass(X, yone)", raises="ValueError: at least 2")
case("train_multiclass/labels_nan", "fb.train_multiclass(X, ynan)", raises="ValueError: labels")
case(
    "train_multiclass/W0_shape",
    "fb.train_multiclass(X, y3, W0=np.ones((3, 2)))",
    raises="ValueError: W0",
)
case("train_multiclass/X_nan", "fb.train_multiclass(Xn, y3)", raises="ValueError: X contains NaN")
case(
    "train_multiclass/accepts_ints",
    "res = fb.train_multiclass(Xint, y3, steps=30)",
    check="same(res.coef, fb.train_multiclass(Xint.astype(float), y3, steps=30).coef)",
)

# ---- issue 15: each finding is a case -----------------------------------------------------------
case(
    "issue15/backtracking_lr_1e-3_1e4_steps",
    "r = fb.train(X4, y4, step_rule='loss-scaled-backtracking', lr=0.001, steps=10**4)",
    check="assert r.status == 'completed' and r.theta_scale > 1000\n"
    "try:\n    r.coef\nexcept OverflowError as exc:\n    assert 'run.direction' in str(exc)\n"
    "else:\n    raise AssertionError('coef overflowed silently')",
)
case(
    "issue15/backtracking_3e4_steps_history_finite",
    "r = fb.train(X4, y4, step_rule='loss-scaled-backtracking', lr=0.001, steps=3 * 10**4)",
    check="assert r.theta_scale > 3000",
)
case(
    "issue15/backtracking_default_lr",
    "r = fb.train(X4, y4, step_rule='loss-scaled-backtracking', steps=10**4)",
)
case(
    "issue15/divergence_advice_below_the_failed_lr",
    "from fastbias.optim._outcome import lr_advice\n"
    "text, lr = lr_advice(0.0731398, 0.0731398)\n"
    "assert lr < 0.0731398 and 'try lr <= 0.00731' in text, text",
)
case(
    "issue15/default_lr_at_1e200_train",
    "fb.train(Xbig, y)",
    raises="ValueError: does not fit in float64",
)
case("issue15/flow_at_1e200_separable", "r = fb.flow(Xbig, y, t_max=1e4)")
case("issue15/max_margin_at_1e200_separable", "sol = fb.max_margin(Xbig, y)")
case("issue15/predicted_limit_at_1e200", "sol = fb.predicted_limit('linear', Xbig, y)")
case(
    "issue15/tiny_1e-300_no_zero_division",
    "sol = fb.max_margin(Xtiny, y); r = fb.flow(Xtiny, y, t_max=1e4)",
)
case(
    "issue15/symmetric_not_separable",
    "r = fb.train(Xsym, ysym, steps=200)",
    check="assert np.all(r.history['normalized_margin'] == 0)",
    warns="not linearly separable",
)
case(
    "issue15/symmetric_not_separable_deep",
    "r = fb.train(Xsym, ysym, model='diag:2', steps=200)",
    warns="not linearly separable",
)
for name in ("conv", "conv:3", "diag", "diag:3", "fc:4"):
    case(
        f"issue15/d1_{name}_log_min_margin",
        f"r = fb.train(Xd1, yd1, model={name!r}, steps=2000)",
        check="assert np.all(np.isfinite(r.history['log_min_margin']))",
    )
case(
    "issue15/fc4_ten_times_default_lr",
    "from fastbias.optim.spec import _deep_default_lr\n"
    "m = fb.models.get_model('fc:4')\n"
    "p0 = m.init_params(4, None, 1.0, 0)\n"
    "lr = 10 * _deep_default_lr(Xg * yg[:, None], m.flatten(p0), yg * (Xg @ m.predictor(p0)), 2, 'exp')\n"
    "try:\n    r = fb.train(Xg, yg, model='fc:4', lr=lr, steps=3000)\n"
    "except fb.DivergenceError as exc:\n    assert 'lr=' in str(exc)",
)
case(
    "issue15/lr_1e6_fixed_loss_underflow",
    "r = fb.train(X, y, lr=1e6, steps=10**4)",
    check="assert r.status == 'loss underflow: iterate frozen'",
    warns="exp\\(-margin\\) underflows",
)


# The harness's own cases: a segfault and a hang must be failures, the case after them runs.
case("harness/segfault", "import ctypes; ctypes.string_at(0)")
case("harness/after", "r = fb.train(X, y, steps=10)")
case("harness/hang", "import time; time.sleep(600)", timeout=3.0)


# ---- the harness -------------------------------------------------------------------------------
def _run_case(c: Case, ns_base: dict) -> dict:
    """Run one case in this (worker) process; a dict with ok and detail."""
    import re
    import traceback
    import warnings

    import numpy as np

    ns = {}
    exec(PRELUDE, ns)  # fresh data for every case
    exec(HELPERS, ns)
    arrays = {k: v for k, v in ns.items() if isinstance(v, np.ndarray)}
    snap = {k: v.copy() for k, v in arrays.items()}
    caught: list = []
    error = None
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        warnings.filterwarnings(
            "error",
            category=RuntimeWarning,
            message="(overflow|invalid value|divide by zero) encountered",
        )
        try:
            exec(c.code, ns)
        except BaseException as exc:  # noqa: BLE001 - every outcome is a result here
            error = exc
        caught = [str(w.message) for w in rec]
    for k, v in arrays.items():
        same = v.shape == snap[k].shape and (
            np.array_equal(v, snap[k], equal_nan=v.dtype.kind in "fc")
        )
        if not same:
            return {"ok": False, "detail": f"the caller's array {k} was modified"}
    if c.raises:
        kind, _, regex = c.raises.partition(": ")
        if error is None:
            return {"ok": False, "detail": f"expected {c.raises!r}; nothing was raised"}
        names = {t.__name__ for t in type(error).__mro__}
        if not any(k in names for k in kind.strip("()").split("|")):
            return {"ok": False, "detail": f"expected {kind}, got {type(error).__name__}: {error}"}
        if not re.search(regex, str(error), re.S):
            return {"ok": False, "detail": f"message does not match {regex!r}: {error}"}
        return {"ok": True, "detail": f"{type(error).__name__}: {error}"}
    if error is not None:
        tb = "".join(traceback.format_exception(error)[-3:])
        return {"ok": False, "detail": f"raised {type(error).__name__}: {error}\n{tb}"}
    try:
        for name in ("r", "runs", "sol", "res"):
            if name in ns:
                ns["finite"](ns[name], name)
        if c.check:
            exec(c.check, ns)
    except BaseException as exc:  # noqa: BLE001
        return {"ok": False, "detail": f"check failed: {type(exc).__name__}: {exc}"}
    if c.warns and not any(re.search(c.warns, w) for w in caught):
        return {"ok": False, "detail": f"no warning matching {c.warns!r}; got {caught}"}
    return {"ok": True, "detail": "ok"}


def _worker(ids: list[str]) -> None:
    by_id = {c.id: c for c in CASES}
    exec(PRELUDE, {})  # imports and first compilations, outside the cases' time budgets
    print(json.dumps({"event": "ready"}), flush=True)
    for cid in ids:
        print(json.dumps({"id": cid, "event": "start"}), flush=True)
        t0 = time.perf_counter()
        result = _run_case(by_id[cid], {})
        result["seconds"] = time.perf_counter() - t0
        print(json.dumps({"id": cid, "event": "done", **result}), flush=True)


def _run_batch(ids: list[str], results: dict) -> list[str]:
    """Run ``ids`` in one worker; record results; return the ids not run (after a crash or a
    hang, which fail the case that was running). Each case must finish within its timeout."""
    import queue
    import threading

    by_id = {c.id: c for c in CASES}
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, __file__, "--worker", json.dumps(ids)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # noqa: S603
    lines: queue.Queue = queue.Queue()
    errors: list[str] = []

    def pump(stream, sink):
        for line in stream:
            sink(line)
        if stream is proc.stdout:
            lines.put(None)

    threading.Thread(target=pump, args=(proc.stdout, lines.put), daemon=True).start()
    threading.Thread(target=pump, args=(proc.stderr, errors.append), daemon=True).start()
    current, deadline = None, time.monotonic() + 180.0  # until the worker is ready
    hung = False
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            hung = True
            proc.kill()
            break
        if line is None:
            break
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if msg.get("event") == "ready":
            deadline = time.monotonic() + 60.0  # until the first case starts
        elif msg.get("event") == "start":
            current = msg["id"]
            deadline = time.monotonic() + by_id[current].timeout
        elif msg.get("event") == "done":
            results[msg["id"]] = msg
            current = None
            deadline = time.monotonic() + 60.0  # until the next case starts
    code = proc.wait()
    if current is not None:
        what = (
            f"hung (no result within {by_id[current].timeout:g} s)"
            if hung
            else f"crashed the worker (exit code {code})"
        )
        results[current] = {"ok": False, "detail": f"{what}\n{''.join(errors)[-2000:]}"}
    left = [i for i in ids if i not in results]
    if left and len(left) == len(ids) and current is None:  # the worker never started a case
        results[left[0]] = {"ok": False, "detail": f"worker failed: {''.join(errors)[-2000:]}"}
        left = left[1:]
    return left


def run_corpus(cases: list[Case], n_batches: int = 2, workers: int = 2) -> dict:
    """Results of ``cases`` by id, run in ``n_batches`` worker processes (plus one per case
    that must run alone), ``workers`` at a time."""
    results: dict = {}
    alone = [[c.id] for c in cases if c.alone]
    rest = [c.id for c in cases if not c.alone]
    batches = [rest[k::n_batches] for k in range(n_batches)] + alone
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = [b for b in batches if b]
        while pending:
            left = list(pool.map(lambda b: _run_batch(b, results), pending))
            pending = [b for b in left if b]
    return results


CORPUS = [c for c in CASES if not c.id.startswith("harness/")]


def _compile_kernels() -> None:
    """Compile (and cache on disk) the kernels whose first compilation is long: gradient flow
    (~45 s on a fresh install) and the momentum / Adam kernel (~15 s). Done here, once, so that
    the workers load them from numba's cache instead of compiling them inside a case's time
    budget, both at once."""
    import fastbias as fb

    X, y = fb.datasets.soudry2018()
    fb.flow(X, y, t_max=10.0)
    fb.train(X, y, steps=2, optimizer="momentum")


@pytest.fixture(scope="module")
def corpus_results():
    _compile_kernels()
    return run_corpus(CORPUS)


@pytest.mark.parametrize("cid", [c.id for c in CORPUS])
def test_case(cid, corpus_results):
    res = corpus_results.get(cid)
    assert res is not None, "never ran"
    assert res["ok"], res["detail"]


def test_the_harness_turns_crashes_and_hangs_into_failing_cases():
    cases = [c for c in CASES if c.id.startswith("harness/")]
    res = run_corpus(cases, n_batches=1, workers=1)
    assert not res["harness/segfault"]["ok"]
    assert "crashed the worker (exit code -11)" in res["harness/segfault"]["detail"]
    assert not res["harness/hang"]["ok"] and "hung" in res["harness/hang"]["detail"]
    assert res["harness/after"]["ok"], res["harness/after"]["detail"]


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--worker":
    _worker(json.loads(sys.argv[2]))
