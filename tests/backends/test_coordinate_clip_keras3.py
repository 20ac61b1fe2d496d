"""Coordinate clipping on whichever backend Keras 3 runs, against the NumPy port of Pan & Li's
code (tests/fixtures/make_coordinate_clip_fixtures.py). On JAX the updates go through
``stateless_apply`` compiled by ``jax.jit``, as JAX's trainer applies them (TensorFlow's
Keras has no ``stateless_apply``: ``apply`` there):

- the ``coordinate_clip=`` option: the fixture cases (coordinate_clip_reference.json), float64,
  every step and threshold;
- the ``CoordinateClipping`` wrapper around Keras' SGD with momentum: step by step, and
  ``fit`` of a linear model whose gradients NumPy computes."""
import contextlib

import numpy as np
import pytest

from keras_optim.backend import KERAS3, keras
from tests.conftest import load_fixture, threshold_search_case

if not KERAS3:
    pytest.skip("Keras 3 only", allow_module_level=True)

import keras_optim  # noqa: E402

JAX = keras.backend.backend() == "jax"
FIXTURE = load_fixture("coordinate_clip_reference.json")
CASES = {f"{c['optimizer']}-{c['name']}": c for c in FIXTURE["cases"]}


def float64():
    """JAX keeps float64 only inside ``jax.enable_x64``."""
    if JAX:
        import jax

        return jax.enable_x64(True)
    return contextlib.nullcontext()


def steps(optimizer, initial, gradients, dtype):
    """Builds ``optimizer`` on variables holding ``initial``, applies ``gradients`` one step
    at a time and yields the variables' values after each step."""
    variables = [keras.Variable(np.array(x, dtype)) for x in initial]
    optimizer.build(variables)
    if JAX:
        import jax

        stateless_apply = jax.jit(optimizer.stateless_apply)
        values = [v.value for v in variables]
        state = [v.value for v in optimizer.variables]
    for grads in gradients:
        grads = [keras.ops.convert_to_tensor(np.array(g, dtype)) for g in grads]
        if JAX:
            values, state = stateless_apply(state, grads, values)
            # Hand the new state back to the variables (the threshold is one of them).
            for variable, value in zip(optimizer.variables, state):
                variable.assign(value)
            yield [np.asarray(v) for v in values]
        else:
            optimizer.apply(grads, variables)
            yield [v.numpy() for v in variables]


@pytest.mark.skipif(keras.backend.backend() == "tensorflow",
                    reason="tests/optimizers/test_coordinate_clip.py runs these fixtures there")
@pytest.mark.parametrize("name", sorted(CASES))
def test_option_matches_port_every_step(name):
    case = CASES[name]
    with float64():
        optimizer = getattr(keras_optim, case["optimizer"])(**case["keras_args"])
        updates = steps(optimizer, case["initial"], case["gradients"], "float64")
        for t, (values, expected, tau) in enumerate(
            zip(updates, case["expected"], case["thresholds"]), start=1
        ):
            if tau is not None:
                np.testing.assert_allclose(
                    float(optimizer.coordinate_clip_threshold.numpy()), tau, rtol=1e-15,
                    err_msg=f"{name}: threshold of step {t}",
                )
            for value, e in zip(values, expected):
                np.testing.assert_allclose(value, np.array(e), rtol=1e-9, atol=0,
                                           err_msg=f"{name}: step {t}")


@pytest.mark.parametrize("fraction, scale", [(0.1, 1.0), (0.5, 2.0)])
def test_wrapper_matches_port_every_step(clip_ports, fraction, scale):
    case = CASES["SGD-momentum_clip_tenth"]
    with float64():
        wrapper = keras_optim.CoordinateClipping(
            # Hyperparameters exact in float32: Keras' SGD on TensorFlow rounds them to it.
            keras.optimizers.SGD(learning_rate=0.015625, momentum=0.5), fraction,
            threshold_scale=scale,
        )
        port = clip_ports.SGDClipPort(0.015625, momentum=0.5, coordinate_clip=fraction,
                                      threshold_scale=scale)
        params = [np.array(x, np.float64) for x in case["initial"]]
        updates = steps(wrapper, case["initial"], case["gradients"], "float64")
        for t, (values, grads) in enumerate(zip(updates, case["gradients"]), start=1):
            params, _ = port.step(params, [np.array(g) for g in grads])
            for value, p in zip(values, params):
                np.testing.assert_allclose(value, p, rtol=1e-9, err_msg=f"step {t}")
        assert int(wrapper.iterations.numpy()) == len(case["gradients"])


def test_wrapper_fit_matches_numpy(clip_ports):
    """Full-batch ``fit`` of ``Dense(3)`` on a mean squared error: the gradient is
    ``2/(n*3) X^T (XW + b - Y)`` (and its column sums for ``b``), clipped, then SGD."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = rng.normal(size=(32, 3)).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    kernel, bias = [w.astype(np.float64) for w in model.get_weights()]
    model.compile(
        optimizer=keras_optim.CoordinateClipping(
            keras.optimizers.SGD(learning_rate=0.1, momentum=0.9), 0.25),
        loss="mse",
    )
    epochs = 4
    model.fit(x, y, batch_size=len(x), epochs=epochs, shuffle=False, verbose=0)

    port = clip_ports.SGDClipPort(0.1, momentum=0.9, coordinate_clip=0.25)
    xd, yd = x.astype(np.float64), y.astype(np.float64)
    for _ in range(epochs):
        residual = 2.0 * (xd @ kernel + bias - yd) / yd.size
        (kernel, bias), _ = port.step([kernel, bias], [xd.T @ residual, residual.sum(axis=0)])
    got_kernel, got_bias = model.get_weights()
    np.testing.assert_allclose(got_kernel, kernel, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_bias, bias, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not JAX,
                    reason="tests/optimizers/test_coordinate_clip.py runs it on TensorFlow")
@pytest.mark.parametrize("case", ["heavy tails", "ties and zeros"])
def test_exact_threshold_beyond_the_sort_size_equals_numpy_sort(case):
    """The counting search (more than ``SORTED_SIZE`` coordinates; on JAX's CPU its row sums
    are products with ones) finds NumPy's order statistic, eagerly and under ``jax.jit``."""
    import jax

    from keras_optim.math import coordinate_clip as clip_math

    grads, ordered = threshold_search_case(case)
    assert ordered.size > clip_math.SORTED_SIZE
    arrays = [keras.ops.convert_to_tensor(g) for g in grads]
    for fraction in [1e-3, 0.5, 0.999]:
        expected = ordered[int(ordered.size * fraction)]
        assert float(clip_math.exact_threshold(arrays, fraction, step=1)) == expected
        compiled = jax.jit(lambda gs, t: clip_math.exact_threshold(gs, fraction, step=t))
        for step in range(2):
            assert float(compiled(arrays, step)) == expected


@pytest.mark.skipif(not JAX,
                    reason="tests/optimizers/test_coordinate_clip.py runs it on TensorFlow")
@pytest.mark.parametrize("case", ["heavy tails", "ties and zeros"])
def test_selection_from_the_fast_modes_sample_equals_numpy_sort(case):
    """From 4096 magnitudes (the fast mode's sample; on JAX's CPU a 256-value strided sample of
    them is sorted and the 4096 searched), NumPy's order statistic at every rank tried, eagerly
    and under ``jax.jit``."""
    import jax

    from keras_optim.math import coordinate_clip as clip_math

    grads, _ = threshold_search_case(case)
    sample = np.abs(np.concatenate([g.ravel() for g in grads]))[:4096]
    ordered = np.sort(sample)[::-1]
    values = keras.ops.convert_to_tensor(sample)
    for rank in [0, 409, 2048, 4095]:
        assert float(clip_math.select_descending(values, rank)) == ordered[rank]
        compiled = jax.jit(lambda v: clip_math.select_descending(v, rank))
        assert float(compiled(values)) == ordered[rank]
