r"""keras_optim's algorithms as ``tff.learning.optimizers.Optimizer``\ s.

The math is ``keras_optim.math`` (``adabelief_update``, ``diffgrad_update``): the very functions
the Keras classes ``keras_optim.AdaBelief`` and ``keras_optim.DiffGrad`` call, so one step of
these optimizers equals one step of the Keras classes on the same weights and gradients. Every
step is

.. math::

    w &\leftarrow w - \eta \lambda w \qquad \text{(decoupled weight decay, as Keras applies it)} \\
    (d_t, \text{state}_t) &= \text{update}(g_t, \text{state}_{t-1}, t) \\
    w &\leftarrow w - \eta \, d_t

with :math:`\eta` the learning rate and :math:`\lambda` the weight decay (0 by default). Use them
wherever TFF takes an optimizer::

    tff.learning.algorithms.build_weighted_fed_avg(
        model_fn,
        client_optimizer_fn=build_adabelief(learning_rate=1e-3),
        server_optimizer_fn=build_diffgrad(learning_rate=1e-2),
    )

TFF optimizers are functional: the state (step count, moments) is a structure of tensors passed
to and returned by ``next``. The learning rate and weight decay are hyperparameters in the state
(``get_hparams``/``set_hparams``, ``tff.learning.optimizers.LEARNING_RATE_KEY``); the betas,
epsilon and the boolean switches shape the computation and are fixed at construction.
Statistics of half-precision weights are kept in float32, as in the Keras classes.
"""
import collections

import tensorflow as tf
import tensorflow_federated as tff

from keras_optim import validation
from keras_optim.backend import dtype_name, statistics_dtype
from keras_optim.math import adabelief as adabelief_math
from keras_optim.math import diffgrad as diffgrad_math

LEARNING_RATE_KEY = tff.learning.optimizers.LEARNING_RATE_KEY
WEIGHT_DECAY_KEY = "weight_decay"
STEP_KEY = "step"
_HPARAMS_KEYS = (LEARNING_RATE_KEY, WEIGHT_DECAY_KEY)


class _KerasOptimMathOptimizer(tff.learning.optimizers.Optimizer):
    """A TFF optimizer around one ``keras_optim.math`` update function.

    Subclasses name their statistics (``slot_names``) and call the math (``_direction``).
    """

    def __init__(self, learning_rate, weight_decay):
        self._learning_rate = validation.check_real("learning_rate", learning_rate, low=0.0)
        self._weight_decay = validation.check_real("weight_decay", weight_decay, low=0.0)

    def slot_names(self):
        raise NotImplementedError

    def _direction(self, gradient, slots, step):
        raise NotImplementedError

    def initialize(self, specs):
        def zeros(spec):
            return tf.zeros(spec.shape, statistics_dtype(spec))

        state = collections.OrderedDict(
            [
                (LEARNING_RATE_KEY, self._learning_rate),
                (WEIGHT_DECAY_KEY, self._weight_decay),
                (STEP_KEY, 0),
            ]
        )
        for name in self.slot_names():
            state[name] = tf.nest.map_structure(zeros, specs)
        return state

    def next(self, state, weights, gradients):
        gradients = tff.learning.optimizers.handle_indexed_slices_gradients(gradients)
        tff.learning.optimizers.check_weights_gradients_match(weights, gradients)
        names = self.slot_names()
        for name in names:
            tff.learning.optimizers.optimizer.check_weights_state_match(weights, state[name], name)
        step = state[STEP_KEY] + 1
        lr = state[LEARNING_RATE_KEY]
        weight_decay = state[WEIGHT_DECAY_KEY]

        def update_leaf(weight, gradient, *slots):
            if gradient is None:  # as Keras: a variable without gradient is left alone
                return (weight,) + slots
            dtype = dtype_name(statistics_dtype(weight))
            # Decoupled weight decay first, in the variable's dtype, as tf.keras applies it.
            weight = weight - weight * tf.cast(weight_decay, weight.dtype) * tf.cast(lr, weight.dtype)
            direction, new_slots = self._direction(
                tf.cast(gradient, dtype),
                {name: tf.cast(slot, dtype) for name, slot in zip(names, slots)},
                tf.cast(step, dtype),
            )
            new_weight = tf.cast(tf.cast(weight, dtype) - tf.cast(lr, dtype) * direction, weight.dtype)
            return (new_weight,) + tuple(new_slots[name] for name in names)

        results = tff.learning.optimizers.nest_utils.map_at_leaves(
            update_leaf,
            weights,
            gradients,
            *[state[name] for name in names],
            num_outputs=1 + len(names),
        )
        new_weights, new_slots = results[0], results[1:]
        new_state = collections.OrderedDict(
            [(LEARNING_RATE_KEY, lr), (WEIGHT_DECAY_KEY, weight_decay), (STEP_KEY, step)]
        )
        for name, value in zip(names, new_slots):
            new_state[name] = value
        return new_state, new_weights

    def get_hparams(self, state):
        return collections.OrderedDict([(key, state[key]) for key in _HPARAMS_KEYS])

    def set_hparams(self, state, hparams):
        new_state = collections.OrderedDict(state)
        for key, value in hparams.items():
            if key not in _HPARAMS_KEYS:
                raise KeyError(f"unknown hyperparameter {key!r}; expected one of {_HPARAMS_KEYS}")
            new_state[key] = value
        return new_state


class _AdaBelief(_KerasOptimMathOptimizer):
    def __init__(self, learning_rate, beta_1, beta_2, epsilon, amsgrad, rectify,
                 degenerated_to_sgd, weight_decay):
        super().__init__(learning_rate, weight_decay)
        self._beta_1 = validation.check_beta("beta_1", beta_1)
        self._beta_2 = validation.check_beta("beta_2", beta_2)
        self._epsilon = validation.check_real("epsilon", epsilon, low=0.0)
        self._amsgrad = validation.check_bool("amsgrad", amsgrad)
        self._rectify = validation.check_bool("rectify", rectify)
        self._degenerated_to_sgd = validation.check_bool("degenerated_to_sgd", degenerated_to_sgd)

    def slot_names(self):
        return adabelief_math.AMSGRAD_SLOTS if self._amsgrad else adabelief_math.SLOTS

    def _direction(self, gradient, slots, step):
        return adabelief_math.adabelief_update(
            gradient, slots, step,
            beta_1=self._beta_1, beta_2=self._beta_2, epsilon=self._epsilon,
            amsgrad=self._amsgrad, rectify=self._rectify,
            degenerated_to_sgd=self._degenerated_to_sgd,
        )


class _DiffGrad(_KerasOptimMathOptimizer):
    def __init__(self, learning_rate, beta_1, beta_2, epsilon, weight_decay):
        super().__init__(learning_rate, weight_decay)
        self._beta_1 = validation.check_beta("beta_1", beta_1)
        self._beta_2 = validation.check_beta("beta_2", beta_2)
        self._epsilon = validation.check_real("epsilon", epsilon, low=0.0)

    def slot_names(self):
        return diffgrad_math.SLOTS

    def _direction(self, gradient, slots, step):
        return diffgrad_math.diffgrad_update(
            gradient, slots, step, beta_1=self._beta_1, beta_2=self._beta_2, epsilon=self._epsilon
        )


def build_adabelief(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-16, amsgrad=False,
                    rectify=True, degenerated_to_sgd=True, weight_decay=0.0):
    r"""AdaBelief (Zhuang et al., NeurIPS 2020, arXiv 2010.07468) as a TFF optimizer.

    Same arguments and defaults as ``keras_optim.AdaBelief``; the equations are in
    ``keras_optim.math.adabelief``:

    .. math::

        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        s_t = \beta_2 s_{t-1} + (1-\beta_2)(g_t - m_t)^2 + \epsilon, \quad
        w \leftarrow w - \eta \, \frac{m_t / (1-\beta_1^t)}{\sqrt{s_t / (1-\beta_2^t)} + \epsilon}

    (with RAdam's rectification when ``rectify``).
    """
    return _AdaBelief(learning_rate, beta_1, beta_2, epsilon, amsgrad, rectify,
                      degenerated_to_sgd, weight_decay)


def build_diffgrad(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8, weight_decay=0.0):
    r"""diffGrad (Dubey et al., IEEE TNNLS 2019, arXiv 1909.11015) as a TFF optimizer.

    Same arguments and defaults as ``keras_optim.DiffGrad``; the equations are in
    ``keras_optim.math.diffgrad``:

    .. math::

        \xi_t = \operatorname{sigmoid}(|g_{t-1} - g_t|), \quad
        w \leftarrow w - \eta \, \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}
        \frac{\xi_t m_t}{\sqrt{v_t} + \epsilon}
    """
    return _DiffGrad(learning_rate, beta_1, beta_2, epsilon, weight_decay)


__all__ = ["build_adabelief", "build_diffgrad"]
