"""Scalar helpers shared by the algorithms' math."""
import math

from keras_optim.backend import ops


def power_and_complement(beta, step):
    r"""Returns :math:`(\beta^t, 1-\beta^t)` in ``step``'s dtype.

    Computed as :math:`\exp(t\log\beta)` and :math:`-\operatorname{expm1}(t\log\beta)`: in
    float32, ``1 - beta**t`` loses about half its digits for beta close to 1 (0.999), which
    matters where it is subtracted again (AdaBelief's rectification term :math:`\rho_t`).
    """
    log_beta = ops.convert_to_tensor(math.log(beta) if beta > 0 else -math.inf, dtype=step.dtype)
    exponent = step * log_beta
    return ops.exp(exponent), -ops.expm1(exponent)
