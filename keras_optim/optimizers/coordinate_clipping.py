"""Coordinate-wise clipping (Pan & Li 2023, arXiv 2306.00204) in Keras: the ``coordinate_clip``
option of keras_optim's optimizers (``CoordinateClipMixin``) and a wrapper for any Keras
optimizer (``CoordinateClipping``). The math is ``keras_optim.math.coordinate_clip``.

Where the global threshold is computed. It needs every gradient of the step, after Keras'
own gradient processing (loss-scale unscaling, ``clipnorm`` / ``clipvalue`` /
``global_clipnorm``) and, under ``tf.distribute``, after the all-reduce, so that every replica
sees the threshold of the full summed gradient:

- Keras 3, TensorFlow backend: Keras clips per replica, then all-reduces inside
  ``_backend_update_step`` through ``_all_reduce_sum_gradients``; the threshold is taken right
  after that all-reduce. Other Keras 3 backends: at the start of ``_backend_update_step``.
- tf.keras 2.14: gradients are all-reduced first (``apply_gradients``), then
  ``_clip_gradients``; the threshold is taken after that, as ``_internal_apply_gradients``
  starts.

The optimizers keep it for the step in a scalar variable (replicated, written from the first
replica), from which each variable's update reads it: the per-variable updates see the raw
gradient and its clipped version, so that the second-moment statistics can keep the raw one.

The wrapper replaces the gradients instead, at the start of the wrapped optimizer's
``_clip_gradients`` (before its own ``clipnorm``); both hooks sit inside Keras' pipeline, after
it has set ``overwrite_with_gradient`` variables aside and averaged accumulated gradients.
"""
import functools
import threading

from keras_optim.backend import (
    KERAS3, OptimizerBase, densify, optimizer_name, register_serializable, with_variable_shape)
from keras_optim.math import coordinate_clip as clip_math

if KERAS3:
    import keras
else:
    import tensorflow as tf

# Keras 3's TensorFlow optimizer all-reduces inside `_backend_update_step` through this method.
_REDUCES_IN_UPDATE_STEP = KERAS3 and hasattr(OptimizerBase, "_all_reduce_sum_gradients")


def global_threshold(gradients, fraction, threshold_scale, mode, step):
    """``clip_math.global_threshold``, compiled by ``jax.jit`` on Keras 3's JAX backend: a step
    run eagerly there (a custom loop, ``run_eagerly=True``) would otherwise trace and compile
    the search's ``while_loop`` anew at every step; inside a compiled step it is inlined."""
    if KERAS3 and keras.backend.backend() == "jax":
        return _jax_global_threshold()(
            list(gradients), fraction, threshold_scale, mode, keras.ops.convert_to_tensor(step)
        )
    return clip_math.global_threshold(gradients, fraction, threshold_scale, mode, step=step)


@functools.cache
def _jax_global_threshold():
    import jax

    return jax.jit(clip_math.global_threshold, static_argnums=(1, 2, 3))


class CoordinateClipMixin:
    """Adds ``coordinate_clip``, ``clip_threshold_scale`` and ``clip_mode`` to a
    ``SlotOptimizer``; the optimizer feeds ``self._clipped(gradient)`` to whichever of its
    statistics should see the clipped gradient. Put it before ``SlotOptimizer`` in the bases.
    """

    def _init_coordinate_clip(self, coordinate_clip, clip_threshold_scale, clip_mode):
        self.coordinate_clip = clip_math.check_fraction("coordinate_clip", coordinate_clip)
        self.clip_threshold_scale = clip_math.check_threshold_scale(
            "clip_threshold_scale", clip_threshold_scale
        )
        self.clip_mode = clip_math.check_mode("clip_mode", clip_mode)
        self._coordinate_clip_threshold = None

    def build(self, var_list):
        super().build(var_list)
        if self.coordinate_clip > 0 and self._coordinate_clip_threshold is None:
            self._coordinate_clip_threshold = self._add_threshold_variable(
                clip_math.threshold_dtype(var_list)
            )

    def _add_threshold_variable(self, dtype):
        # Written in replica context (after the all-reduce, identical on every replica): only
        # the first replica's write is kept, and mirrored to the others.
        name = "coordinate_clip_threshold"
        if KERAS3:
            return self.add_variable(
                shape=(), initializer="zeros", dtype=dtype, aggregation="only_first_replica",
                name=name,
            )
        with tf.init_scope():
            variable = tf.Variable(
                tf.zeros((), dtype), trainable=False, name=name,
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
        self._variables.append(variable)
        return variable

    @property
    def coordinate_clip_threshold(self):
        """The threshold :math:`\\tau` of the last step (``None`` without clipping)."""
        return self._coordinate_clip_threshold

    def _record_threshold(self, grads_and_vars):
        if not self.coordinate_clip:
            return
        gradients = [with_variable_shape(densify(g), v) for g, v in grads_and_vars if g is not None]
        tau = global_threshold(
            gradients, self.coordinate_clip, self.clip_threshold_scale, self.clip_mode,
            self.iterations,
        )
        variable = self._coordinate_clip_threshold
        variable.assign(keras.ops.cast(tau, variable.dtype) if KERAS3 else tf.cast(tau, variable.dtype))

    def _clipped(self, gradient):
        """The gradient clipped at this step's global threshold (itself without clipping)."""
        if not self.coordinate_clip:
            return gradient
        return clip_math.clip_by_threshold(gradient, self._coordinate_clip_threshold)

    if _REDUCES_IN_UPDATE_STEP:

        def _all_reduce_sum_gradients(self, grads_and_vars):
            grads_and_vars = super()._all_reduce_sum_gradients(grads_and_vars)
            self._record_threshold(grads_and_vars)
            return grads_and_vars

    elif KERAS3:

        def _backend_update_step(self, grads, trainable_variables, learning_rate):
            self._record_threshold(zip(grads, trainable_variables))
            return super()._backend_update_step(grads, trainable_variables, learning_rate)

    else:

        def _internal_apply_gradients(self, grads_and_vars):
            # Not in `_clip_gradients`, which must stay a pure function of the gradients: it is
            # called on its own, before the optimizer is built (Keras' own tests do).
            grads_and_vars = list(grads_and_vars)
            self._record_threshold(grads_and_vars)
            return super()._internal_apply_gradients(grads_and_vars)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "coordinate_clip": self.coordinate_clip,
                "clip_threshold_scale": self.clip_threshold_scale,
                "clip_mode": self.clip_mode,
            }
        )
        return config


def _in_distributed_replica_context():
    import tensorflow as tf_

    return tf_.distribute.has_strategy() and tf_.distribute.in_cross_replica_context() is False


def _clip_first_in_gradient_clipping(optimizer, clip):
    """Makes ``optimizer`` run ``clip`` (a list of gradients to a list) at the start of its own
    gradient clipping, ``_clip_gradients``.

    That is where the optimizer options (``coordinate_clip=``) take their threshold too: inside
    Keras' own pipeline, which sets the ``overwrite_with_gradient`` variables (float8 scales)
    aside before, and calls it once per update with the loss scale divided out and, under
    ``gradient_accumulation_steps``, with the averaged gradient; tf.keras 2.14 has all-reduced
    the gradients by then. Keras 3 all-reduces later, in ``_backend_update_step``: under
    ``tf.distribute`` the gradients are summed here instead and that all-reduce is skipped
    (a thread-local flag: MirroredStrategy runs each replica in its own thread).
    """
    keras_clip_gradients = optimizer._clip_gradients
    if not _REDUCES_IN_UPDATE_STEP:

        def clip_gradients(grads):
            return keras_clip_gradients(clip(list(grads)))

        optimizer._clip_gradients = clip_gradients
        return

    summed = threading.local()
    keras_all_reduce = optimizer._all_reduce_sum_gradients

    def clip_gradients(grads):
        grads = list(grads)
        if keras.backend.backend() == "tensorflow" and _in_distributed_replica_context():
            import tensorflow as tf_

            present = [i for i, g in enumerate(grads) if g is not None]
            reduced = tf_.distribute.get_replica_context().all_reduce(
                tf_.distribute.ReduceOp.SUM, [grads[i] for i in present]
            )
            for i, g in zip(present, reduced):
                grads[i] = g
            summed.done = True
        return keras_clip_gradients(clip(grads))

    def all_reduce_unless_summed(grads_and_vars):
        if getattr(summed, "done", False):
            summed.done = False
            return list(grads_and_vars)
        return keras_all_reduce(grads_and_vars)

    optimizer._clip_gradients = clip_gradients
    optimizer._all_reduce_sum_gradients = all_reduce_unless_summed


@register_serializable(package="keras_optim")
class CoordinateClipping(OptimizerBase):
    """Wraps any Keras optimizer and clips the top coordinates of the gradient before it
    (Pan & Li 2023, arXiv 2306.00204; see ``keras_optim.math.coordinate_clip``).

        optimizer = keras_optim.CoordinateClipping(keras.optimizers.Lion(1e-4), fraction=0.1)

    Each step, one threshold over all coordinates of all gradients (all-reduced first under
    ``tf.distribute``): the magnitude at index ``floor(N * fraction)`` of the magnitudes in
    descending order, times ``threshold_scale``; every coordinate is cut to at most that
    magnitude, and the wrapped optimizer gets the clipped gradient in place of the raw one
    (all of its statistics see the clipped gradient; keras_optim's own optimizers, with their
    ``coordinate_clip`` argument, feed it to the first moment only). The wrapped optimizer's
    own ``clipnorm`` / ``clipvalue`` / weight decay then act on the clipped gradient.

    The clipping runs inside the wrapped optimizer's own gradient processing, where Keras
    clips (``_clip_gradients``): the gradients of ``overwrite_with_gradient`` variables (float8
    scales) pass untouched and count in no threshold, and with ``gradient_accumulation_steps``
    the averaged gradient of the update is clipped, not each micro-batch.

    Args:
      optimizer: a Keras optimizer instance (the wrapper owns it from now on).
      fraction: in [0, 1], the fraction of coordinates clipped; 0 passes gradients unchanged,
        1 zeroes them (as the authors' code).
      threshold_scale: > 0, multiplies the threshold.
      mode: ``"exact"`` (a selection over all coordinates) or ``"fast"`` (the same order
        statistic of a fixed-size stratified sample; see ``docs/coordinate_clipping.md``).
      name: defaults to ``"coordinate_clipping"``, numbered on Keras 3 as Keras numbers its
        optimizers (``coordinate_clipping_1``, ...).
      **kwargs: none is taken (``ValueError``): set the Keras base arguments (``weight_decay``,
        ``clipnorm``, ``use_ema``, ...) on the wrapped optimizer.
    """

    def __init__(self, optimizer, fraction, threshold_scale=1.0, mode="exact", name=None,
                 **kwargs):
        if not isinstance(optimizer, OptimizerBase):
            raise ValueError(
                "`optimizer` must be a Keras optimizer instance "
                f"({OptimizerBase.__module__}.{OptimizerBase.__name__}), got {optimizer!r}."
            )
        if kwargs:
            raise ValueError(
                f"CoordinateClipping does not take {sorted(kwargs)}: set them on the wrapped "
                "optimizer."
            )
        if getattr(optimizer, "coordinate_clip", 0):
            raise ValueError(
                "`optimizer` already clips coordinates (coordinate_clip="
                f"{optimizer.coordinate_clip}): use its coordinate_clip or this wrapper, not both."
            )
        name = optimizer_name(name, "coordinate_clipping")
        if KERAS3:
            super().__init__(learning_rate=0.0, name=name)
        else:
            super().__init__(name=name)
        self.inner_optimizer = optimizer
        self.fraction = clip_math.check_fraction("fraction", fraction)
        self.threshold_scale = clip_math.check_threshold_scale("threshold_scale", threshold_scale)
        self.mode = clip_math.check_mode("mode", mode)
        _clip_first_in_gradient_clipping(optimizer, self._clip)

    # --- the clipping, shared by both Keras ------------------------------------------------

    def _clip(self, grads):
        """Clips the non-None gradients of ``grads`` with one global threshold."""
        present = [i for i, g in enumerate(grads) if g is not None]
        clipped = [densify(grads[i]) for i in present]
        if self.fraction:
            tau = global_threshold(clipped, self.fraction, self.threshold_scale, self.mode,
                                   self.inner_optimizer.iterations)
            clipped = [clip_math.clip_by_threshold(g, tau) for g in clipped]
        out = list(grads)
        for i, g in zip(present, clipped):
            out[i] = g
        return out

    def _clip_gradients(self, grads):
        """The gradient processing of an update: coordinate clipping, then the wrapped
        optimizer's ``clipnorm`` / ``clipvalue`` / ``global_clipnorm``."""
        return self.inner_optimizer._clip_gradients(grads)

    # --- delegation to the wrapped optimizer ---------------------------------------------

    def build(self, var_list):
        self.inner_optimizer.build(var_list)
        if KERAS3:
            super().build(var_list)
        else:
            self._built = True

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        if hasattr(self, "inner_optimizer"):  # the base constructor sets it first
            self.inner_optimizer.learning_rate = learning_rate

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        self.inner_optimizer.exclude_from_weight_decay(var_list=var_list, var_names=var_names)

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    def set_weights(self, weights):
        """Sets ``variables`` (the wrapped optimizer's included) from ``weights``, in order."""
        if not (self.built if KERAS3 else getattr(self, "_built", False)):
            raise ValueError(
                "You are calling `set_weights()` on an optimizer that has not yet been built. "
                "Please call `optimizer.build(trainable_variables)` to create the optimizer "
                "weights before calling `set_weights()`."
            )
        variables = self.variables
        if len(weights) != len(variables):
            raise ValueError(
                f"`set_weights()` expects {len(variables)} weights (the wrapper's and its "
                f"optimizer's variables), got {len(weights)}."
            )
        for variable, weight in zip(variables, weights):
            if tuple(variable.shape) != tuple(weight.shape):
                raise ValueError(
                    f"Optimizer variable {variable.name} has shape {tuple(variable.shape)} "
                    f"not compatible with provided weight shape {tuple(weight.shape)}."
                )
            variable.assign(weight)

    def get_config(self):
        saving = keras.saving if KERAS3 else tf.keras.saving
        return {
            "name": self.name,
            "optimizer": saving.serialize_keras_object(self.inner_optimizer),
            "fraction": self.fraction,
            "threshold_scale": self.threshold_scale,
            "mode": self.mode,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        # tf.keras 2.14's optimizers.deserialize returns the class name of a built-in
        # optimizer's new-format config; the saving API returns the optimizer on both.
        saving = keras.saving if KERAS3 else tf.keras.saving
        inner = config.pop("optimizer")
        try:
            inner = saving.deserialize_keras_object(inner, custom_objects=custom_objects)
        except ValueError:
            if KERAS3:
                raise
            # Loading an h5 file, tf.keras 2.14 deserializes in its legacy mode, which finds its
            # built-in optimizers only through optimizers.deserialize.
            inner = tf.keras.optimizers.deserialize(
                inner, custom_objects=custom_objects, use_legacy_optimizer=False
            )
        return cls(inner, **config)

    if KERAS3:

        @property
        def variables(self):
            return self._variables + self.inner_optimizer.variables

        def scale_loss(self, loss):
            return self.inner_optimizer.scale_loss(loss)

        def apply(self, grads, trainable_variables=None):
            if trainable_variables is not None:
                trainable_variables = list(trainable_variables)
                if not self.built:
                    with keras.name_scope(self.name, caller=self):
                        self.build(trainable_variables)
                    self.built = True
            variables = trainable_variables or self.inner_optimizer._trainable_variables
            grads = [with_variable_shape(g, v) for g, v in zip(grads, variables)]
            # The wrapped optimizer clips in its `_clip_gradients` (see above).
            self.inner_optimizer.apply(grads, trainable_variables)

        # `stateless_apply` (the JAX trainer's path) is Keras' own: it maps `variables`, the
        # wrapped optimizer's included, to the given values and calls `apply` above.

    else:

        @property
        def variables(self):
            return self.inner_optimizer.variables

        def update_step(self, gradient, variable):
            raise NotImplementedError("CoordinateClipping delegates every update to its optimizer.")

        def apply_gradients(self, grads_and_vars, name=None, skip_gradients_aggregation=False,
                            **kwargs):
            # The wrapped optimizer all-reduces, then clips in its `_clip_gradients`.
            grads_and_vars = [(with_variable_shape(g, v), v) for g, v in grads_and_vars]
            return self.inner_optimizer.apply_gradients(
                grads_and_vars, name=name, skip_gradients_aggregation=skip_gradients_aggregation,
                **kwargs,
            )
