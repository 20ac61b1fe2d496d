"""Coordinate-wise clipping (Pan & Li 2023) against independent references, on Keras 3 and
tf.keras 2.14:

- fixtures from the NumPy port of the authors' code (tests/fixtures/coordinate_clip_reference.json,
  made by make_coordinate_clip_fixtures.py, itself checked against the authors' SGDClip and
  AdamClip), every step, float64, 1e-9 relative, four variables of different shapes;
- keras_optim.SGD / Adam with coordinate_clip=0 against Keras' own SGD / Adam;
- the threshold against NumPy's sort; the fast mode's error in rank on structured gradients.
"""
import numpy as np
import pytest
import tensorflow as tf

import keras_optim
from keras_optim.backend import KERAS3, keras
from keras_optim.math import coordinate_clip as clip_math
from tests.conftest import load_fixture, load_fixture_script, threshold_search_case
from tests.optimizers.training import apply_eagerly, xla_applier

FIXTURE = load_fixture("coordinate_clip_reference.json")
CASES = {f"{c['optimizer']}-{c['name']}": c for c in FIXTURE["cases"]}
RTOL = 1e-9


PORTS = load_fixture_script("make_coordinate_clip_fixtures")


def _run(case, apply_step, **override):
    variables = [tf.Variable(np.array(x, dtype=np.float64)) for x in case["initial"]]
    optimizer = getattr(keras_optim, case["optimizer"])(**{**case["keras_args"], **override})
    optimizer.build(variables)
    steps = zip(case["gradients"], case["expected"], case["thresholds"])
    for t, (grads, expected, tau) in enumerate(steps, start=1):
        apply_step(optimizer, [tf.constant(np.array(g, dtype=np.float64)) for g in grads], variables)
        if tau is not None:
            np.testing.assert_allclose(
                float(optimizer.coordinate_clip_threshold.numpy()), tau, rtol=1e-15,
                err_msg=f"{case['name']}: threshold of step {t}",
            )
        for v, e in zip(variables, expected):
            np.testing.assert_allclose(
                v.numpy(), np.array(e), rtol=RTOL, atol=0,
                err_msg=f"{case['optimizer']} {case['name']}: step {t} differs from the port",
            )


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_port_of_authors_code_every_step(name):
    _run(CASES[name], apply_eagerly)


@pytest.mark.parametrize(
    "name", ["SGD-nesterov_clip_half_scaled", "Adam-clip_tenth_amsgrad",
             "AdaBelief-clip_half_rectify", "DiffGrad-clip_quarter"],
)
def test_matches_port_inside_xla(name):
    _run(CASES[name], xla_applier())


@pytest.mark.parametrize("name", ["SGD-momentum_clip_tenth", "Adam-clip_third_scaled"])
def test_fast_mode_is_exact_when_the_model_fits_in_the_sample(name):
    """30 coordinates <= the sample size: the sample is every coordinate."""
    _run(CASES[name], xla_applier(), clip_mode="fast")


@pytest.mark.skipif(KERAS3, reason="tf.keras 2.x optimizers only")
def test_tf_keras_own_xla_update_path_matches():
    """tf.keras 2.14 compiles each variable's update with XLA when `jit_compile` is on (it
    switches it off without a GPU: forced here); the threshold variable is read inside."""

    def forced_xla(optimizer, grads, variables):
        optimizer.jit_compile = True
        optimizer.apply_gradients(zip(grads, variables))
        assert optimizer._update_step_xla.experimental_get_tracing_count() >= 1

    _run(CASES["Adam-clip_half"], forced_xla)


# --- coordinate_clip=0 is Keras' own SGD / Adam --------------------------------------------

def _schedule(initial):
    return keras.optimizers.schedules.ExponentialDecay(initial, decay_steps=3, decay_rate=0.5)


# Hyperparameters exact in float32: Keras 3 casts Python floats through float32 even for
# float64 variables (ops.cast(0.9, "float64") == 0.8999999761581421), keras_optim does not.
KERAS_EQUIVALENCE = [
    ("SGD", dict(learning_rate=0.0625)),
    ("SGD", dict(learning_rate=0.0625, momentum=0.875)),
    ("SGD", dict(learning_rate=0.0625, momentum=0.5, nesterov=True, weight_decay=0.125)),
    ("SGD", dict(learning_rate="schedule", momentum=0.75, clipnorm=0.5)),
    ("Adam", dict(learning_rate=0.0625, beta_1=0.875, beta_2=0.9921875)),
    ("Adam", dict(learning_rate=0.0625, beta_1=0.5, beta_2=0.75, epsilon=1e-3, amsgrad=True)),
    ("Adam", dict(learning_rate="schedule", beta_1=0.75, beta_2=0.9375, weight_decay=0.125,
                  global_clipnorm=1.0)),
]


def _keras_args(args):
    args = dict(args)
    if args.get("learning_rate") == "schedule":
        args["learning_rate"] = _schedule(0.25)
    return args


def _train(make, args, initial, grads, dtype):
    variables = [tf.Variable(np.array(x, dtype=dtype)) for x in initial]
    optimizer = make(**_keras_args(args))
    for step in grads:
        optimizer.apply_gradients(zip([tf.constant(g.astype(dtype)) for g in step], variables))
    return [v.numpy() for v in variables]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,args", KERAS_EQUIVALENCE, ids=lambda a: str(a))
def test_without_clipping_equals_keras_optimizer(name, args, dtype):
    initial, grads = PORTS.gradient_sequence(7, steps=8)
    ours = _train(getattr(keras_optim, name), args, initial, grads, dtype)
    theirs = _train(getattr(keras.optimizers, name), args, initial, grads, dtype)
    for a, b in zip(ours, theirs):
        if name == "SGD":  # the same operations in the same order: identical
            np.testing.assert_array_equal(a, b)
        elif dtype == "float64":
            np.testing.assert_allclose(a, b, rtol=1e-12)
        else:  # bias corrections via expm1 (keras_optim) or 1 - beta**t (Keras): ulps apart
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-7)


def test_adam_defaults_equal_keras_adam_defaults_in_float32():
    initial, grads = PORTS.gradient_sequence(8, steps=8)
    ours = _train(keras_optim.Adam, {}, initial, grads, "float32")
    theirs = _train(keras.optimizers.Adam, {}, initial, grads, "float32")
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-7)


def test_keras_clipnorm_runs_before_coordinate_clipping():
    """clipnorm (per variable) first, then the global threshold of the norm-clipped gradient."""
    initial, grads = PORTS.gradient_sequence(11, steps=6)
    variables = [tf.Variable(np.array(x)) for x in initial]
    optimizer = keras_optim.SGD(learning_rate=2**-6, momentum=0.9, clipnorm=2.0,
                                coordinate_clip=0.2)
    port = PORTS.SGDClipPort(lr=2**-6, momentum=0.9, coordinate_clip=0.2)
    params = [np.array(x) for x in initial]
    for step in grads:
        optimizer.apply_gradients(zip([tf.constant(g) for g in step], variables))
        norm_clipped = [g * min(1.0, 2.0 / max(np.linalg.norm(g), 1e-300)) for g in step]
        params, _ = port.step(params, norm_clipped)
        for v, p in zip(variables, params):
            np.testing.assert_allclose(v.numpy(), p, rtol=1e-9)


# --- the threshold and the clip --------------------------------------------------------------

@pytest.mark.parametrize("fraction", [1e-3, 0.1, 0.5, 0.9, 0.999, 1.0])
def test_exact_threshold_is_numpy_sort_at_floor_n_fraction(fraction):
    rng = np.random.default_rng(5)
    grads = [rng.standard_t(3, size=s) for s in [(40, 25), (17,), (3, 3, 3)]]
    tau = clip_math.exact_threshold([tf.constant(g) for g in grads], fraction, 1.5)
    everything = np.sort(np.abs(np.concatenate([g.ravel() for g in grads])))[::-1]
    expected = 0.0 if fraction == 1.0 else 1.5 * everything[int(everything.size * fraction)]
    assert float(tau) == expected


def _selection_cases():
    rng = np.random.default_rng(9)
    n = 3000
    return {
        "heavy tails": np.abs(rng.standard_t(2, size=n)),
        "ties and zeros": np.repeat(np.abs(rng.normal(size=n // 50)), 50) * (rng.random(n) < 0.7),
        "all zero": np.zeros(n),
        "constant": np.full(n, 0.3),
        # (TensorFlow flushes float32 subnormals to zero on CPU: tiny normal numbers here)
        "60 orders of magnitude, tiny": 10.0 ** rng.uniform(-37, 23, size=n),
    }


@pytest.mark.parametrize(
    "case,dtype",
    [(case, "float32") for case in sorted(_selection_cases())]
    + [("heavy tails", "float64"), ("60 orders of magnitude, tiny", "float64")],
)
def test_selection_without_sorting_equals_numpy_sort(case, dtype):
    """The counting search: first, middle and last ranks, with good, wrong and no starting
    guesses, signed values in pieces: the exact order statistic (and the same under XLA); and
    the sort that selects from small arrays."""
    values = _selection_cases()[case].astype(dtype)
    ordered = np.sort(values)[::-1]
    search = tf.function(clip_math.search_descending)
    signs = np.where(np.arange(values.size) % 3 == 0, -1.0, 1.0).astype(dtype)
    for rank in [0, 37, len(values) // 2, len(values) - 1]:
        expected = ordered[rank]
        near = (ordered[max(rank - 9, 0)], ordered[min(rank + 9, len(values) - 1)])
        wrong = (ordered[min(rank + 900, len(values) - 1)] * 1.5, ordered[-1])
        for guesses in [(), near, wrong]:
            guesses = [tf.constant(g, dtype) for g in guesses]
            got = search(tf.constant(values), tf.constant(rank), guesses).numpy()
            assert got == expected, (rank, guesses)
        # counted by magnitude, in pieces
        pieces = [tf.constant(values[:1000] * signs[:1000]), tf.constant(values[1000:])]
        assert search(pieces, tf.constant(rank)).numpy() == expected, rank
        assert clip_math.select_descending(tf.constant(values), rank).numpy() == expected
    compiled = tf.function(lambda v: clip_math.search_descending(v, 1234), jit_compile=True)
    assert compiled(tf.constant(values)).numpy() == ordered[1234]


@pytest.mark.parametrize("case", ["heavy tails", "ties and zeros"])
def test_exact_threshold_beyond_the_sort_size_equals_numpy_sort(case):
    """Above ``SORTED_SIZE`` coordinates the threshold is searched from the sample's order
    statistics: the exact order statistic at every fraction and step, eager and under XLA."""
    grads, ordered = threshold_search_case(case)
    assert ordered.size > clip_math.SORTED_SIZE
    constants = [tf.constant(g) for g in grads]
    for fraction in [1e-3, 0.5, 0.999]:
        expected = ordered[int(ordered.size * fraction)]
        assert clip_math.exact_threshold(constants, fraction, step=1).numpy() == expected
    compiled = tf.function(
        lambda gs, t: clip_math.exact_threshold(gs, 0.1, step=t), jit_compile=True)
    for step in range(2):
        expected = ordered[int(ordered.size * 0.1)]
        assert compiled(constants, tf.constant(step, tf.int64)).numpy() == expected


def test_search_falls_back_when_the_target_is_beyond_the_guesses():
    """Guesses all above (or all below) the target: the fallback probes, then the search."""
    values = np.abs(np.random.default_rng(4).standard_t(3, size=20000)).astype("float32")
    ordered = np.sort(values)[::-1]
    rank = 10000
    above = [tf.constant(ordered[r]) for r in (10, 100, 1000, 5000)]
    below = [tf.constant(ordered[r]) for r in (19000, 18000, 15000, 12000)]
    for guesses in (above, below):
        got = clip_math.search_descending(tf.constant(values), rank, guesses, (above, below))
        assert got.numpy() == ordered[rank]


def test_clip_keeps_small_coordinates_and_cuts_large_ones():
    g = tf.constant([-3.0, -1.0, 0.0, 0.5, 2.0, 1.0, np.nan, np.inf, -np.inf])
    clipped = clip_math.clip_by_threshold(g, 1.0).numpy()
    np.testing.assert_array_equal(clipped[:6], [-1.0, -1.0, 0.0, 0.5, 1.0, 1.0])
    assert np.isnan(clipped[6])  # a NaN coordinate stays NaN, only there
    np.testing.assert_array_equal(clipped[7:], [1.0, -1.0])  # infinities are cut to the threshold


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_gradient_disables_clipping_for_that_step(bad):
    """Eager and under XLA alike (XLA's max skips NaN): a NaN or infinite coordinate gives an
    infinite exact threshold, so the step equals the unclipped optimizer's."""
    grads = [np.array([[0.5, -3.0], [2.0, 0.1]]), np.array([bad, 1.0, -0.2])]
    constants = [tf.constant(g) for g in grads]
    assert np.isinf(clip_math.exact_threshold(constants, 0.25).numpy())
    compiled = tf.function(lambda gs: clip_math.exact_threshold(gs, 0.25), jit_compile=True)
    assert np.isinf(compiled(constants).numpy())
    runs = []
    for clip in (0.25, 0.0):
        variables = [tf.Variable(np.ones_like(g)) for g in grads]
        keras_optim.SGD(0.5, momentum=0.5, coordinate_clip=clip).apply_gradients(
            zip(constants, variables))
        runs.append([v.numpy() for v in variables])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_sample_plan_is_proportional_and_visits_distinct_coordinates():
    sizes = [512 * 256, 256, 256 * 128, 1280, 10, 1]
    plan = clip_math.sample_plan(sizes, 4096)
    assert sum(c for c, _ in plan) == 4096
    for n, (count, stride) in zip(sizes, plan):
        assert abs(count - n * 4096 / sum(sizes)) < 1 and count <= n
        if stride:
            assert np.gcd(stride, n) == 1
            assert len({(j * stride) % n for j in range(count)}) == count


def _structured_gradients(seed):
    """A layered model's gradients: heavy tails, scales that differ by variable and by column."""
    rng = np.random.default_rng(seed)
    shapes = [(512, 256), (256,), (256, 128), (128, 10), (10,)]
    grads = []
    for i, shape in enumerate(shapes):
        column_scale = 10.0 ** rng.uniform(-2, 1, size=shape[-1])
        grads.append(rng.standard_t(3, size=shape) * column_scale * 10.0 ** (i - 2))
    return grads


@pytest.mark.parametrize("fraction", [0.5, 0.1, 0.01])
def test_fast_mode_rank_error_is_within_sampling_error(fraction):
    """The fast threshold clips k_hat coordinates where the exact one clips k = floor(N p):
    |k_hat - k| / k stays within 4 standard deviations of a random sample's,
    sqrt((1 - p) / (p S)) (S = fast_sample_size(p): at most 5%), on every one of several steps
    (the lattice moves each step)."""
    grads = _structured_gradients(0)
    magnitudes = np.abs(np.concatenate([g.ravel() for g in grads]))
    k = int(magnitudes.size * fraction)
    tolerance = 4 * np.sqrt((1 - fraction) / (fraction * clip_math.fast_sample_size(fraction)))
    thresholds = []
    for step in range(6):
        tau = float(clip_math.sampled_threshold([tf.constant(g) for g in grads], fraction,
                                                step=tf.constant(step, tf.int64)))
        thresholds.append(tau)
        k_hat = int(np.sum(magnitudes > tau))
        assert abs(k_hat - k) / k < tolerance, (step, k_hat, k)
    assert len(set(thresholds)) > 1, "the sample must change from step to step"


# --- arguments and configuration -----------------------------------------------------------

CLIPPING_OPTIMIZERS = ["SGD", "Adam", "AdaBelief", "DiffGrad"]


@pytest.mark.parametrize("name", CLIPPING_OPTIMIZERS)
@pytest.mark.parametrize(
    "argument,value",
    [("coordinate_clip", -0.1), ("coordinate_clip", 1.5), ("coordinate_clip", "top"),
     ("clip_threshold_scale", 0.0), ("clip_threshold_scale", -1.0), ("clip_mode", "median")],
)
def test_bad_clipping_arguments_raise_value_error_naming_them(name, argument, value):
    with pytest.raises(ValueError) as error:
        getattr(keras_optim, name)(**{argument: value})
    assert argument in str(error.value) and repr(value) in str(error.value)


@pytest.mark.parametrize("name", CLIPPING_OPTIMIZERS)
def test_clipping_arguments_survive_config_round_trip(name):
    optimizer = getattr(keras_optim, name)(
        coordinate_clip=0.25, clip_threshold_scale=2.0, clip_mode="fast", clipnorm=1.0
    )
    config = optimizer.get_config()
    assert (config["coordinate_clip"], config["clip_threshold_scale"], config["clip_mode"]) == (
        0.25, 2.0, "fast")
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is type(optimizer) and restored.get_config() == config


def test_no_threshold_variable_without_clipping():
    variables = [tf.Variable(np.zeros(3))]
    plain, clipping = keras_optim.Adam(), keras_optim.Adam(coordinate_clip=0.5)
    plain.build(variables)
    clipping.build(variables)
    assert plain.coordinate_clip_threshold is None
    assert len(clipping.variables) == len(plain.variables) + 1
