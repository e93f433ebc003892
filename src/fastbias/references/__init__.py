"""What theory predicts: exact max-margin solutions, certificates and min-norm interpolants."""

from ._results import (
    MarginSolution,
    MinNormSolution,
    MulticlassMarginSolution,
    StationarityResult,
    StationaryPoint,
)
from .dft_margin import max_margin_dft_l1
from .l1_margin import max_margin_l1
from .l2_margin import MaxMarginSolution, w_tilde
from .lemma4 import H_L, h_L, h_L_inverse, lemma4_radius, lemma4_solution
from .margins import max_margin
from .min_norm import min_norm
from .multiclass import max_margin_multiclass
from .predicted import Prediction, predicted_limit
from .qnorm import QMinimizer, q_minimizer, q_norm
from .regression_limits import (
    MatrixSensingLimit,
    conv_even_regression_limit,
    diagonal_regression_limit,
    matrix_sensing_limit,
)
from .regularizer import (
    ImplicitRegularizer,
    conv_regularizer,
    diagonal_regularizer,
    fc_regularizer,
    implicit_regularizer,
)
from .stationarity import stationarity, stationary_point_near
from .tensor_svd import (
    LimitDirection,
    TensorSingularVectors,
    conv_filter_limit_direction,
    data_tensor,
    data_tensor_stack,
    singular_vector_residual,
    tensor_singular_vectors,
    two_layer_limit_direction,
)
from .two_layer import TwoLayerLimitPoint, two_layer_limit_point

__all__ = [
    "predicted_limit",
    "Prediction",
    "max_margin",
    "MaxMarginSolution",
    "MarginSolution",
    "MulticlassMarginSolution",
    "StationaryPoint",
    "StationarityResult",
    "MinNormSolution",
    "max_margin_l1",
    "max_margin_dft_l1",
    "max_margin_multiclass",
    "stationarity",
    "stationary_point_near",
    "min_norm",
    "w_tilde",
    "h_L",
    "h_L_inverse",
    "H_L",
    "lemma4_radius",
    "lemma4_solution",
    "q_norm",
    "q_minimizer",
    "QMinimizer",
    "diagonal_regression_limit",
    "conv_even_regression_limit",
    "matrix_sensing_limit",
    "MatrixSensingLimit",
    "two_layer_limit_point",
    "TwoLayerLimitPoint",
    "implicit_regularizer",
    "ImplicitRegularizer",
    "fc_regularizer",
    "diagonal_regularizer",
    "conv_regularizer",
    "tensor_singular_vectors",
    "TensorSingularVectors",
    "singular_vector_residual",
    "data_tensor",
    "data_tensor_stack",
    "two_layer_limit_direction",
    "conv_filter_limit_direction",
    "LimitDirection",
]
