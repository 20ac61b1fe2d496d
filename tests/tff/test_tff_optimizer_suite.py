# Adapted from TensorFlow Federated 0.87.0,
# tensorflow_federated/python/learning/optimizers/adam_test.py and optimizer_test_utils.py
# (Copyright 2021 The TensorFlow Federated Authors, Apache License 2.0): the tests TFF holds its
# Adam to, parametrized over keras_optim's TFF optimizers; only the algorithm-specific numbers
# (the math reference, learning rates, hyperparameter names) are replaced.
"""TFF's optimizer suite (adam_test.py) over keras_optim's TFF optimizers, eagerly."""
import collections
import copy

import numpy as np
import pytest

tff = pytest.importorskip("tensorflow_federated")
import tensorflow as tf  # noqa: E402

from tests.optimizers.numpy_ports import NumpyAdaBelief, NumpyDiffGrad  # noqa: E402
from tests.tff import tff_suite_cases as cases  # noqa: E402
from tff_experiments import tff_optimizers  # noqa: E402

LR_KEY = tff.learning.optimizers.LEARNING_RATE_KEY
NAMES = sorted(cases.CASES)
PLAIN = ["adabelief", "diffgrad"]  # one per algorithm where the test is not about the algorithm


def build(name):
    return cases.CASES[name][0]()


def stepper(name, optimizer, state):
    """``optimizer.next`` and the state to start from. The clipping cases' step is traced once
    (``tf.function``, the state made tensors so that it is not traced again): their threshold
    search is slow eagerly; that a traced step equals the eager one is
    test_tff_integration_suite.py's check."""
    if "clip" not in name:
        return optimizer.next, state
    return tf.function(optimizer.next), tf.nest.map_structure(tf.convert_to_tensor, state)


def slot_state(state):
    """The statistics of the optimizer (inside the wrapper's state for the wrapper)."""
    inner = state["inner"] if "inner" in state else state
    return {k: v for k, v in inner.items() if k not in (LR_KEY, "weight_decay", "step")}


@pytest.mark.parametrize("name", NAMES)
def test_state_structure(name):
    state = build(name).initialize(cases.SCALAR_SPEC)
    if name.startswith("clipping"):  # the learning rate at the top, where TFF's schedules find it
        assert list(state) == [LR_KEY, "step", "inner"]
        assert list(state["inner"])[:2] == ["weight_decay", "step"]
    else:
        assert list(state)[:3] == [LR_KEY, "weight_decay", "step"]
    expected_slots = {"adabelief": ["m", "s"], "adabelief_amsgrad": ["m", "s", "s_max"],
                      "adabelief_no_rectify": ["m", "s"], "diffgrad": ["m", "v", "previous_gradient"],
                      "clipping_exact": ["m", "v", "previous_gradient"], "clipping_fast": ["m", "s"],
                      "adabelief_coordinate_clip_exact": ["m", "s"],
                      "diffgrad_coordinate_clip_fast": ["m", "v", "previous_gradient"]}[name]
    assert list(slot_state(state)) == expected_slots


@pytest.mark.parametrize("name", NAMES)
def test_math(name):
    """adam_test.py's test_math: four steps against the independent reference."""
    spec = cases.NESTED_SPEC
    optimizer = build(name)
    step, state = stepper(name, optimizer, optimizer.initialize(spec))
    weights = cases.ones(spec)
    expected = cases.reference_weights(name, spec, 4)
    for t in range(4):
        grads = cases.as_tensors(cases.gradient_values(spec, t), spec)
        state, weights = step(state, weights, grads)
        for got, want in zip(tf.nest.flatten(weights), expected[t]):
            np.testing.assert_allclose(got.numpy(), want, rtol=2e-5, atol=2e-5, err_msg=f"step {t + 1}")


@pytest.mark.parametrize("name", NAMES)
def test_half_precision_and_mixed_dtypes(name):
    """float16/bfloat16/float32/float64 weights in one structure: the statistics of half
    precision weights are float32, the others' their own dtype; the weights keep their dtype
    and follow the reference up to their rounding."""
    spec = cases.MIXED_SPEC
    optimizer = build(name)
    step, state = stepper(name, optimizer, optimizer.initialize(spec))
    weights = cases.ones(spec)
    expected = cases.reference_weights(name, spec, 3)
    for t in range(3):
        grads = cases.as_tensors(cases.gradient_values(spec, t), spec)
        state, weights = step(state, weights, grads)
    statistics_dtypes = [tf.float32, tf.float32, tf.float32, tf.float64]
    for slot in slot_state(state).values():
        assert [s.dtype for s in tf.nest.flatten(slot)] == statistics_dtypes
    for got, want, s in zip(tf.nest.flatten(weights), expected[-1], tf.nest.flatten(spec)):
        assert got.dtype == s.dtype
        tol = cases.tolerance(s.dtype)
        np.testing.assert_allclose(tf.cast(got, tf.float64).numpy(), want, rtol=tol, atol=tol,
                                   err_msg=s.dtype.name)


# Every spec for the plain algorithms; the clipping cases (slow eagerly) on the nested spec,
# whose leaves their global threshold spans.
EXECUTES_WITH = [(n, s) for n in NAMES for s in ("scalar", "struct", "nested") if "clip" not in n or s == "nested"]


@pytest.mark.parametrize("name,spec_name", EXECUTES_WITH, ids=[f"{n}-{s}" for n, s in EXECUTES_WITH])
def test_executes_with(name, spec_name):
    spec = cases.SPECS[spec_name]
    weights, gradients = cases.ones(spec), cases.ones(spec)
    optimizer = build(name)
    step, state = stepper(name, optimizer, optimizer.initialize(spec))
    for _ in range(10):
        state, weights = step(state, weights, gradients)
    for w in tf.nest.flatten(weights):
        assert np.all(np.isfinite(w.numpy()))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("structure", [[], {}, [([], []), {}]], ids=["empty_list", "empty_dict", "empty_nested"])
def test_behavior_on_empty_tree(name, structure):
    weights = gradients = structure
    optimizer = build(name)
    state = optimizer.initialize(weights)
    updated_state, updated_weights = optimizer.next(state, weights, gradients)
    state = copy.deepcopy(state)
    state["step"] += 1
    if name.startswith("clipping"):
        state["inner"]["step"] += 1
    assert updated_state == state
    assert updated_weights == weights


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("spec_name", ["scalar", "nested"])
def test_skips_none_gradients(name, spec_name):
    spec = cases.SPECS[spec_name]
    weights = cases.ones(spec)
    gradients = tf.nest.map_structure(lambda s: None, spec)
    optimizer = build(name)
    state = optimizer.initialize(spec)
    updated_state, updated_weights = optimizer.next(state, weights, gradients)
    state["step"] += 1
    if name.startswith("clipping"):
        state["inner"]["step"] += 1
    tf.nest.map_structure(np.testing.assert_array_equal, weights, updated_weights)
    tf.nest.map_structure(np.testing.assert_array_equal, state, updated_state)


@pytest.mark.parametrize("name", PLAIN + ["clipping_exact"])
def test_executes_with_indexed_slices(name):
    """TF's sparse gradients give the same step as their dense form."""
    gradients = tf.IndexedSlices(values=tf.constant([[1.0, -2.0], [0.5, 1.0]]),
                                 indices=tf.constant([0, 2]), dense_shape=tf.constant([4, 2]))
    optimizer = build(name)
    state = optimizer.initialize(tf.TensorSpec([4, 2]))
    _, sparse_result = optimizer.next(state, tf.ones([4, 2]), gradients)
    _, dense_result = optimizer.next(state, tf.ones([4, 2]), tf.convert_to_tensor(gradients))
    np.testing.assert_array_equal(sparse_result.numpy(), dense_result.numpy())
    assert not np.allclose(sparse_result.numpy()[0], 1.0)


# optimizer_test_utils.test_quadratic_problem with Adam's learning rate 0.5, 0.25 for AdaBelief
# with clipping of the first moment. The fast mode is left out: with 5 coordinates (fewer than
# its sample) it is the exact mode.
@pytest.mark.parametrize("name,learning_rate", [
    ("adabelief", 0.5), ("adabelief_amsgrad", 0.5), ("adabelief_no_rectify", 0.5), ("diffgrad", 0.5),
    ("clipping_exact", 0.5), ("adabelief_coordinate_clip_exact", 0.25),
])
def test_convergence(name, learning_rate):
    init_w, fn, grad_fn = _quadratic_problem()
    weights = init_w()
    assert fn(weights) > 5.0
    optimizer = build(name)
    state = optimizer.initialize(tf.TensorSpec(weights.shape, weights.dtype))
    state = optimizer.set_hparams(state, {LR_KEY: learning_rate})

    @tf.function  # the 100 steps as one graph (the clipping's search loop is slow eagerly)
    def run(state, weights):
        for _ in tf.range(100):
            state, weights = optimizer.next(state, weights, grad_fn(weights))
        return weights

    weights = run(tf.nest.map_structure(tf.convert_to_tensor, state), weights)
    assert fn(weights) < 0.005


def _quadratic_problem():
    """optimizer_test_utils.test_quadratic_problem (not in the TFF wheel): (1/2) w^T A w."""
    matrix = tf.constant(_TEST_MATRIX, tf.float32)

    def initial_w():
        return tf.constant(_INITIAL_W, tf.float32)

    def fn(w):
        return float(tf.matmul(tf.matmul(w, matrix, transpose_a=True), w)[0, 0] / 2)

    def grad_fn(w):
        return tf.matmul(matrix, w)

    return initial_w, fn, grad_fn


# Positive-definite, largest eigenvalue about 13.3, condition number about 260 (TFF's).
_TEST_MATRIX = [
    [3.05979016, -0.67965499, -2.51916374, -0.98797549, -1.23950244],
    [-0.67965499, 3.65246689, -0.47892836, -1.56662479, -0.27436542],
    [-2.51916374, -0.47892836, 7.12618873, 4.98172794, 3.10724048],
    [-0.98797549, -1.56662479, 4.98172794, 4.259855, 1.48831719],
    [-1.23950244, -0.27436542, 3.10724048, 1.48831719, 4.52992126],
]
_INITIAL_W = [[-0.60170661], [1.85227818], [-0.01349722], [-1.05771093], [0.82254491]]


def test_build_returns_tff_optimizers():
    for name in NAMES:
        assert isinstance(build(name), tff.learning.optimizers.Optimizer)


INVALID = [
    ("negative_lr", tff_optimizers.build_adabelief, dict(learning_rate=-1.0), "learning_rate"),
    ("negative_lr_tensor", tff_optimizers.build_diffgrad, dict(learning_rate=tf.constant(-1.0)), "learning_rate"),
    ("int_lr_tensor", tff_optimizers.build_diffgrad, dict(learning_rate=tf.constant(1)), "learning_rate"),
    ("negative_weight_decay", tff_optimizers.build_adabelief, dict(weight_decay=-0.1), "weight_decay"),
    ("negative_beta_1", tff_optimizers.build_adabelief, dict(beta_1=-0.9), "beta_1"),
    ("beta_1_greater_than_1", tff_optimizers.build_diffgrad, dict(beta_1=1.1), "beta_1"),
    ("negative_beta_2", tff_optimizers.build_diffgrad, dict(beta_2=-0.999), "beta_2"),
    ("beta_2_equal_to_1", tff_optimizers.build_adabelief, dict(beta_2=1.0), "beta_2"),
    ("beta_2_tensor_out_of_range", tff_optimizers.build_adabelief, dict(beta_2=tf.constant(1.5)), "beta_2"),
    ("negative_epsilon", tff_optimizers.build_adabelief, dict(epsilon=-1e-7), "epsilon"),
    ("coordinate_clip_above_1", tff_optimizers.build_diffgrad, dict(coordinate_clip=1.5), "coordinate_clip"),
    ("clip_mode", tff_optimizers.build_adabelief, dict(clip_mode="approx"), "clip_mode"),
]


@pytest.mark.parametrize("builder,kwargs,regex", [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_args_raises(builder, kwargs, regex):
    with pytest.raises(ValueError, match=regex):
        builder(**kwargs)


def test_invalid_wrapper_args_raise():
    inner = tff_optimizers.build_diffgrad()
    with pytest.raises(ValueError, match="fraction"):
        tff_optimizers.build_coordinate_clipping(inner, -0.1)
    with pytest.raises(ValueError, match="mode"):
        tff_optimizers.build_coordinate_clipping(inner, 0.1, mode="approx")


def test_symbolic_beta_is_rejected_with_a_clear_error():
    """The betas shape the traced computation: a symbolic one (unknown value) cannot."""

    @tf.function
    def build_with(beta):
        tff_optimizers.build_adabelief(beta_1=beta)

    with pytest.raises(ValueError, match="beta_1.*fixed when the optimizer is built"):
        build_with(tf.constant(0.9))


@pytest.mark.parametrize("name", PLAIN + ["clipping_fast"])
def test_weights_gradients_mismatch_raises(name):
    optimizer = build(name)
    state = optimizer.initialize(cases.SCALAR_SPEC)
    with pytest.raises(ValueError):
        optimizer.next(state, tf.zeros([1]), tf.zeros([2]))


@pytest.mark.parametrize("name", PLAIN + ["clipping_fast"])
def test_initialize_next_weights_mismatch_raises(name):
    optimizer = build(name)
    state = optimizer.initialize(cases.SCALAR_SPEC)
    with pytest.raises(ValueError):
        optimizer.next(state, tf.zeros([2]), tf.zeros([2]))
    float64_state = optimizer.initialize(tf.TensorSpec([1], tf.float64))
    with pytest.raises(ValueError):  # float64 statistics for float32 weights
        optimizer.next(float64_state, tf.zeros([1]), tf.zeros([1]))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("spec_name", ["scalar", "struct", "nested"])
def test_get_hparams_returns_expected_result(name, spec_name):
    optimizer = build(name)
    state = optimizer.initialize(cases.SPECS[spec_name])
    actual = optimizer.get_hparams(state)
    assert isinstance(actual, collections.OrderedDict)
    assert actual == collections.OrderedDict([(LR_KEY, 0.125), ("weight_decay", 0.0)])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("spec_name", ["scalar", "nested"])
def test_set_hparams_returns_expected_result(name, spec_name):
    optimizer = build(name)
    state = optimizer.initialize(cases.SPECS[spec_name])
    hparams = collections.OrderedDict([(LR_KEY, 0.5), ("weight_decay", 0.25)])
    expected_state = copy.deepcopy(state)
    expected_state[LR_KEY] = 0.5
    (expected_state["inner"] if name.startswith("clipping") else expected_state)["weight_decay"] = 0.25
    updated_state = optimizer.set_hparams(state, hparams)
    assert isinstance(updated_state, collections.OrderedDict)
    tf.nest.map_structure(np.testing.assert_array_equal, updated_state, expected_state)
    assert optimizer.get_hparams(updated_state) == hparams


@pytest.mark.parametrize("name", NAMES)
def test_set_get_hparams_is_no_op(name):
    optimizer = build(name)
    state = optimizer.initialize(cases.NESTED_SPEC)
    updated_state = optimizer.set_hparams(state, optimizer.get_hparams(state))
    tf.nest.map_structure(np.testing.assert_array_equal, state, updated_state)


def _schedule(round_num):
    return tf.where(round_num < 2, 0.125, 0.0625)


@pytest.mark.parametrize("name", NAMES)
def test_schedule_learning_rate(name):
    """TFF's schedule_learning_rate (which writes the state's top-level learning rate) drives
    the step: the reference's learning rate follows the schedule."""
    spec = cases.NESTED_SPEC
    optimizer = tff.learning.optimizers.schedule_learning_rate(build(name), _schedule)
    reference = cases.CASES[name][1]()
    step, state = stepper(name, optimizer, optimizer.initialize(spec))
    weights = cases.ones(spec)
    params = [np.ones(s.shape) for s in tf.nest.flatten(spec)]
    for t in range(4):
        reference.set_learning_rate(0.125 if t < 2 else 0.0625)
        grads = cases.gradient_values(spec, t)
        state, weights = step(state, weights, cases.as_tensors(grads, spec))
        params = reference.step(params, tf.nest.flatten(grads))
    for got, want in zip(tf.nest.flatten(weights), params):
        np.testing.assert_allclose(got.numpy(), want, rtol=2e-5, atol=2e-5)


def test_set_hparams_rejects_unknown_key():
    optimizer = tff_optimizers.build_adabelief()
    with pytest.raises(KeyError, match="beta_1"):
        optimizer.set_hparams(optimizer.initialize(cases.SCALAR_SPEC), {"beta_1": 0.5})


@pytest.mark.parametrize("builder,port", [
    (tff_optimizers.build_adabelief, lambda: NumpyAdaBelief(0.125, weight_decay=0.5)),
    (tff_optimizers.build_diffgrad, None),
])
def test_lr_with_different_weight_dtypes(builder, port):
    """adam_test.py's test of the same name: tensor hyperparameters (float32 learning rate,
    float64 weight decay) on float32/float64/bfloat16 weights; AdaBelief's result against the
    port (weight decay 0.5 applied as the authors' decoupled decay)."""
    weights = (tf.constant([0.1], tf.float32), tf.constant(1.0, tf.float64),
               tf.constant([10.0, 10.0], tf.bfloat16))
    optimizer = builder(learning_rate=tf.constant(0.125, tf.float32),
                        weight_decay=tf.constant(0.5 if port else 0.0, tf.float64))
    state = optimizer.initialize(tf.nest.map_structure(lambda w: tf.TensorSpec(w.shape, w.dtype), weights))
    grads = (tf.constant([1.0]), tf.constant(-2.0, tf.float64), tf.constant([0.5, 0.0], tf.bfloat16))
    state, new_weights = optimizer.next(state, weights, grads)
    assert [w.dtype for w in new_weights] == [w.dtype for w in weights]
    if port is not None:
        expected = port().step([np.float64(w.numpy()) for w in weights],
                               [np.float64(g.numpy()) for g in grads])
        for got, want, tol in zip(new_weights, expected, (2e-6, 1e-12, 8e-3)):
            np.testing.assert_allclose(tf.cast(got, tf.float64).numpy(), want, rtol=tol)


def test_tensor_learning_rate_inside_a_tff_computation():
    """A symbolic learning rate (as build_weighted_fed_avg_with_optimizer_schedule passes)
    lands in the state and drives the step."""
    spec = tf.TensorSpec([2], tf.float32)

    @tff.tensorflow.computation(np.float32)
    def initialize(learning_rate):
        return tff_optimizers.build_adabelief(learning_rate=learning_rate).initialize(spec)

    state = initialize(0.125)
    assert state[LR_KEY] == 0.125
    _, weights = tff_optimizers.build_adabelief().next(state, tf.ones([2]), tf.constant([1.0, -1.0]))
    expected = NumpyAdaBelief(0.125).step([np.ones(2)], [np.array([1.0, -1.0])])[0]
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("builder,port", [
    (lambda **kw: tff_optimizers.build_adabelief(**kw), lambda: NumpyAdaBelief(0.125, eps=0.0)),
    (lambda **kw: tff_optimizers.build_adabelief(rectify=False, **kw),
     lambda: NumpyAdaBelief(0.125, eps=0.0, rectify=False)),
    (lambda **kw: tff_optimizers.build_diffgrad(**kw), lambda: NumpyDiffGrad(0.125, eps=0.0)),
], ids=["adabelief", "adabelief_no_rectify", "diffgrad"])
def test_epsilon_zero_with_a_zero_gradient_coordinate_is_nan_exactly_where_the_authors_code_is(builder, port):
    """epsilon=0 divides 0 by 0 on a coordinate whose gradient stays 0. The authors' code
    (ported) does so from the first adaptive step: at once without rectification, after the
    SGD warm-up (t < 6 at beta_2 = 0.999) with it. Ours gives NaN at the same steps, no sooner."""
    optimizer = builder(learning_rate=0.125, epsilon=0.0)
    reference = port()
    state = optimizer.initialize(tf.TensorSpec([2], tf.float32))
    weights, params = tf.ones([2]), [np.ones(2)]
    for t in range(8):
        grads = np.array([0.5 * (-1) ** t, 0.0])
        state, weights = optimizer.next(state, weights, tf.constant(grads, tf.float32))
        params = reference.step(params, [grads])
        np.testing.assert_allclose(weights.numpy(), params[0], rtol=2e-5, equal_nan=True,
                                   err_msg=f"step {t + 1}")
    assert np.isnan(params[0][1])  # the reference does reach NaN: the case is exercised
