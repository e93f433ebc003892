"""What gradient flow converges to in underdetermined regression (Yun et al. 2021, Section 5).

An index of the modules that hold each result (imports from here keep working):

* Lemma 4: the ODE ``p' = p^{L-2} q, q' = p^{L-1}, p(0) = 1, q(0) = 0`` on its maximal interval
  ``(-c_L, c_L)``, ``h_L = p^{L-1} q`` and ``H_L(t) = int_0^t h_L^{-1}`` (:func:`h_L`,
  :func:`h_L_inverse`, :func:`H_L`, :func:`lemma4_solution`, :func:`lemma4_radius`).
* Theorem 5: for an orthogonally decomposable network (Assumption 1, real ``S``) initialized at
  ``v_l(0) = alpha U_l eta_bar`` (``l < L``), ``v_L(0) = 0``, the limit of ``beta(t)`` is
  ``S^T rho`` with ``rho`` the minimizer of ``Q_{L,alpha,eta_bar}(rho)`` subject to
  ``X S^T rho = y`` (:func:`q_minimizer`, :func:`q_norm`); Corollaries 5 (diagonal), 6 (full
  width convolutional, even data) and 7 (deep matrix sensing with commuting symmetric sensors).
* Theorem 6: closed-form limit points of a 2-layer linear tensor network fitted to one data
  point (:func:`two_layer_limit_point`).

Modules: :mod:`~fastbias.references.lemma4` (Lemma 4), :mod:`~fastbias.references.qnorm`
(Theorem 5), :mod:`~fastbias.references.regression_limits` (Corollaries 5-7),
:mod:`~fastbias.references.two_layer` (Theorem 6).
"""

from __future__ import annotations

from .lemma4 import H_L, h_L, h_L_inverse, lemma4_radius, lemma4_solution
from .qnorm import QMinimizer, q_minimizer, q_norm
from .regression_limits import (
    MatrixSensingLimit,
    conv_even_regression_limit,
    diagonal_regression_limit,
    matrix_sensing_limit,
)
from .two_layer import TwoLayerLimitPoint, two_layer_limit_point

__all__ = [
    "lemma4_radius",
    "lemma4_solution",
    "h_L",
    "h_L_inverse",
    "H_L",
    "q_norm",
    "QMinimizer",
    "q_minimizer",
    "diagonal_regression_limit",
    "conv_even_regression_limit",
    "MatrixSensingLimit",
    "matrix_sensing_limit",
    "TwoLayerLimitPoint",
    "two_layer_limit_point",
]
