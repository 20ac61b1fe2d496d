r"""diffGrad: An Optimization Method for Convolutional Neural Networks (Dubey et al., IEEE TNNLS
2019, arXiv 1909.11015), as the authors' official v2 code (equal to ``torch-optimizer==0.3.0``
``DiffGrad``) computes it.

.. math::

    m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t \\
    v_t &= \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
    \xi_t &= \operatorname{sigmoid}(|g_{t-1} - g_t|), \quad g_0 = 0 \\
    d_t &= \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t} \, \frac{\xi_t m_t}{\sqrt{v_t} + \epsilon}

and ``variable -= learning_rate * d_t``. The previous gradient :math:`g_{t-1}` is state kept
by value (the original v1 code kept a reference to the live gradient, so that
:math:`\xi_t = \operatorname{sigmoid}(0) = 1/2` from the second step on).
"""
from keras_optim import validation
from keras_optim.backend import ops
from keras_optim.math.common import power_and_complement
from keras_optim.math.slots import functional

SLOTS = ("m", "v", "previous_gradient")

# The settings every adapter (Keras class, TFF builder) takes, with the authors' defaults,
# declared and checked here once.
LEARNING_RATE = 1e-3
DEFAULTS = dict(beta_1=0.9, beta_2=0.999, epsilon=1e-8)


def check_settings(beta_1, beta_2, epsilon):
    """The settings of ``diffgrad_step`` by name, checked (``ValueError`` naming a bad one)."""
    return dict(
        beta_1=validation.check_beta("beta_1", beta_1),
        beta_2=validation.check_beta("beta_2", beta_2),
        epsilon=validation.check_real("epsilon", epsilon, low=0.0),
    )


def diffgrad_step(gradient, slots, step, *, beta_1, beta_2, epsilon, first_moment_gradient=None):
    """One diffGrad step; ``slots`` (``m``, ``v``, ``previous_gradient``) behind the interface
    of ``keras_optim.math.slots``, updated in place; ``step`` is :math:`t \\ge 1` in the
    gradient's dtype; ``first_moment_gradient`` feeds :math:`m_t` (defaults to the gradient;
    the coordinate-clipped one with ``keras_optim.math.coordinate_clip``), while :math:`v_t`
    and the friction :math:`\\xi_t` keep the raw gradient. Returns the direction :math:`d_t`."""
    # 1 + e^{-|g_{t-1} - g_t|} = 1 / friction; e^{-|.|} <= 1 cannot overflow.
    inverse_friction = 1.0 + ops.exp(-ops.abs(slots["previous_gradient"] - gradient))
    first = gradient if first_moment_gradient is None else first_moment_gradient
    slots.add("m", (first - slots["m"]) * (1.0 - beta_1))
    slots.add("v", (ops.square(gradient) - slots["v"]) * (1.0 - beta_2))
    _, bias_correction_1 = power_and_complement(beta_1, step)
    _, bias_correction_2 = power_and_complement(beta_2, step)
    step_size = ops.sqrt(bias_correction_2) / bias_correction_1
    # The friction's division folded into Adam's one: one division per coordinate, not two
    # (docs/optimizers.md, "Speed").
    direction = (step_size * slots["m"]) / (inverse_friction * (ops.sqrt(slots["v"]) + epsilon))
    # By value (v1 kept a reference to the live gradient); after the variable's update, which
    # reads the old value.
    slots.set_after_update("previous_gradient", gradient)
    return direction


diffgrad_update = functional(diffgrad_step)
