"""What theory predicts: exact max-margin solutions and the GD residual limit."""

from .l2_margin import MaxMarginSolution, max_margin, w_tilde

__all__ = ["MaxMarginSolution", "max_margin", "w_tilde"]
