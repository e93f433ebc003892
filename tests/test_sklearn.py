"""scikit-learn estimators: the estimator checks, Pipeline/GridSearchCV/clone, agreement with
fastbias.train and fastbias.max_margin."""

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastbias.sklearn import (  # noqa: E402
    GradientDescentClassifier,
    GradientDescentRegressor,
    MaxMarginClassifier,
    expected_failed_checks,
)

ESTIMATORS = [
    GradientDescentClassifier(),
    GradientDescentClassifier(model="diag:2", loss="logistic"),
    GradientDescentClassifier(model="fc:4"),
    GradientDescentClassifier(model="conv:2"),
    GradientDescentRegressor(),
    # the default fixed step of a deep model diverges on sklearn's unscaled targets (|y| ~ 100)
    GradientDescentRegressor(model="diag:2", step_rule="loss-scaled-backtracking"),
    MaxMarginClassifier(),
    MaxMarginClassifier(norm="l1"),
]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ---- behaviour beyond the API checks ------------------------------------------------------

import sys  # noqa: E402

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import fastbias as fb  # noqa: E402


def _unit(v):
    v = np.ravel(v)
    return v / np.linalg.norm(v)


def test_classifier_is_fastbias_train_on_any_two_labels():
    X, y = fb.datasets.soudry2018()
    labels = np.where(y > 0, "spam", "ham")  # "spam" sorts last: the +1 class
    clf = GradientDescentClassifier(steps=2000, loss="logistic").fit(X, labels)
    run = fb.train(X, y, steps=2000, loss="logistic")
    assert list(clf.classes_) == ["ham", "spam"]
    np.testing.assert_array_equal(clf.coef_, run.coef[None, :])
    assert clf.intercept_.tolist() == [0.0] and clf.n_iter_ == 2000
    np.testing.assert_array_equal(clf.history_["angle_gap"], run.history["angle_gap"])
    np.testing.assert_array_equal(clf.decision_function(X), X @ run.coef)
    assert (clf.predict(X) == labels).all() and clf.score(X, labels) == 1.0


def test_direction_goes_to_the_max_margin_classifier():
    # Soudry et al. Theorem 3 on Figure 3.1's data: 1 - cos(w(t), w_hat) falls like 1/log^2 t
    X, y = fb.datasets.soudry2018()
    svm = MaxMarginClassifier().fit(X, y)
    np.testing.assert_allclose(svm.coef_.ravel(), [0.5, 0.5], atol=1e-12)  # w_hat, eq. 2.4
    assert svm.margin_ == pytest.approx(1 / np.sqrt(0.5), rel=1e-12)
    gaps = []
    for steps in (10**3, 10**5):
        clf = GradientDescentClassifier(steps=steps).fit(X, y)
        gaps.append(1.0 - _unit(clf.coef_) @ _unit(svm.coef_))
    assert gaps[1] < gaps[0] / 10 and gaps[1] < 2e-4


def test_max_margin_classifier_is_fastbias_max_margin():
    X, y = fb.datasets.separable_gaussian(40, 5, margin=0.1, seed=3)
    for norm in ("l2", "l1"):
        svm = MaxMarginClassifier(norm=norm).fit(X, np.where(y > 0, 7, 3))
        sol = fb.max_margin(X, y, norm=norm)
        np.testing.assert_array_equal(svm.coef_.ravel(), sol.coef)
        np.testing.assert_array_equal(svm.support_, sol.support)
        assert list(svm.classes_) == [3, 7]
        assert np.min(y * svm.decision_function(X)) == pytest.approx(1.0, abs=1e-9)


def test_hard_margin_refuses_non_separable_data():
    X = np.array([[1.0, 0.0], [2.0, 0.0]])  # y x: (1, 0) and (-2, 0)
    with pytest.raises(fb.NotSeparableError):
        MaxMarginClassifier().fit(X, [1, 0])
    with pytest.raises(ValueError, match="needs samples of two classes; got 1 class"):
        MaxMarginClassifier().fit(X, [1, 1])


def test_fit_intercept_separates_shifted_data():
    Xs = np.array([[1.0], [2.0], [3.0], [4.0]])  # threshold 2.5: no separator through 0
    y = np.array([-1.0, -1.0, 1.0, 1.0])
    with pytest.raises(fb.NotSeparableError):
        MaxMarginClassifier().fit(Xs, y)
    svm = MaxMarginClassifier(fit_intercept=True).fit(Xs, y)
    # SVM on [x, 1]: w = (2, -5) puts margin 1 on x = 2 and x = 3 (min ||(w, b)||)
    np.testing.assert_allclose([svm.coef_[0, 0], svm.intercept_[0]], [2.0, -5.0], atol=1e-9)
    clf = GradientDescentClassifier(fit_intercept=True, steps=20000).fit(Xs, y)
    assert clf.score(Xs, y) == 1.0 and svm.score(Xs, y) == 1.0
    # the augmented predictor [coef, intercept] is what fastbias.train trains on [X, 1]
    run = fb.train(np.hstack([Xs, np.ones((4, 1))]), y, steps=20000)
    np.testing.assert_array_equal(np.append(clf.coef_, clf.intercept_), run.coef)


def test_regressor_goes_to_the_minimum_norm_interpolant():
    rng = np.random.default_rng(0)
    X, t = rng.standard_normal((5, 12)), rng.standard_normal(5)
    reg = GradientDescentRegressor(steps=20000).fit(X, t)  # from w = 0
    np.testing.assert_allclose(reg.coef_, np.linalg.pinv(X) @ t, atol=1e-9)
    assert reg.intercept_ == 0.0 and reg.score(X, t) == pytest.approx(1.0, abs=1e-12)
    assert reg.history_["distance_to_reference"][-1] < 1e-9


def test_deep_models_and_networks():
    X, y = fb.datasets.soudry2018()
    clf = GradientDescentClassifier(model="diag:2", steps=3000, random_state=4).fit(X, y)
    run = fb.train(X, y, model="diag:2", steps=3000, seed=4)
    np.testing.assert_array_equal(clf.coef_.ravel(), run.coef)
    assert clf.model_.depth == 2 and len(clf.params_) == 2
    net = fb.models.Network.fully_connected(2, [3], activation="relu")
    nclf = GradientDescentClassifier(model=net, steps=300, lr=0.01).fit(X, y)
    assert not hasattr(nclf, "coef_")
    np.testing.assert_allclose(nclf.decision_function(X), net.forward(nclf.params_, X))
    assert nclf.score(X, y) == 1.0


def test_pipeline_grid_search_and_clone():
    X, y = fb.datasets.separable_gaussian(60, 4, margin=0.1, seed=2)
    pipe = make_pipeline(StandardScaler(with_mean=False), GradientDescentClassifier(steps=200))
    grid = GridSearchCV(
        pipe,
        {"gradientdescentclassifier__model": ["linear", "diag:2"],
         "gradientdescentclassifier__lr": [None, 1e-3]},
        cv=3,
    )  # fmt: skip
    grid.fit(X, y)
    assert len(grid.cv_results_["params"]) == 4 and grid.best_score_ > 0.9
    est = GradientDescentClassifier(model=fb.models.Diagonal(3), steps=5, lr=0.1)
    twin = clone(est)
    assert twin.get_params()["lr"] == 0.1 and twin.model is not est.model
    assert repr(twin.model) == repr(est.model)
    twin.set_params(steps=7, loss="logistic")
    assert twin.steps == 7 and est.steps == 5


def test_bad_parameters_are_named():
    X, y = fb.datasets.soudry2018()
    with pytest.raises(ValueError, match="Unknown loss 'squared'"):
        GradientDescentClassifier(loss="squared").fit(X, y)
    with pytest.raises(ValueError, match="lr must be > 0"):
        GradientDescentClassifier(lr=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="Only binary classification is supported"):
        GradientDescentClassifier().fit(np.vstack([X, X[:1]]), np.append(y, 2))
    with pytest.raises(ValueError, match="intercept_scaling must be > 0"):
        GradientDescentClassifier(fit_intercept=True, intercept_scaling=0).fit(X, y)


def test_missing_sklearn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.delitem(sys.modules, "fastbias.sklearn")
    with pytest.raises(ImportError, match=r'pip install "fastbias\[sklearn\]"'):
        import fastbias.sklearn  # noqa: F401


def test_top_level_names_are_lazy():
    assert fb.GradientDescentClassifier is GradientDescentClassifier
    assert fb.MaxMarginClassifier is MaxMarginClassifier
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        fb.NoSuchThing  # noqa: B018
