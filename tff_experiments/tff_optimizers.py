r"""keras_optim's algorithms as ``tff.learning.optimizers.Optimizer``\ s.

The math is ``keras_optim.math`` (``adabelief_update``, ``diffgrad_update``, and
``coordinate_clip`` for Pan & Li's coordinate-wise clipping): the very functions the Keras
classes ``keras_optim.AdaBelief``, ``keras_optim.DiffGrad`` and ``keras_optim.CoordinateClipping``
call, so one step of these optimizers equals one step of the Keras classes on the same weights
and gradients. Every step is

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
(``get_hparams``/``set_hparams``, ``tff.learning.optimizers.LEARNING_RATE_KEY``) and may be
tensors, as in TFF's own builders (``build_weighted_fed_avg_with_optimizer_schedule`` passes
the scheduled learning rate as one); the betas, epsilon and the boolean switches shape the
computation and are fixed at construction (numbers, or tensors whose value is known then).

Half precision: the statistics of float16/bfloat16 weights are kept and computed in float32,
as in the Keras classes, and the weights come back in their own dtype, rounded once per step.
TFF's own optimizers keep their state in the weight dtype, which for half precision loses the
moments (bfloat16 keeps 8 bits: ``s + 0.001 (g^2 - s)`` rounds back to ``s``). So ``next``
holds the state to TFF's ``check_weights_state_match`` against the weights' *statistics*
specs: same structure and shapes, the dtype ``keras_optim.backend.statistics_dtype`` gives
(float32 for half precision, the weight's own otherwise); a state built for other weights
still raises TFF's ``ValueError``.

``epsilon=0`` is allowed, as in the authors' code and TFF's Adam: a coordinate whose gradient
stays exactly 0 then divides 0 by 0 once the adaptive step starts (at once for diffGrad and
AdaBelief without rectification; after the SGD warm-up with it), giving NaN exactly where the
authors' code does. Use ``epsilon > 0`` when such coordinates can occur.
"""
import collections
import collections.abc

import tensorflow as tf
import tensorflow_federated as tff

from keras_optim import validation
from keras_optim.backend import dtype_name, statistics_dtype
from keras_optim.math import adabelief as adabelief_math
from keras_optim.math import coordinate_clip as clip_math
from keras_optim.math import diffgrad as diffgrad_math

LEARNING_RATE_KEY = tff.learning.optimizers.LEARNING_RATE_KEY
WEIGHT_DECAY_KEY = "weight_decay"
STEP_KEY = "step"
_HPARAMS_KEYS = (LEARNING_RATE_KEY, WEIGHT_DECAY_KEY)


def _check_hparam(name, value, **bounds):
    """A hyperparameter kept in the state: a real number, or a float scalar tensor (checked
    against the bounds when its value is known, as TFF's builders do)."""
    if not tf.is_tensor(value):
        return validation.check_real(name, value, **bounds)
    if not value.dtype.is_floating or value.shape.rank not in (None, 0):
        raise ValueError(f"`{name}` must be a real number or a float scalar tensor, got {value!r}.")
    if not tf.is_symbolic_tensor(value):
        validation.check_real(name, float(value), **bounds)
    return value


def _known(name, value):
    """A setting that shapes the computation: a number, or a tensor whose value is known now."""
    if tf.is_tensor(value):
        if tf.is_symbolic_tensor(value) or value.shape.rank != 0:
            raise ValueError(
                f"`{name}` is fixed when the optimizer is built: pass a number, got {value!r}.")
        return float(value)
    return value


def _statistics_spec(weight):
    return tf.TensorSpec(weight.shape, statistics_dtype(weight))


class _KerasOptimMathOptimizer(tff.learning.optimizers.Optimizer):
    r"""A TFF optimizer around one ``keras_optim.math`` update function.

    Subclasses name their statistics (``slot_names``) and call the math (``_direction``).
    With ``coordinate_clip`` :math:`= p > 0`, the step's global threshold :math:`\tau` over
    all gradients (``keras_optim.math.coordinate_clip.global_threshold``) clips the gradient
    that feeds the first moment, as in the Keras classes; the other statistics see the raw one.
    """

    def __init__(self, learning_rate, weight_decay, coordinate_clip, clip_threshold_scale, clip_mode):
        self._learning_rate = _check_hparam("learning_rate", learning_rate, low=0.0)
        self._weight_decay = _check_hparam("weight_decay", weight_decay, low=0.0)
        self._coordinate_clip = clip_math.check_fraction(
            "coordinate_clip", _known("coordinate_clip", coordinate_clip))
        self._clip_threshold_scale = clip_math.check_threshold_scale(
            "clip_threshold_scale", _known("clip_threshold_scale", clip_threshold_scale))
        self._clip_mode = clip_math.check_mode("clip_mode", clip_mode)

    def slot_names(self):
        raise NotImplementedError

    def _direction(self, gradient, slots, step, first_moment_gradient):
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
        statistics_specs = tf.nest.map_structure(_statistics_spec, weights)
        for name in names:
            tff.learning.optimizers.optimizer.check_weights_state_match(
                statistics_specs, state[name], name)
        threshold = None
        present = [g for g in tf.nest.flatten(gradients) if g is not None]
        if self._coordinate_clip > 0 and present:
            # Keras computes it before counting the step: its fast mode sees iterations = t - 1.
            threshold = clip_math.global_threshold(
                present, self._coordinate_clip, self._clip_threshold_scale, self._clip_mode,
                step=state[STEP_KEY])
        step = state[STEP_KEY] + 1
        lr = state[LEARNING_RATE_KEY]
        weight_decay = state[WEIGHT_DECAY_KEY]

        def update_leaf(weight, gradient, *slots):
            if gradient is None:  # as Keras: a variable without gradient is left alone
                return (weight,) + slots
            dtype = dtype_name(statistics_dtype(weight))
            # Decoupled weight decay first, in the variable's dtype, as tf.keras applies it.
            weight = weight - weight * tf.cast(weight_decay, weight.dtype) * tf.cast(lr, weight.dtype)
            gradient = tf.cast(gradient, dtype)
            first_moment_gradient = (
                None if threshold is None else clip_math.clip_by_threshold(gradient, threshold))
            direction, new_slots = self._direction(
                gradient,
                {name: tf.cast(slot, dtype) for name, slot in zip(names, slots)},
                tf.cast(step, dtype),
                first_moment_gradient,
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
    def __init__(self, learning_rate, weight_decay, settings, **clipping):
        super().__init__(learning_rate, weight_decay, **clipping)
        self._settings = adabelief_math.check_settings(**{k: _known(k, v) for k, v in settings.items()})

    def slot_names(self):
        return adabelief_math.AMSGRAD_SLOTS if self._settings["amsgrad"] else adabelief_math.SLOTS

    def _direction(self, gradient, slots, step, first_moment_gradient):
        return adabelief_math.adabelief_update(
            gradient, slots, step, first_moment_gradient=first_moment_gradient, **self._settings)


class _DiffGrad(_KerasOptimMathOptimizer):
    def __init__(self, learning_rate, weight_decay, settings, **clipping):
        super().__init__(learning_rate, weight_decay, **clipping)
        self._settings = diffgrad_math.check_settings(**{k: _known(k, v) for k, v in settings.items()})

    def slot_names(self):
        return diffgrad_math.SLOTS

    def _direction(self, gradient, slots, step, first_moment_gradient):
        return diffgrad_math.diffgrad_update(
            gradient, slots, step, first_moment_gradient=first_moment_gradient, **self._settings)


# Defaults and checks of the algorithms' settings are declared once, in keras_optim.math, for
# these builders and the Keras classes alike.
_ADABELIEF, _DIFFGRAD, _CLIP = adabelief_math.DEFAULTS, diffgrad_math.DEFAULTS, clip_math.CLIP_DEFAULTS


def build_adabelief(learning_rate=adabelief_math.LEARNING_RATE, beta_1=_ADABELIEF["beta_1"],
                    beta_2=_ADABELIEF["beta_2"], epsilon=_ADABELIEF["epsilon"],
                    amsgrad=_ADABELIEF["amsgrad"], rectify=_ADABELIEF["rectify"],
                    degenerated_to_sgd=_ADABELIEF["degenerated_to_sgd"], weight_decay=0.0,
                    coordinate_clip=_CLIP["coordinate_clip"],
                    clip_threshold_scale=_CLIP["clip_threshold_scale"], clip_mode=_CLIP["clip_mode"]):
    r"""AdaBelief (Zhuang et al., NeurIPS 2020, arXiv 2010.07468) as a TFF optimizer.

    Same arguments and defaults as ``keras_optim.AdaBelief``; the equations are in
    ``keras_optim.math.adabelief``:

    .. math::

        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        s_t = \beta_2 s_{t-1} + (1-\beta_2)(g_t - m_t)^2 + \epsilon, \quad
        w \leftarrow w - \eta \, \frac{m_t / (1-\beta_1^t)}{\sqrt{s_t / (1-\beta_2^t)} + \epsilon}

    (with RAdam's rectification when ``rectify``).

    Args:
      learning_rate: :math:`\eta`, >= 0; a number or a float scalar tensor (a hyperparameter in
        the state). Defaults to 1e-3.
      beta_1: EMA factor of the gradient, in [0, 1). Defaults to 0.9.
      beta_2: EMA factor of the squared residual, in [0, 1). Defaults to 0.999.
      epsilon: >= 0, added to the state and to the denominator. Defaults to 1e-16.
      amsgrad: divide by the running maximum of :math:`s_t`. Defaults to False.
      rectify: RAdam's rectification (SGD with momentum while :math:`\rho_t < 5`). Defaults to
        True.
      degenerated_to_sgd: with ``rectify``, take SGD-with-momentum steps while
        :math:`\rho_t < 5`; if False, take no step then. Defaults to True.
      weight_decay: :math:`\lambda`, >= 0, decoupled as Keras applies it (a hyperparameter in the
        state, like the learning rate). Defaults to 0.
      coordinate_clip: in [0, 1], Pan & Li's coordinate-wise clipping of the gradient that feeds
        :math:`m_t`, as ``keras_optim.AdaBelief(coordinate_clip=...)``; 0 disables it.
      clip_threshold_scale: > 0, multiplies the clipping threshold. Defaults to 1.
      clip_mode: ``"exact"`` or ``"fast"`` (sampled threshold). Defaults to ``"exact"``.
    """
    settings = dict(beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, amsgrad=amsgrad, rectify=rectify,
                    degenerated_to_sgd=degenerated_to_sgd)
    return _AdaBelief(learning_rate, weight_decay, settings, coordinate_clip=coordinate_clip,
                      clip_threshold_scale=clip_threshold_scale, clip_mode=clip_mode)


def build_diffgrad(learning_rate=diffgrad_math.LEARNING_RATE, beta_1=_DIFFGRAD["beta_1"],
                   beta_2=_DIFFGRAD["beta_2"], epsilon=_DIFFGRAD["epsilon"], weight_decay=0.0,
                   coordinate_clip=_CLIP["coordinate_clip"],
                   clip_threshold_scale=_CLIP["clip_threshold_scale"], clip_mode=_CLIP["clip_mode"]):
    r"""diffGrad (Dubey et al., IEEE TNNLS 2019, arXiv 1909.11015) as a TFF optimizer.

    Same arguments and defaults as ``keras_optim.DiffGrad``; the equations are in
    ``keras_optim.math.diffgrad``:

    .. math::

        \xi_t = \operatorname{sigmoid}(|g_{t-1} - g_t|), \quad
        w \leftarrow w - \eta \, \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}
        \frac{\xi_t m_t}{\sqrt{v_t} + \epsilon}

    Args:
      learning_rate: :math:`\eta`, >= 0; a number or a float scalar tensor (a hyperparameter in
        the state). Defaults to 1e-3.
      beta_1: EMA factor of the gradient, in [0, 1). Defaults to 0.9.
      beta_2: EMA factor of the squared gradient, in [0, 1). Defaults to 0.999.
      epsilon: >= 0, added to the denominator. Defaults to 1e-8.
      weight_decay: :math:`\lambda`, >= 0, decoupled as Keras applies it (a hyperparameter in the
        state, like the learning rate). Defaults to 0.
      coordinate_clip: in [0, 1], Pan & Li's coordinate-wise clipping of the gradient that feeds
        :math:`m_t`, as ``keras_optim.DiffGrad(coordinate_clip=...)``; 0 disables it.
      clip_threshold_scale: > 0, multiplies the clipping threshold. Defaults to 1.
      clip_mode: ``"exact"`` or ``"fast"`` (sampled threshold). Defaults to ``"exact"``.
    """
    settings = dict(beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
    return _DiffGrad(learning_rate, weight_decay, settings, coordinate_clip=coordinate_clip,
                     clip_threshold_scale=clip_threshold_scale, clip_mode=clip_mode)


class _CoordinateClipping(tff.learning.optimizers.Optimizer):
    """The wrapper's state is the wrapped optimizer's with its learning rate lifted to the top,
    ``{learning_rate, step, inner}``, where TFF's ``schedule_learning_rate`` and
    ``build_weighted_fed_avg_with_optimizer_schedule`` read and write it; ``step`` moves the
    fast mode's sample."""

    def __init__(self, optimizer, fraction, threshold_scale, mode):
        if not isinstance(optimizer, tff.learning.optimizers.Optimizer):
            raise TypeError(f"`optimizer` must be a tff.learning.optimizers.Optimizer, got {optimizer!r}")
        self._inner = optimizer
        self._fraction = clip_math.check_fraction("fraction", _known("fraction", fraction))
        self._threshold_scale = clip_math.check_threshold_scale(
            "threshold_scale", _known("threshold_scale", threshold_scale))
        self._mode = clip_math.check_mode("mode", mode)

    def _wrap(self, inner_state, step):
        state = collections.OrderedDict()
        if isinstance(inner_state, collections.abc.Mapping) and LEARNING_RATE_KEY in inner_state:
            state[LEARNING_RATE_KEY] = inner_state[LEARNING_RATE_KEY]
            inner_state = collections.OrderedDict(
                (k, v) for k, v in inner_state.items() if k != LEARNING_RATE_KEY)
        state[STEP_KEY] = step
        state["inner"] = inner_state
        return state

    @staticmethod
    def _inner_state(state):
        if LEARNING_RATE_KEY not in state:
            return state["inner"]
        return collections.OrderedDict([(LEARNING_RATE_KEY, state[LEARNING_RATE_KEY])] + list(state["inner"].items()))

    def initialize(self, specs):
        return self._wrap(self._inner.initialize(specs), 0)

    def next(self, state, weights, gradients):
        gradients = tff.learning.optimizers.handle_indexed_slices_gradients(gradients)
        flat = tf.nest.flatten(gradients)
        present = [i for i, g in enumerate(flat) if g is not None]
        if present:
            clipped, _ = clip_math.clip_coordinates(
                [flat[i] for i in present], self._fraction, self._threshold_scale, self._mode,
                step=state[STEP_KEY])
            for i, g in zip(present, clipped):
                flat[i] = g
        inner_state, weights = self._inner.next(
            self._inner_state(state), weights, tf.nest.pack_sequence_as(gradients, flat))
        return self._wrap(inner_state, state[STEP_KEY] + 1), weights

    def get_hparams(self, state):
        return self._inner.get_hparams(self._inner_state(state))

    def set_hparams(self, state, hparams):
        return self._wrap(self._inner.set_hparams(self._inner_state(state), hparams), state[STEP_KEY])


def build_coordinate_clipping(optimizer, fraction, threshold_scale=_CLIP["clip_threshold_scale"],
                              mode=_CLIP["clip_mode"]):
    r"""Wraps any TFF optimizer with Pan & Li's coordinate-wise clipping (OPT 2022,
    arXiv 2306.00204), as ``keras_optim.CoordinateClipping`` wraps a Keras optimizer.

    Each step, one threshold over all coordinates of all gradients,
    :math:`\tau = c\,|g|_{(\lfloor N p \rfloor)}` (magnitudes in descending order), and the
    wrapped optimizer gets :math:`\operatorname{sign}(g_i)\min(|g_i|, \tau)` (all of its
    statistics see the clipped gradient). ``mode="fast"`` takes the order statistic of a fixed
    stratified sample (``keras_optim.math.coordinate_clip.sampled_threshold``).

    Args:
      optimizer: the ``tff.learning.optimizers.Optimizer`` to wrap, e.g.
        ``tff.learning.optimizers.build_sgdm(0.1)``.
      fraction: :math:`p`, in [0, 1], the fraction of coordinates clipped each step.
      threshold_scale: :math:`c`, > 0, multiplies the threshold. Defaults to 1.
      mode: ``"exact"`` or ``"fast"``. Defaults to ``"exact"``.
    """
    return _CoordinateClipping(optimizer, fraction, threshold_scale, mode)


__all__ = ["build_adabelief", "build_coordinate_clipping", "build_diffgrad"]
