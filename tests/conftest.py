"""Shared fixtures and the tolerances the tests use (in one place)."""

import numpy as np
import pytest

import fastbias as fb

# Compiled kernel vs NumPy reference: same arithmetic up to float64 round-off.
KERNEL_RTOL = 1e-12


@pytest.fixture(scope="session")
def soudry_data():
    return fb.datasets.soudry2018()


def random_separable(n, d, seed, margin=0.05):
    """Gaussian data labelled by a random direction, pushed off the separator."""
    return fb.datasets.separable_gaussian(n, d, margin=margin, seed=seed)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
