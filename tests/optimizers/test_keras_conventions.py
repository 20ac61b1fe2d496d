"""What Keras does for its own optimizers, held against keras_optim's, on Keras 3 and tf.keras
2.14: instance names, argument errors in Keras' words, SGD's sparse (row) updates, and the
CoordinateClipping wrapper inside Keras' pipeline (``overwrite_with_gradient`` variables,
gradient accumulation), checked against Keras' own classes and the NumPy ports."""
import numpy as np
import pytest
import tensorflow as tf

import keras_optim
from keras_optim.backend import KERAS3, keras
from tests.optimizers.test_coordinate_clip import CASES, PORTS
from tests.optimizers.training import check_accumulated_updates

CLASSES = {
    "AdaBelief": ("adabelief", lambda **kw: keras_optim.AdaBelief(**kw)),
    "DiffGrad": ("diffgrad", lambda **kw: keras_optim.DiffGrad(**kw)),
    "Adam": ("adam", lambda **kw: keras_optim.Adam(**kw)),
    "SGD": ("sgd" if KERAS3 else "SGD", lambda **kw: keras_optim.SGD(**kw)),
    "CoordinateClipping": (
        "coordinate_clipping",
        lambda **kw: keras_optim.CoordinateClipping(keras.optimizers.SGD(), 0.25, **kw),
    ),
}


# --- names -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CLASSES))
def test_instances_are_named_as_keras_names_its_own(name):
    prefix, make = CLASSES[name]
    keras.backend.clear_session()
    first, second = make(), make()
    if KERAS3:  # keras.optimizers.Adam(): "adam", then "adam_1"
        assert (first.name, second.name) == (prefix, f"{prefix}_1")
    else:  # tf.keras 2.14: every Adam() is "Adam"
        assert keras.optimizers.Adam().name == keras.optimizers.Adam().name == "Adam"
        assert first.name == second.name == prefix
    assert make(name="mine").name == "mine"
    for optimizer in (second, make(name="mine")):
        restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
        assert restored.name == optimizer.name


# --- errors ----------------------------------------------------------------------------------

KERAS_CHECKED = [("SGD", dict(momentum=-1.0)), ("SGD", dict(momentum=2.0))]
if KERAS3:  # tf.keras 2.14 has no check of these
    KERAS_CHECKED += [
        ("SGD", dict(clipnorm=1.0, clipvalue=1.0)),
        ("Adam", dict(clipnorm=1.0, global_clipnorm=1.0)),
        ("SGD", dict(momentum="0.5")),
        ("Adam", dict(learning_rate="fast")),
        ("Adam", dict(learning_rate=None)),
        ("Adam", dict(gradient_accumulation_steps=1)),
        ("Adam", dict(use_ema=True, ema_momentum=1.5)),
    ]


@pytest.mark.parametrize("name,arguments", KERAS_CHECKED, ids=repr)
def test_errors_read_like_keras_own(name, arguments):
    with pytest.raises(Exception) as theirs:
        getattr(keras.optimizers, name)(**arguments)
    with pytest.raises(Exception) as ours:
        getattr(keras_optim, name)(**arguments)
    assert ours.type is theirs.type
    assert str(ours.value).startswith(str(theirs.value))


# --- SGD and sparse gradients ----------------------------------------------------------------

def _embedding_gradient(dtype=tf.float32):
    # Rows 0, 2 (twice, summed as Keras sums them) and 4 of a 6 x 3 table.
    values = tf.constant(np.arange(12).reshape(4, 3) / 8.0 - 0.7, dtype)
    return tf.IndexedSlices(values, tf.constant([0, 2, 4, 2]), tf.constant([6, 3]))


@pytest.mark.parametrize(
    "arguments", [dict(), dict(momentum=0.5), dict(momentum=0.5, nesterov=True)], ids=repr
)
def test_sgd_on_sparse_gradients_equals_keras_sgd_bit_for_bit(arguments):
    start = np.linspace(-1.0, 1.0, 18).reshape(6, 3).astype(np.float32)
    variables = [tf.Variable(start), tf.Variable(start)]
    optimizers = [keras.optimizers.SGD(0.25, **arguments), keras_optim.SGD(0.25, **arguments)]
    for _ in range(3):
        for optimizer, variable in zip(optimizers, variables):
            optimizer.apply_gradients([(_embedding_gradient(), variable)])
        if not KERAS3 and arguments.get("nesterov"):
            # tf.keras 2.14's sparse Nesterov adds its two terms one at a time, an ulp away
            # from its own dense update, which keras_optim gives.
            np.testing.assert_allclose(variables[1].numpy(), variables[0].numpy(), rtol=1e-6)
        else:
            np.testing.assert_array_equal(variables[1].numpy(), variables[0].numpy())
    assert not np.array_equal(variables[1].numpy()[0], start[0])  # looked-up rows moved
    np.testing.assert_array_equal(variables[1].numpy()[[1, 3, 5]], start[[1, 3, 5]])


def _writes_to(variable, optimizer, gradient):
    """The types of the graph operations that take the variable's handle in one update."""
    step = tf.function(lambda: optimizer.apply_gradients([(gradient, variable)]))
    graph = step.get_concrete_function().graph
    handle = next(inner for outer, inner in graph.captures if outer is variable.handle)
    return {op.type for op in graph.get_operations() if any(t is handle for t in op.inputs)}


def test_sgd_without_momentum_writes_only_the_rows_of_a_sparse_gradient():
    """As Keras 3's SGD: the update of the variable is one scatter of the gradient's rows, no
    read or write of the whole variable (tf.keras 2.14's own SGD writes every row)."""
    writes = _writes_to(tf.Variable(tf.zeros((6, 3))), keras_optim.SGD(0.25), _embedding_gradient())
    assert writes == {"ResourceScatterSub"}
    if KERAS3:
        assert _writes_to(tf.Variable(tf.zeros((6, 3))), keras.optimizers.SGD(0.25),
                          _embedding_gradient()) == writes


@pytest.mark.parametrize("arguments", [dict(momentum=0.5), dict(coordinate_clip=0.25)], ids=repr)
def test_sgd_with_momentum_or_clipping_uses_the_dense_gradient(arguments):
    """Momentum decays every row (Keras' SGD densifies too); the clipping threshold counts the
    rows that were not looked up as zeros."""
    sparse, dense = tf.Variable(tf.ones((6, 3))), tf.Variable(tf.ones((6, 3)))
    for variable, gradient in ((sparse, _embedding_gradient()),
                               (dense, tf.convert_to_tensor(_embedding_gradient()))):
        optimizer = keras_optim.SGD(0.25, **arguments)
        for _ in range(2):
            optimizer.apply_gradients([(gradient, variable)])
    np.testing.assert_allclose(sparse.numpy(), dense.numpy(), rtol=1e-6)


# --- the CoordinateClipping wrapper inside Keras' pipeline ------------------------------------

@pytest.mark.skipif(not KERAS3, reason="overwrite_with_gradient is Keras 3's (float8 training)")
@pytest.mark.parametrize("wrapped", [True, False], ids=["wrapper", "coordinate_clip"])
def test_overwrite_with_gradient_variables_are_not_clipped(wrapped):
    scale = keras.Variable([1.0, 2.0, 3.0, 4.0])
    scale.overwrite_with_gradient = True  # as float8 layers mark their scales
    kernel = keras.Variable([1.0, 1.0, 1.0])
    if wrapped:
        optimizer = keras_optim.CoordinateClipping(keras.optimizers.SGD(0.5), 0.5)
    else:
        optimizer = keras_optim.SGD(0.5, coordinate_clip=0.5)
    kernel_gradient = np.array([4.0, -2.0, 1.0])
    optimizer.apply_gradients([(keras.ops.convert_to_tensor([100.0, 1.0, 1.0, 1.0]), scale),
                               (keras.ops.convert_to_tensor(kernel_gradient), kernel)])
    np.testing.assert_array_equal(scale.numpy(), [100.0, 1.0, 1.0, 1.0])
    # The threshold is the kernel's own: its 3 coordinates, index int(3 * 0.5) = 1.
    expected, _ = PORTS.SGDClipPort(lr=0.5, coordinate_clip=0.5).step([np.ones(3)], [kernel_gradient])
    np.testing.assert_allclose(kernel.numpy(), expected[0], rtol=1e-7)


@pytest.mark.skipif(not KERAS3, reason="gradient_accumulation_steps is Keras 3's")
def test_wrapper_clips_the_averaged_gradient_of_an_accumulated_update():
    """docs/coordinate_clipping.md: the threshold of the averaged gradient of each update, as
    the port on the averaged gradients (clipping each micro-batch differs)."""
    case = CASES["Adam-clip_half"]
    optimizer = keras_optim.CoordinateClipping(
        keras.optimizers.SGD(learning_rate=2**-5, momentum=0.875, gradient_accumulation_steps=2),
        0.5,
    )
    port = PORTS.SGDClipPort(lr=2**-5, momentum=0.875, coordinate_clip=0.5)
    check_accumulated_updates(optimizer, port, case)


def test_wrapper_hands_weight_decay_exclusions_and_weights_to_its_optimizer():
    make = lambda: keras_optim.CoordinateClipping(  # noqa: E731
        keras.optimizers.Adam(learning_rate=1.0, weight_decay=0.5), 0.25)
    kept, decayed = tf.Variable([2.0, 2.0]), tf.Variable([2.0, 2.0])
    optimizer = make()
    optimizer.exclude_from_weight_decay(var_list=[kept])
    zeros = tf.zeros((2,))
    optimizer.apply_gradients([(zeros, kept), (zeros, decayed)])
    np.testing.assert_array_equal(kept.numpy(), [2.0, 2.0])
    np.testing.assert_allclose(decayed.numpy(), [1.0, 1.0])

    copy = make()
    copy.build([kept, decayed])
    copy.set_weights([v.numpy() for v in optimizer.variables])
    for a, b in zip(optimizer.variables, copy.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(copy.inner_optimizer.iterations.numpy()) == 1  # the wrapped optimizer's too


def test_clip_gradients_is_keras_own_before_the_optimizer_is_built():
    """Keras' tests call ``_clip_gradients`` on a new optimizer (tf.keras 2.14's testClipNorm
    failed with coordinate_clip: the threshold variable did not exist yet)."""
    grad = [tf.constant([100.0, 100.0])]
    for make in (lambda: keras_optim.Adam(coordinate_clip=0.25, clipnorm=1),
                 lambda: keras_optim.CoordinateClipping(keras.optimizers.Adam(clipnorm=1), 0.25)):
        clipped = make()._clip_gradients(grad)
        np.testing.assert_allclose(np.asarray(clipped[0]), [2**0.5 / 2, 2**0.5 / 2], rtol=1e-6)
