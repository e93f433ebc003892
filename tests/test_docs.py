"""The tutorial's examples are true: every output on docs/tutorial.rst is checked by doctest."""

import doctest
import warnings
from pathlib import Path

import numpy as np
import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.rst"


@pytest.mark.skipif(not TUTORIAL.exists(), reason="docs/ is not part of this installation")
def test_tutorial_outputs():
    for module in ("pandas", "xarray", "sklearn"):
        pytest.importorskip(module)
    printopts = np.get_printoptions()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence-condition notes of the deep models
            result = doctest.testfile(
                str(TUTORIAL),
                module_relative=False,
                optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS,
                raise_on_error=False,
                verbose=False,
            )
    finally:
        np.set_printoptions(**printopts)
    assert result.attempted > 30
    assert result.failed == 0, f"{result.failed} tutorial examples differ (see the output above)"
