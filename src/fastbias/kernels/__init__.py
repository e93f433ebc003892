"""Private compiled kernels and their plain-NumPy references (the specification)."""

# Codes shared by every backend (NumPy reference, numba, C).
LOSS_CODES = {"exp": 0, "logistic": 1}
STEP_RULE_CODES = {"fixed": 0, "normalized": 1, "loss-scaled": 2}

STATUS_OK = 0
STATUS_DIVERGED = 1
