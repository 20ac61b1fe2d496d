r"""Stochastic gradient descent with momentum, as Keras' ``SGD`` computes it.

.. math::

    v_t &= \mu v_{t-1} - \eta_t g_t \\
    \Delta_t &= \begin{cases} \mu v_t - \eta_t g_t & \text{Nesterov} \\
                              v_t & \text{otherwise} \end{cases}

and ``variable += Delta_t`` (plain SGD, :math:`\mu = 0`: ``variable -= eta_t * g_t``). The
velocity :math:`v` holds the learning rate :math:`\eta_t` (Keras' form); for a constant
learning rate it equals PyTorch's :math:`-\eta\, b_t` with :math:`b_t = \mu b_{t-1} + g_t`, the
form of Pan & Li's ``SGDClip`` (arXiv 2306.00204). With coordinate clipping, :math:`g_t` is
the clipped gradient in both places (``keras_optim.math.coordinate_clip``).
"""
from keras_optim.backend import ops

SLOTS = ("momentum",)


def sgd_delta(gradient, slots, learning_rate, *, momentum=0.0, nesterov=False):
    """One SGD step: updates the ``momentum`` slot (when ``momentum != 0``) in place and returns
    how far the variable moves down, :math:`-\\Delta_t` (``variable <- variable - delta``)."""
    if momentum == 0:  # keras.ops keeps a sparse gradient sparse: only its rows move
        return ops.multiply(gradient, learning_rate)
    slots.set("momentum", slots["momentum"] * momentum - gradient * learning_rate)
    velocity = slots["momentum"]
    if nesterov:
        return -(velocity * momentum - gradient * learning_rate)
    return -velocity
