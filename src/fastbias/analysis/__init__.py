"""Parameter-space analysis of the max-margin problem (Vardi, Shamir and Srebro 2022).

* :func:`kkt` - KKT multipliers of Problem 2 (Vardi eq. 2, Gunasekar eq. 14-16) at a direction;
* :func:`optimality` - is that KKT point a global optimum, a local one, or neither (with
  witnesses and certificates);
* :func:`layer_margin` - the per-layer problem (Vardi eq. 4; Theorems 5.2-5.4);
* :func:`global_optimum` - the exact global optimum of Problem 2 where the paper's arguments
  give one.
"""

from ._global import GlobalCertificate, global_optimum
from ._problem import Kink
from .kkt import KKTResult, kkt
from .layer_margin import LayerMarginResult, layer_margin
from .optimality import OptimalityResult, PieceCheck, Witness, optimality

__all__ = [
    "kkt",
    "KKTResult",
    "optimality",
    "OptimalityResult",
    "Witness",
    "PieceCheck",
    "layer_margin",
    "LayerMarginResult",
    "global_optimum",
    "GlobalCertificate",
    "Kink",
]
