import numpy as np
import pytest

from fastbias import datasets


def test_soudry2018_structure():
    X, y = datasets.soudry2018()
    assert X.shape == (16, 2) and y.shape == (16,)
    np.testing.assert_array_equal(X[:4], [[0.5, 1.5], [1.5, 0.5], [-0.5, -1.5], [-1.5, -0.5]])
    assert (y == 1).sum() == 8 and (y == -1).sum() == 8
    margins = (X * y[:, None]) @ np.array([0.5, 0.5])
    np.testing.assert_allclose(margins[:4], 1.0)
    assert margins[4:].min() >= 1.25  # strictly outside the margin
    X2, _ = datasets.soudry2018()
    np.testing.assert_array_equal(X, X2)  # seeded


def test_separable_gaussian_margin():
    X, y = datasets.separable_gaussian(500, 10, margin=0.3, seed=1)
    assert X.shape == (500, 10) and set(np.unique(y)) == {-1.0, 1.0}
    rng = np.random.default_rng(1)
    u = rng.standard_normal(10)
    u /= np.linalg.norm(u)
    assert np.min(y * (X @ u)) >= 0.3 - 1e-12


def test_bad_arguments():
    with pytest.raises(ValueError, match="n must be an integer"):
        datasets.separable_gaussian(0, 3)
    with pytest.raises(ValueError, match="margin must be > 0"):
        datasets.separable_gaussian(10, 3, margin=-1)
    with pytest.raises(ValueError, match="even"):
        datasets.soudry2018(n_random=3)
