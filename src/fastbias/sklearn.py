"""scikit-learn estimators on fastbias's compiled runs and exact max-margin solvers.

:class:`GradientDescentClassifier` trains any fastbias model (``"linear"``, ``"fc:50"``,
``"diag:2"``, ``"conv:2"`` or a :class:`~fastbias.models.Model` instance) with the exponential or
logistic loss through :func:`fastbias.train`; :class:`GradientDescentRegressor` does the same
with the squared loss; :class:`MaxMarginClassifier` is the limit theory predicts for
separable data, solved exactly by :func:`fastbias.max_margin` (Soudry et al. 2018, eq. 2.4, and
the other norms of Gunasekar et al. 2018). They work with ``Pipeline``, ``GridSearchCV`` and
``clone`` and pass ``sklearn.utils.estimator_checks`` (the checks that cannot apply are listed
by :func:`expected_failed_checks` with the reason).

Requires scikit-learn >= 1.6 (``pip install "fastbias[sklearn]"``). The fitted run is kept
(``run_``), so its history and diagnostics stay available: ``clf.history_.to_pandas()``.

Examples
--------
>>> import fastbias as fb
>>> from fastbias.sklearn import GradientDescentClassifier, MaxMarginClassifier
>>> X, y = fb.datasets.soudry2018()
>>> clf = GradientDescentClassifier(steps=10**4).fit(X, y)
>>> svm = MaxMarginClassifier().fit(X, y)
>>> bool(clf.score(X, y) == svm.score(X, y) == 1.0)
True
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ._tidy import optional_import

optional_import("sklearn", "fastbias.sklearn")

from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin  # noqa: E402
from sklearn.utils.multiclass import check_classification_targets  # noqa: E402
from sklearn.utils.validation import check_is_fitted, validate_data  # noqa: E402

__all__ = [
    "GradientDescentClassifier",
    "GradientDescentRegressor",
    "MaxMarginClassifier",
    "expected_failed_checks",
]


def _seed(random_state: Any) -> int | None:
    """fastbias seeds are ints: an int passes through, a RandomState draws one, None is None."""
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return None if random_state is None else int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(np.iinfo(np.int32).max))
    raise ValueError(
        f"random_state must be None, an int, a RandomState or a Generator; got {random_state!r}."
    )


def _augment(X: np.ndarray, fit_intercept: bool, intercept_scaling: float) -> np.ndarray:
    """``[X, s]``: a constant feature whose weight (times ``s``) is the intercept."""
    if not fit_intercept:
        return X
    return np.hstack([X, np.full((X.shape[0], 1), float(intercept_scaling))])


def _binary_signs(estimator, y: np.ndarray) -> np.ndarray:
    """Set ``classes_`` and code ``classes_[1]`` as +1, ``classes_[0]`` as -1."""
    check_classification_targets(y)
    classes = np.unique(y)
    name = type(estimator).__name__
    if len(classes) > 2:
        raise ValueError(
            f"Only binary classification is supported. {name} needs samples of two classes; "
            f"got {len(classes)} classes ({classes[:5].tolist()})."
        )
    if len(classes) < 2:
        raise ValueError(f"{name} needs samples of two classes; got 1 class ({classes.tolist()}).")
    estimator.classes_ = classes
    return np.where(y == classes[1], 1.0, -1.0)


class _LinearOutput:
    """``decision_function`` / ``coef_`` / ``intercept_`` shared by the estimators."""

    def _set_coef(self, beta: np.ndarray | None, classifier: bool) -> None:
        if beta is None:  # a ReLU network: no linear predictor
            return
        beta = np.asarray(beta, dtype=np.float64)
        if self.fit_intercept:
            w, b = beta[:-1], beta[-1] * float(self.intercept_scaling)
        else:
            w, b = beta, 0.0
        self.coef_ = w[None, :].copy() if classifier else w.copy()
        self.intercept_ = np.array([b]) if classifier else float(b)

    def _raw_output(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        model = getattr(self, "model_", None)
        if model is not None and not getattr(model, "linear_predictor", True):
            Xa = _augment(X, self.fit_intercept, self.intercept_scaling)
            return np.asarray(model.forward(self.params_, Xa), dtype=np.float64).ravel()
        return X @ np.ravel(self.coef_) + float(np.ravel(self.intercept_)[0])


class _GradientDescentBase(_LinearOutput, BaseEstimator):
    """The parameters and the fit shared by the classifier and the regressor."""

    _loss_for_fit: str = "exp"

    def __init__(
        self,
        model: Any = "linear",
        *,
        steps: int = 1000,
        lr: float | None = None,
        step_rule: str = "fixed",
        optimizer: str = "gd",
        optimizer_options: dict[str, Any] | None = None,
        precision: str = "float64",
        init: Any = None,
        init_scale: float = 1.0,
        fit_intercept: bool = False,
        intercept_scaling: float = 1.0,
        record: Any = 10,
        reference: Any = "auto",
        random_state: Any = 0,
        verbose: bool = False,
    ):
        self.model = model
        self.steps = steps
        self.lr = lr
        self.step_rule = step_rule
        self.optimizer = optimizer
        self.optimizer_options = optimizer_options
        self.precision = precision
        self.init = init
        self.init_scale = init_scale
        self.fit_intercept = fit_intercept
        self.intercept_scaling = intercept_scaling
        self.record = record
        self.reference = reference
        self.random_state = random_state
        self.verbose = verbose

    def _train(self, X: np.ndarray, targets: np.ndarray, loss: str):
        from .optim import train

        if not (
            isinstance(self.intercept_scaling, (int, float, np.number))
            and self.intercept_scaling > 0
        ):
            raise ValueError(f"intercept_scaling must be > 0; got {self.intercept_scaling!r}.")
        Xa = _augment(X, self.fit_intercept, self.intercept_scaling)
        with warnings.catch_warnings():
            # non-separable data are ordinary for a classifier: the run just has no gap columns
            warnings.filterwarnings("ignore", message="X, y are not linearly separable")
            run = train(
                Xa,
                targets,
                model=self.model,
                loss=loss,
                steps=self.steps,
                lr=self.lr,
                init=self.init,
                init_scale=self.init_scale,
                seed=_seed(self.random_state),
                precision=self.precision,
                record=self.record,
                reference=self.reference,
                step_rule=self.step_rule,
                progress=bool(self.verbose),
                optimizer=self.optimizer,
                optimizer_options=self.optimizer_options,
            )
        self.run_ = run
        self.model_ = run.model
        self.params_ = run.params
        self.history_ = run.history
        self.n_iter_ = int(run.steps_done)
        return run


class GradientDescentClassifier(ClassifierMixin, _GradientDescentBase):
    """A binary classifier trained by gradient descent on a fastbias model.

    Trains ``f(x) = x.P(theta)`` by :func:`fastbias.train` on the labels coded as -1/+1
    (``classes_[1]`` is +1) and predicts ``classes_[f(x) > 0]``. On separable data the
    direction of ``coef_`` goes to the max-margin separator of the model's implicit bias
    (Soudry et al. 2018, Theorem 3 for ``"linear"``; Gunasekar et al. 2018 for deep models).

    Parameters
    ----------
    model : str or Model, default "linear"
        ``"linear"``, ``"fc:50"``, ``"diag:2"``, ``"conv:2"`` (see
        :func:`fastbias.models.get_model`) or a :class:`~fastbias.models.Model` instance
        (including a ReLU :class:`~fastbias.models.Network`, which has no ``coef_``).
    loss : {"exp", "logistic"}, default "exp"
        The margin loss.
    steps : int, default 1000
        Number of gradient steps.
    lr : float, optional
        Step size; default: fastbias's safe step at the initialization.
    step_rule : {"fixed", "normalized", "loss-scaled", "loss-scaled-backtracking"}
        See :func:`fastbias.train`.
    optimizer : {"gd", "momentum", "sgd", "adam", "adagrad", "coordinate"}
        See :func:`fastbias.train`; ``optimizer_options`` holds its hyper-parameters.
    optimizer_options : dict, optional
    precision : {"float64", "compensated", "extended"}
    init : optional
        Initial parameters or a named scheme (``"gaussian"``, ``"yun"``, ``"zeros"``).
    init_scale : float, default 1.0
        ``alpha``, the scale of the initialization.
    fit_intercept : bool, default False
        Append a constant feature ``intercept_scaling`` whose weight is the intercept (the
        papers' predictors have none; with it, the intercept is part of ``beta`` and biased
        like the other weights).
    intercept_scaling : float, default 1.0
    record : int or array of int, default 10
        Checkpoints per decade of ``history_``.
    reference : "auto", None or array, default "auto"
        What ``history_``'s gaps are measured against (:func:`fastbias.train`); on data that
        are not separable the history simply has no gap columns.
    random_state : int, RandomState, Generator or None, default 0
        Seed of the named initializations and of SGD.
    verbose : bool, default False
        Show the progress bar.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The two labels, sorted; ``classes_[1]`` is the positive class.
    coef_ : ndarray of shape (1, n_features)
        The end-to-end linear predictor ``beta = P(theta)`` (linear predictors only).
    intercept_ : ndarray of shape (1,)
        0 unless ``fit_intercept``.
    n_iter_ : int
        Gradient steps taken.
    history_ : History
        The run's checkpointed diagnostics (``history_.to_pandas()``).
    run_ : Run
        The whole :class:`~fastbias.Run`.
    model_ : Model
        The trained parameterization; ``params_`` its final layers.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        When fitted on a DataFrame with string column names.
    """

    def __init__(
        self,
        model: Any = "linear",
        *,
        loss: str = "exp",
        steps: int = 1000,
        lr: float | None = None,
        step_rule: str = "fixed",
        optimizer: str = "gd",
        optimizer_options: dict[str, Any] | None = None,
        precision: str = "float64",
        init: Any = None,
        init_scale: float = 1.0,
        fit_intercept: bool = False,
        intercept_scaling: float = 1.0,
        record: Any = 10,
        reference: Any = "auto",
        random_state: Any = 0,
        verbose: bool = False,
    ):
        super().__init__(
            model,
            steps=steps,
            lr=lr,
            step_rule=step_rule,
            optimizer=optimizer,
            optimizer_options=optimizer_options,
            precision=precision,
            init=init,
            init_scale=init_scale,
            fit_intercept=fit_intercept,
            intercept_scaling=intercept_scaling,
            record=record,
            reference=reference,
            random_state=random_state,
            verbose=verbose,
        )
        self.loss = loss

    def fit(self, X, y) -> GradientDescentClassifier:
        """Train on ``X`` (n_samples, n_features) and two-class labels ``y``."""
        if self.loss not in ("exp", "exponential", "logistic"):
            raise ValueError(
                f"Unknown loss {self.loss!r}; expected 'exp' or 'logistic' (the squared loss "
                "is GradientDescentRegressor's)."
            )
        X, y = validate_data(self, X, y, dtype=np.float64)
        signs = _binary_signs(self, y)
        run = self._train(X, signs, self.loss)
        self._set_coef(run.coef, classifier=True)
        return self

    def decision_function(self, X) -> np.ndarray:
        """``f(x)``: positive for ``classes_[1]``; shape (n_samples,)."""
        return self._raw_output(X)

    def predict(self, X) -> np.ndarray:
        """``classes_[1]`` where ``f(x) > 0``, else ``classes_[0]``."""
        scores = self.decision_function(X)
        return self.classes_[(scores > 0).astype(int)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


class GradientDescentRegressor(RegressorMixin, _GradientDescentBase):
    """Least squares ``1/2 sum (f(x_n) - y_n)^2`` by gradient descent on a fastbias model.

    From a small initialization GD on an underdetermined problem goes to the interpolant
    the parameterization favours: the minimum L2-norm one for ``"linear"`` from zero, the
    ``Q``-minimizer of Yun et al. (2021), Theorem 5, for ``"diag:L"`` from ``init="yun"``.
    Parameters as :class:`GradientDescentClassifier` (without ``loss``).

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
        ``beta = P(theta)`` (linear predictors only).
    intercept_ : float
        0 unless ``fit_intercept``.
    n_iter_, history_, run_, model_, params_, n_features_in_ :
        As for :class:`GradientDescentClassifier`.
    """

    def fit(self, X, y) -> GradientDescentRegressor:
        """Train on ``X`` (n_samples, n_features) and real targets ``y``."""
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        run = self._train(X, y, "squared")
        self._set_coef(run.coef, classifier=False)
        return self

    def predict(self, X) -> np.ndarray:
        """``f(x)``; shape (n_samples,)."""
        return self._raw_output(X)


class MaxMarginClassifier(_LinearOutput, ClassifierMixin, BaseEstimator):
    """The exact max-margin separator: what gradient descent converges to in direction.

    :func:`fastbias.max_margin` solves ``min ||beta|| s.t. y_n x_n.beta >= 1`` in the norm of
    a model's implicit bias (``"l2"``: Soudry et al. 2018, eq. 2.4, the limit of linear models
    and fully connected networks; ``"l1"``: diagonal networks, p = 2/L stationary points with
    ``norm="lp"``; ``"dft-l1"``: full-width convolutional networks, Gunasekar et al. 2018).
    Hard margin: data that are not separable raise :class:`fastbias.NotSeparableError`.

    Parameters
    ----------
    norm : {"l2", "l1", "dft-l1", "lp", "dft-lp"}, default "l2"
    p : float, optional
        Exponent in (0, 1] for ``"lp"`` and ``"dft-lp"``.
    fit_intercept : bool, default False
        Append a constant feature ``intercept_scaling`` (its weight, penalized like the
        others, gives the intercept, as in LinearSVC).
    intercept_scaling : float, default 1.0
    tol : float, optional
        Largest accepted certificate residual (:func:`fastbias.max_margin`).

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
    coef_ : ndarray of shape (1, n_features)
        The max-margin predictor, scaled to minimum margin 1.
    intercept_ : ndarray of shape (1,)
    margin_ : float
        The margin ``1 / ||beta||``.
    support_ : ndarray of int
        Indices of the support vectors.
    solution_ : MaxMarginSolution
        Everything the solver returned (dual multipliers, certificate).
    n_features_in_ : int
    """

    def __init__(
        self,
        norm: str = "l2",
        *,
        p: float | None = None,
        fit_intercept: bool = False,
        intercept_scaling: float = 1.0,
        tol: float | None = None,
    ):
        self.norm = norm
        self.p = p
        self.fit_intercept = fit_intercept
        self.intercept_scaling = intercept_scaling
        self.tol = tol

    def fit(self, X, y) -> MaxMarginClassifier:
        """Solve the max-margin problem of ``X``, ``y`` (two classes, separable)."""
        from .references import max_margin

        X, y = validate_data(self, X, y, dtype=np.float64)
        signs = _binary_signs(self, y)
        Xa = _augment(X, self.fit_intercept, self.intercept_scaling)
        sol = max_margin(Xa, signs, norm=self.norm, p=self.p, tol=self.tol)
        self.solution_ = sol
        self.margin_ = float(sol.margin)
        self.support_ = np.asarray(sol.support)
        self._set_coef(sol.coef, classifier=True)
        return self

    def decision_function(self, X) -> np.ndarray:
        """``x.beta + intercept``; its sign is the class, its value the functional margin."""
        return self._raw_output(X)

    def predict(self, X) -> np.ndarray:
        """``classes_[1]`` where ``x.beta + intercept > 0``, else ``classes_[0]``."""
        scores = self.decision_function(X)
        return self.classes_[(scores > 0).astype(int)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


# The checks below fit on data scikit-learn generates at random (blobs, uniform noise with
# labels from a rounded feature, ...), which are not linearly separable through the origin:
# the hard-margin problem then has no solution and MaxMarginClassifier.fit raises
# NotSeparableError (a ValueError), which is the correct answer, not a defect.
_NOT_SEPARABLE = (
    "hard margin: scikit-learn's generated data are not linearly separable through the "
    "origin, so the max-margin problem has no solution and fit raises NotSeparableError"
)
_MAX_MARGIN_XFAIL = (
    "check_classifier_data_not_an_array",
    "check_classifiers_train",
    "check_dict_unchanged",
    "check_dont_overwrite_parameters",
    "check_dtype_object",
    "check_estimators_dtypes",
    "check_estimators_fit_returns_self",
    "check_estimators_nan_inf",
    "check_estimators_overwrite_params",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_fit2d_1feature",
    "check_fit2d_predict1d",
    "check_fit_check_is_fitted",
    "check_fit_idempotent",
    "check_fit_score_takes_y",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_n_features_in",
    "check_n_features_in_after_fitting",
    "check_pipeline_consistency",
    "check_readonly_memmap_input",
    "check_supervised_y_2d",
)


def expected_failed_checks(estimator) -> dict[str, str]:
    """The scikit-learn estimator checks that cannot apply to ``estimator``, with the reason.

    Empty for the gradient-descent estimators. For :class:`MaxMarginClassifier` the checks
    that fit on scikit-learn's random, non-separable data: a hard-margin solution does not
    exist there, and ``fit`` rightly raises :class:`fastbias.NotSeparableError`. Pass it to
    ``parametrize_with_checks(..., expected_failed_checks=expected_failed_checks)`` or
    ``check_estimator(est, expected_failed_checks=expected_failed_checks(est))``.
    """
    if isinstance(estimator, MaxMarginClassifier):
        return dict.fromkeys(_MAX_MARGIN_XFAIL, _NOT_SEPARABLE)
    return {}
