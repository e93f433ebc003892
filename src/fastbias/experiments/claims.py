"""Claims of a paper checked against a measurement: what theory predicts, what a run gave.

A :class:`Claim` is one row of a target's verdict: the claim in words, where the paper makes
it, the value theory predicts, the value measured, the tolerance and whether it holds. The
constructors below (:func:`close`, :func:`at_most`, :func:`at_least`, :func:`equal`,
:func:`holds`) decide ``passed`` from the numbers, so no target states a verdict by hand.

A claim that does not hold under the paper's stated settings is reported as failed, with the
measured numbers. When such a failure is a stable finding (reproduced at full settings, and
explained in the target's docstring and the README), the target marks it ``expected=False``
with a ``note``: the verdict still says FAIL, and the test suite checks that the finding
stays as documented (a claim that starts to hold, or a new failure, fails the tests).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Claim", "close", "at_most", "at_least", "equal", "holds", "fmt"]


@dataclass(frozen=True)
class Claim:
    """One checked claim of a paper.

    Attributes
    ----------
    claim : str
        What the paper says, in words (``"training loss ~ 1/t"``).
    source : str
        Where it says it (``"Soudry et al. (2018), eq. 3.4"``).
    predicted : str
        The value (or law) theory predicts, formatted.
    measured : str
        The value measured, formatted.
    tolerance : str
        The test applied (``"|a - 1| <= 0.05"``).
    passed : bool
        Whether the measurement satisfies the claim within the tolerance.
    expected : bool
        False only for a documented finding that the claim does not hold here.
    note : str
        Context: the settings the measurement used, or why a claim is expected to fail.
    value : float or None
        The measured number itself (for the CSV/JSON), when there is one.
    """

    claim: str
    source: str
    predicted: str
    measured: str
    tolerance: str
    passed: bool
    expected: bool = True
    note: str = ""
    value: float | None = None

    @property
    def as_expected(self) -> bool:
        """True when the verdict is the documented one (pass, or a documented failure)."""
        return self.passed == self.expected

    @property
    def verdict(self) -> str:
        if self.passed:
            return "PASS" if self.expected else "PASS (documented as failing: recheck)"
        return "FAIL" if self.expected else "FAIL (documented finding)"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["verdict"] = self.verdict
        if out["value"] is not None and not math.isfinite(out["value"]):
            out["value"] = None  # JSON has no inf/NaN; the formatted text keeps it
        return out


def fmt(value: Any, digits: int = 4) -> str:
    """A number formatted for a verdict table (``%.4g``; text passes through)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "nan"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.{digits}g}"


def _number(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        raise TypeError(f"a claim needs a number; got {x!r}") from None


def close(
    claim: str,
    source: str,
    predicted: float,
    measured: float,
    *,
    atol: float = 0.0,
    rtol: float = 0.0,
    expected: bool = True,
    note: str = "",
) -> Claim:
    """``|measured - predicted| <= atol + rtol |predicted|``."""
    p, m = _number(predicted), _number(measured)
    bound = atol + rtol * abs(p)
    if atol and rtol:
        tol = f"|diff| <= {fmt(atol)} + {fmt(rtol)}|pred|"
    elif rtol:
        tol = f"|diff| <= {fmt(rtol)}|pred|"
    else:
        tol = f"|diff| <= {fmt(atol)}"
    ok = math.isfinite(m) and abs(m - p) <= bound
    return Claim(claim, source, fmt(p), fmt(m), tol, ok, expected, note, m)


def at_most(
    claim: str,
    source: str,
    bound: float,
    measured: float,
    *,
    predicted: str | None = None,
    expected: bool = True,
    note: str = "",
) -> Claim:
    """``measured <= bound`` (``predicted`` describes the law, e.g. ``"-> 0"``)."""
    b, m = _number(bound), _number(measured)
    ok = math.isfinite(m) and m <= b
    pred = predicted if predicted is not None else f"<= {fmt(b)}"
    return Claim(claim, source, pred, fmt(m), f"<= {fmt(b)}", ok, expected, note, m)


def at_least(
    claim: str,
    source: str,
    bound: float,
    measured: float,
    *,
    predicted: str | None = None,
    expected: bool = True,
    note: str = "",
) -> Claim:
    """``measured >= bound``."""
    b, m = _number(bound), _number(measured)
    ok = math.isfinite(m) and m >= b
    pred = predicted if predicted is not None else f">= {fmt(b)}"
    return Claim(claim, source, pred, fmt(m), f">= {fmt(b)}", ok, expected, note, m)


def equal(
    claim: str,
    source: str,
    predicted: Any,
    measured: Any,
    *,
    expected: bool = True,
    note: str = "",
) -> Claim:
    """``measured == predicted`` for categorical outcomes (verdicts, signs, supports)."""
    return Claim(
        claim, source, fmt(predicted), fmt(measured), "equal", measured == predicted, expected, note
    )


def holds(
    claim: str,
    source: str,
    predicted: str,
    measured: str,
    passed: bool,
    tolerance: str,
    *,
    expected: bool = True,
    note: str = "",
    value: float | None = None,
) -> Claim:
    """A claim whose test is not one of the above (``passed`` computed by the caller from the
    measurement, e.g. monotonicity of a column); say the test in ``tolerance``."""
    return Claim(claim, source, predicted, measured, tolerance, bool(passed), expected, note, value)
