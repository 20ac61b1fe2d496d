"""Which Keras is installed, and the few places where Keras 3 and tf.keras 2.14 differ.

keras_optim runs on Keras 3 (any backend that ``keras.ops`` covers) and on the tf.keras 2.14
that TensorFlow Federated 0.87 needs. Everything that differs between the two lives here, so
the math (``keras_optim.math``) is written once and each optimizer class is a thin adapter.
"""
import types

import keras  # noqa: F401  (Keras 3, or tf.keras 2.x where keras is 2.x)

from keras_optim import validation

KERAS3 = int(keras.__version__.split(".")[0]) >= 3
"""True on Keras 3 (any backend), False on tf.keras 2.x (TensorFlow 2.14, as TFF 0.87 needs)."""

if KERAS3:
    from keras import ops

    OptimizerBase = keras.optimizers.Optimizer
    register_serializable = keras.saving.register_keras_serializable
else:  # tf.keras 2.x: the 2.11+ optimizer API (update_step(gradient, variable), jit_compile).
    import tensorflow as tf

    def _multiply(x, y):
        # As keras.ops.multiply: an IndexedSlices times a scalar stays sparse (SGD's update).
        if isinstance(x, tf.IndexedSlices):
            return tf.IndexedSlices(x.values * y, x.indices, x.dense_shape)
        return tf.multiply(x, y)

    # The handful of array functions the math needs, under keras.ops' names.
    ops = types.SimpleNamespace(
        abs=tf.abs,
        cast=tf.cast,
        convert_to_tensor=tf.convert_to_tensor,
        exp=tf.exp,
        expm1=tf.math.expm1,
        log1p=tf.math.log1p,
        maximum=tf.maximum,
        multiply=_multiply,
        sqrt=tf.sqrt,
        square=tf.square,
        where=tf.where,
        # Coordinate clipping's global threshold (keras_optim.math.coordinate_clip).
        arange=lambda start, stop=None, step=1, dtype=None: tf.range(start, stop, step, dtype=dtype),
        concatenate=lambda xs, axis=0: tf.concat(xs, axis),
        mod=tf.math.floormod,
        reshape=tf.reshape,
        matmul=tf.linalg.matmul,
        ones=lambda shape, dtype=None: tf.ones(shape, dtype=dtype),
        sign=tf.sign,
        sort=tf.sort,
        minimum=tf.minimum,
        take=lambda x, indices, axis=None: (
            tf.gather(tf.reshape(x, [-1]), indices) if axis is None else tf.gather(x, indices, axis=axis)
        ),
        cond=lambda pred, true_fn, false_fn: tf.cond(pred, true_fn, false_fn),
        equal=tf.equal,
        not_equal=tf.not_equal,
        logical_and=tf.logical_and,
        logical_not=tf.logical_not,
        logical_or=tf.logical_or,
        max=lambda x, axis=None, keepdims=False: tf.reduce_max(x, axis, keepdims),
        min=lambda x, axis=None, keepdims=False: tf.reduce_min(x, axis, keepdims),
        sum=lambda x, axis=None, keepdims=False: tf.reduce_sum(x, axis, keepdims),
        while_loop=lambda cond, body, loop_vars, maximum_iterations=None: tf.while_loop(
            cond, body, loop_vars, maximum_iterations=maximum_iterations
        ),
    )
    OptimizerBase = tf.keras.optimizers.Optimizer
    register_serializable = tf.keras.utils.register_keras_serializable

_HALF_DTYPES = ("float16", "bfloat16")


def optimizer_name(name, prefix):
    """The name of a new optimizer: ``name`` when given; otherwise Keras 3 numbers instances as
    it numbers its own (``adam``, ``adam_1``, ... through the counter of
    ``keras.backend.get_uid``, which ``clear_session`` resets), and tf.keras 2.14 gives every
    instance the same name, as its own optimizers do."""
    if name is not None:
        return name
    if not KERAS3:
        return prefix
    uid = keras.backend.get_uid(prefix)
    return prefix if uid == 1 else f"{prefix}_{uid - 1}"


def jax_on_cpu():
    """Whether Keras 3 runs on JAX with XLA's CPU backend."""
    if not KERAS3 or keras.backend.backend() != "jax":
        return False
    import jax

    return jax.default_backend() == "cpu"


def dtype_name(dtype):
    """``"float32"`` for any backend's float32 dtype (torch's prints as ``torch.float32``)."""
    if KERAS3:
        return keras.backend.standardize_dtype(dtype)
    return getattr(dtype, "name", None) or str(dtype)


def statistics_dtype(variable):
    """Optimizer statistics of half-precision variables are kept in float32."""
    name = dtype_name(variable.dtype)
    return "float32" if name in _HALF_DTYPES else name


def is_sparse(gradient):
    """``tf.IndexedSlices`` (TensorFlow's gradient of ``Embedding``) or a JAX ``BCOO`` array."""
    return type(gradient).__name__ in ("IndexedSlices", "BCOO")


def densify(gradient):
    """Sparse gradients become dense tensors: ``tf.IndexedSlices`` (TensorFlow's gradient of
    ``Embedding``), and on Keras 3 the backend's sparse arrays (``jax.experimental.sparse``
    BCOO on JAX, ``tf.SparseTensor``).

    The result is the dense update, as Keras' own Adam gives: rows that were not looked up
    receive a zero gradient, and their moments still decay.
    """
    if type(gradient).__name__ == "IndexedSlices":
        # Only TensorFlow makes IndexedSlices, so this import finds it loaded already.
        import tensorflow as tf

        return tf.convert_to_tensor(gradient)
    if KERAS3:
        return ops.convert_to_tensor(gradient, sparse=False)
    return gradient


def with_variable_shape(gradient, variable):
    """``gradient`` with its ``variable``'s static shape where TensorFlow's shape inference lost
    dimensions on the way (a ``Dense`` layer applied to batches padded to a per-batch length
    gives its kernel's gradient the static shape ``(None, 32)``); unchanged otherwise, and
    unchanged if ``None`` or sparse. A gradient's size is its variable's: coordinate clipping
    fixes its threshold's rank from these sizes when the step is traced."""
    if gradient is None or is_sparse(gradient):
        return gradient
    try:
        static = None not in tuple(gradient.shape)
    except ValueError:  # a TensorFlow tensor of unknown rank
        static = False
    return gradient if static else ops.reshape(gradient, tuple(variable.shape))


class _VariableSlots:
    """The slots interface of ``keras_optim.math.slots`` over one variable's statistics:
    writes go in place through the optimizer's ``assign_add`` / ``assign``."""

    def __init__(self, optimizer, variables):
        self._optimizer = optimizer
        self._variables = variables
        self._after_update = []

    def __getitem__(self, name):
        return self._variables[name]

    def add(self, name, delta):
        self._optimizer._write(self._variables[name], delta, add=True)

    def set(self, name, value):
        self._optimizer._write(self._variables[name], value, add=False)

    def set_after_update(self, name, value):
        self._after_update.append((name, value))

    def write_after_update(self, variable):
        """The ``set_after_update`` writes, once ``variable`` holds its new value."""
        for name, value in self._after_update:
            self._optimizer._write(self._variables[name], _ordered_after(value, variable), add=False)
        self._after_update = []


def _ordered_after(value, variable):
    """``value`` (bit for bit, up to the sign of a zero), made to depend on the updated
    ``variable``. XLA orders buffer writes by data dependencies only: without one, it copies the
    slot's old value (a full extra pass) so that the variable's update can still read it after
    the slot is overwritten. The dependency is one element of the new variable, added as -0.0
    (+0.0 if it is NaN: a select XLA cannot fold away)."""
    if 0 in tuple(variable.shape):
        return value
    first = ops.reshape(variable, (-1,))[0]
    return value + ops.cast(ops.where(ops.not_equal(first, first), 0.0, -0.0), value.dtype)


class SlotOptimizer(OptimizerBase):
    """Base of every keras_optim optimizer: per-variable statistics ("slots") and one update.

    A subclass names its slots in ``slot_names`` and, in ``_step``, calls its step function
    from ``keras_optim.math`` (the only place its math is written), which updates the slots
    and returns the direction:

        variable <- variable - learning_rate * direction

    Gradient clipping, decoupled weight decay, EMA, loss scaling, gradient accumulation and
    distribution stay with the Keras base class, as for Keras' own optimizers.
    """

    # The prefix of the names Keras gives instances created without one (``optimizer_name``).
    default_name = None

    def __init__(self, learning_rate, name, **kwargs):
        name = optimizer_name(name, self.default_name)
        # The base arguments are checked here, once, so every subclass raises the same errors.
        validation.check_learning_rate(learning_rate)
        validation.check_optional_nonnegative("weight_decay", kwargs.get("weight_decay"))
        if KERAS3:
            super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        else:
            # tf.keras 2.14's base defaults to weight_decay=0, a no-op decay of every variable
            # each step; its own optimizers pass None.
            kwargs.setdefault("weight_decay", None)
            super().__init__(name=name, **kwargs)
            self._learning_rate = self._build_learning_rate(learning_rate)

    def slot_names(self):
        raise NotImplementedError

    def _step(self, gradient, slots, step):
        """Updates ``slots`` (see ``keras_optim.math.slots``) and returns the direction."""
        raise NotImplementedError

    def _delta(self, gradient, slots, step, learning_rate):
        """How far the variable moves down this step: ``learning_rate * direction``. SGD, whose
        momentum holds the learning rate as Keras' does, overrides it."""
        return learning_rate * self._step(gradient, slots, step)

    def get_config(self):
        config = super().get_config()
        if not KERAS3:  # tf.keras 2 leaves the learning rate to each subclass.
            config["learning_rate"] = self._serialize_hyperparameter(self._learning_rate)
        return config

    def build(self, var_list):
        if getattr(self, "built", False) or getattr(self, "_built", False):
            return
        super().build(var_list)
        if not KERAS3:
            self._built = True
        self._slots = [
            {name: self._add_slot(variable, name) for name in self.slot_names()}
            for variable in var_list
        ]

    def _add_slot(self, variable, name):
        dtype = statistics_dtype(variable)
        same_dtype = dtype == dtype_name(variable.dtype)
        if KERAS3:
            if same_dtype:
                return self.add_variable_from_reference(variable, name)
            # The variable's layout, as `add_variable_from_reference` gives it: under a
            # distribution (JAX's `ModelParallel`) a slot is sharded as its variable.
            path = getattr(variable, "path", variable.name).replace("/", "_").replace(":", "_")
            return self.add_variable(shape=variable.shape, dtype=dtype, name=f"{path}_{name}",
                                     layout=getattr(variable, "_layout", None))
        if same_dtype:
            return self.add_variable_from_reference(variable, name)
        return self.add_variable(
            shape=variable.shape, dtype=dtype, name=f"{name}/{variable._shared_name}"
        )

    def _variable_index(self, variable):
        if KERAS3:
            return self._get_variable_index(variable)
        return self._index_dict[self._var_key(variable)]

    def update_step(self, gradient, variable, learning_rate=None):
        if learning_rate is None:  # tf.keras 2 passes no learning rate.
            learning_rate = self.learning_rate
        dtype = statistics_dtype(variable)
        same_dtype = dtype == dtype_name(variable.dtype)
        if not (same_dtype and is_sparse(gradient) and self._updates_sparse_rows()):
            gradient = densify(gradient)
        gradient = ops.cast(gradient, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        slots = _VariableSlots(self, self._slots[self._variable_index(variable)])
        delta = self._delta(gradient, slots, step, ops.cast(learning_rate, dtype))
        if same_dtype:
            self._subtract(variable, delta)
        else:  # half precision: subtract in float32, round once
            self._write(variable, ops.cast(ops.cast(variable, dtype) - delta, variable.dtype), add=False)
        slots.write_after_update(variable)

    def _updates_sparse_rows(self):
        """Whether ``_delta`` keeps a sparse gradient sparse, so that only the gradient's rows
        of the variable are written (Keras' SGD without momentum). Otherwise a sparse gradient
        is made dense first, as Keras' Adam does."""
        return False

    def _subtract(self, variable, delta):
        if KERAS3:  # a sparse delta becomes a scatter (TensorFlow) or a sparse update (JAX)
            self.assign_sub(variable, delta)
        elif type(delta).__name__ == "IndexedSlices":
            variable.scatter_sub(delta)
        else:
            variable.assign_sub(delta)

    def _write(self, variable, value, add):
        # Keras 3 routes writes through Optimizer.assign* (sparse, XLA, other backends).
        if KERAS3:
            (self.assign_add if add else self.assign)(variable, value)
        else:
            (variable.assign_add if add else variable.assign)(value)
