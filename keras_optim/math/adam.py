r"""Adam (Kingma & Ba, ICLR 2015, arXiv 1412.6980) as Keras' ``Adam`` computes it, with the
first moment optionally fed a different (coordinate-clipped) gradient, as in Pan & Li's
``AdamClip`` (arXiv 2306.00204).

.. math::

    m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, \tilde g_t \\
    v_t &= \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2 \\
    \hat v_t &= \max(\hat v_{t-1}, v_t) \text{ with AMSGrad, else } v_t \\
    d_t &= \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t} \, \frac{m_t}{\sqrt{\hat v_t} + \epsilon}

and ``variable -= learning_rate * d_t``. :math:`\tilde g_t` is the gradient, or its
coordinate-clipped version (``keras_optim.math.coordinate_clip``): clipping tames the first
moment, while the second moment keeps measuring the raw gradient's scale. :math:`\epsilon` is
Keras' (Kingma & Ba's "epsilon hat", outside the bias correction of :math:`v`); PyTorch's Adam
adds it to :math:`\sqrt{v_t/(1-\beta_2^t)}` instead.
"""
from keras_optim.backend import ops
from keras_optim.math.common import power_and_complement
from keras_optim.math.slots import functional

SLOTS = ("m", "v")
AMSGRAD_SLOTS = ("m", "v", "v_hat")


def adam_step(gradient, slots, step, *, beta_1, beta_2, epsilon, amsgrad=False,
              first_moment_gradient=None):
    """One Adam step; ``slots`` (``m``, ``v``, and ``v_hat`` with AMSGrad) behind the interface
    of ``keras_optim.math.slots``, updated in place; ``step`` is :math:`t \\ge 1` in the
    gradient's dtype; ``first_moment_gradient`` is :math:`\\tilde g_t` (defaults to the
    gradient). Returns the direction :math:`d_t`."""
    first = gradient if first_moment_gradient is None else first_moment_gradient
    slots.add("m", (first - slots["m"]) * (1.0 - beta_1))
    slots.add("v", (ops.square(gradient) - slots["v"]) * (1.0 - beta_2))
    v = slots["v"]
    if amsgrad:
        slots.set("v_hat", ops.maximum(slots["v_hat"], v))
        v = slots["v_hat"]
    _, bias_correction_1 = power_and_complement(beta_1, step)
    _, bias_correction_2 = power_and_complement(beta_2, step)
    alpha = ops.sqrt(bias_correction_2) / bias_correction_1
    return (slots["m"] * alpha) / (ops.sqrt(v) + epsilon)


adam_update = functional(adam_step)
