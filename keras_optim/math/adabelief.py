r"""AdaBelief: Adapting Stepsizes by the Belief in Observed Gradients (Zhuang et al., NeurIPS 2020,
arXiv 2010.07468), exactly as the authors' ``adabelief-pytorch==0.2.1`` computes it.

.. math::

    m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t \\
    s_t &= \beta_2 s_{t-1} + (1-\beta_2)(g_t - m_t)^2 + \epsilon \\
    \hat s_t &= \max(\hat s_{t-1}, s_t) \text{ with AMSGrad, else } s_t \\
    d_t &= \frac{m_t / (1-\beta_1^t)}{\sqrt{\hat s_t} / \sqrt{1-\beta_2^t} + \epsilon}

and ``variable -= learning_rate * d_t``. Note that :math:`\epsilon` is added to the state
:math:`s_t` itself (the authors' in-place ``exp_avg_var.add_(eps)``), and again to the
denominator.

With ``rectify`` (RAdam's variance rectification, Liu et al. 2020), with
:math:`\rho_\infty = 2/(1-\beta_2) - 1` and
:math:`\rho_t = \rho_\infty - 2t\beta_2^t/(1-\beta_2^t)`:

.. math::

    d_t = \begin{cases}
      r_t \, m_t / (\sqrt{s_t} + \epsilon), &
      r_t = \frac{1}{1-\beta_1^t}\sqrt{(1-\beta_2^t)
      \frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)\rho_t(\rho_\infty-2)}}
      & \rho_t \ge 5 \\
      m_t / (1-\beta_1^t) & \rho_t < 5, \text{ degenerated\_to\_sgd} \\
      0 & \text{otherwise}
    \end{cases}

As in the authors' code, the rectified branch divides by :math:`\sqrt{s_t}` (not the AMSGrad
maximum), and the bias correction :math:`1-\beta_2^t` sits inside :math:`r_t`.
"""
from keras_optim import validation
from keras_optim.backend import ops
from keras_optim.math.common import power_and_complement
from keras_optim.math.slots import functional

SLOTS = ("m", "s")
AMSGRAD_SLOTS = ("m", "s", "s_max")

# The settings every adapter (Keras class, TFF builder) takes, with adabelief-pytorch 0.2.1's
# defaults, declared and checked here once.
LEARNING_RATE = 1e-3
DEFAULTS = dict(beta_1=0.9, beta_2=0.999, epsilon=1e-16, amsgrad=False, rectify=True,
                degenerated_to_sgd=True)


def check_settings(beta_1, beta_2, epsilon, amsgrad, rectify, degenerated_to_sgd):
    """The settings of ``adabelief_step`` by name, checked (``ValueError`` naming a bad one)."""
    return dict(
        beta_1=validation.check_beta("beta_1", beta_1),
        beta_2=validation.check_beta("beta_2", beta_2),
        epsilon=validation.check_real("epsilon", epsilon, low=0.0),
        amsgrad=validation.check_bool("amsgrad", amsgrad),
        rectify=validation.check_bool("rectify", rectify),
        degenerated_to_sgd=validation.check_bool("degenerated_to_sgd", degenerated_to_sgd),
    )


def adabelief_step(gradient, slots, step, *, beta_1, beta_2, epsilon, amsgrad=False,
                   rectify=True, degenerated_to_sgd=True, first_moment_gradient=None):
    """One AdaBelief step.

    Args:
      gradient: the gradient :math:`g_t`.
      slots: ``m``, ``s`` (and ``s_max`` with ``amsgrad``) behind the interface of
        ``keras_optim.math.slots``, same dtype as the gradient; updated in place.
      step: :math:`t`, starting at 1, as a scalar tensor of the gradient's dtype.
      first_moment_gradient: what feeds :math:`m_t` (defaults to the gradient): the
        coordinate-clipped gradient (``keras_optim.math.coordinate_clip``); :math:`s_t` keeps
        the raw residual :math:`g_t - m_t`.

    Returns:
      The direction :math:`d_t`; the variable moves by ``-learning_rate * direction``.
    """
    first = gradient if first_moment_gradient is None else first_moment_gradient
    slots.add("m", (first - slots["m"]) * (1.0 - beta_1))
    m = slots["m"]
    slots.add("s", (ops.square(gradient - m) - slots["s"]) * (1.0 - beta_2) + epsilon)
    s = slots["s"]
    s_hat = s
    if amsgrad:
        slots.set("s_max", ops.maximum(slots["s_max"], s))
        s_hat = slots["s_max"]

    _, bias_correction_1 = power_and_complement(beta_1, step)
    beta_2_power, bias_correction_2 = power_and_complement(beta_2, step)
    if not rectify:
        # Scalar reciprocals first: one division per coordinate, as in Keras' Adam.
        return (m * (1.0 / bias_correction_1)) / (
            ops.sqrt(s_hat) * (1.0 / ops.sqrt(bias_correction_2)) + epsilon
        )

    rho_inf = 2.0 / (1.0 - beta_2) - 1.0
    rho_t = rho_inf - 2.0 * step * beta_2_power / bias_correction_2
    # The clamp only keeps the branch that `where` discards (rho_t < 5) free of NaN.
    ratio = ops.maximum(
        bias_correction_2 * (rho_t - 4.0) * (rho_t - 2.0) * rho_inf
        / ((rho_inf - 4.0) * rho_t * (rho_inf - 2.0)),
        0.0,
    )
    # Both branches as one expression with scalar coefficients: one pass over the tensors.
    rectified = rho_t >= 5.0
    zero = 0.0 * rho_t
    adaptive_coefficient = ops.where(rectified, ops.sqrt(ratio) / bias_correction_1, zero)
    sgd_coefficient = ops.where(
        rectified, zero, 1.0 / bias_correction_1 if degenerated_to_sgd else zero
    )
    # Before rectification the adaptive term is 0; dividing it by sqrt(s) + 1 instead of
    # sqrt(s) + epsilon keeps it 0 where s = epsilon = 0, finite as in the authors' code.
    denominator_offset = ops.where(rectified, zero + epsilon, zero + 1.0)
    return m * (adaptive_coefficient / (ops.sqrt(s) + denominator_offset) + sgd_coefficient)


adabelief_update = functional(adabelief_step)
