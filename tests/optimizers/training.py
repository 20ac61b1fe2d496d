"""Shared by the optimizer tests: a toy model and data, and ways to apply one optimizer step
(eagerly, or compiled whole by XLA)."""
import numpy as np
import tensorflow as tf

from keras_optim.backend import keras


def small_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)]
    )


def toy_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0).astype("int32")
    return x, y


def compile_model(model, optimizer, **kwargs):
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        **kwargs,
    )
    return model


def fit_weights(make_optimizer, strategy, epochs=3):
    """Weights after `fit` of the toy model built in `strategy`'s scope."""
    x, y = toy_data()
    with strategy.scope():
        model = compile_model(small_model(), make_optimizer())
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=epochs, verbose=0)
    return model.get_weights()


def apply_eagerly(optimizer, grads, variables):
    optimizer.apply_gradients(zip(grads, variables))


def xla_applier():
    """A step function that compiles `apply_gradients` with XLA on its first call."""
    compiled = {}

    def step(optimizer, grads, variables):
        if "fn" not in compiled:
            compiled["fn"] = tf.function(
                lambda gs: optimizer.apply_gradients(zip(gs, variables)), jit_compile=True
            )
        compiled["fn"](grads)

    return step


def check_fixture_trajectory(case, apply_step, rtol=1e-9, atol=0.0):
    """Runs a fixture case (``initial`` float64 variables, ``gradients`` and ``expected`` per step,
    made by a reference in tests/fixtures) through keras_optim, checking every step."""
    import keras_optim

    variables = [tf.Variable(np.array(x, dtype=np.float64)) for x in case["initial"]]
    optimizer = getattr(keras_optim, case["optimizer"])(**case["keras_args"])
    optimizer.build(variables)
    for t, (grads, expected) in enumerate(zip(case["gradients"], case["expected"]), start=1):
        apply_step(optimizer, [tf.constant(np.array(g, dtype=np.float64)) for g in grads], variables)
        for v, e in zip(variables, expected):
            np.testing.assert_allclose(
                v.numpy(), np.array(e), rtol=rtol, atol=atol,
                err_msg=f"{case['optimizer']} {case['name']}: step {t} differs from {case['reference']}",
            )


def embedding_gradients():
    """A tiny Embedding model, its gradients (the first is a ``tf.IndexedSlices``) and a runner:
    ``run(gradients, make_optimizer)`` applies them 3 times to copies of the model's weights."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input((5,), dtype="int32"), keras.layers.Embedding(30, 4),
         keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)]
    )
    tokens = tf.constant(np.random.default_rng(0).integers(0, 10, size=(6, 5)), tf.int32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(model(tokens)))
    grads = tape.gradient(loss, model.trainable_variables)

    def run(gradients, make_optimizer):
        variables = [tf.Variable(v.numpy()) for v in model.trainable_variables]
        optimizer = make_optimizer()
        for _ in range(3):
            optimizer.apply_gradients(zip(gradients, variables))
        return [v.numpy() for v in variables]

    return model, grads, run


def fit_mixed_float16(make_optimizer):
    """Trains the toy model under ``mixed_float16`` with ``LossScaleOptimizer(make_optimizer())``
    and checks that it learned without a non-finite loss or weight."""
    x, y = toy_data(128)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = small_model()
        compile_model(model, keras.mixed_precision.LossScaleOptimizer(make_optimizer()))
        history = model.fit(x, y, epochs=4, batch_size=32, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


def check_accumulated_updates(optimizer, port, case, steps=2):
    """Applies ``case``'s gradients to ``optimizer`` (built with
    ``gradient_accumulation_steps=steps``) and checks, after each update, the variables
    against ``port`` stepped once on the average of that update's micro-batch gradients."""
    variables = [tf.Variable(np.array(x, dtype=np.float64)) for x in case["initial"]]
    params = [np.array(x) for x in case["initial"]]
    grads = [[np.array(g) for g in step] for step in case["gradients"]]
    for start in range(0, len(grads) - steps + 1, steps):
        micro_batches = grads[start:start + steps]
        for step in micro_batches:
            optimizer.apply_gradients(zip([tf.constant(g) for g in step], variables))
        params, _ = port.step(params, [sum(gs) / steps for gs in zip(*micro_batches)])
        for v, p in zip(variables, params):
            np.testing.assert_allclose(v.numpy(), p, rtol=1e-9)
    assert int(optimizer.iterations.numpy()) == len(grads) // steps
