"""keras_optim on Keras 3's JAX backend against optax, the optimizers a JAX user would pick.

    KERAS_BACKEND=jax .venv-jax/bin/python benchmarks/jax_vs_optax.py        # needs optax:
    pip install -r benchmarks/requirements-peers-jax.txt                    # (not a dependency)
    ... --quick                                                             # a smoke test

On the same parameters (the 8 x 1024 MLP of ``training_step_time.py``, 8.4M floats, batch 8,
where the optimizer's update dominates the step):

- training step: ``model.train_on_batch`` compiled by Keras (``jit_compile=True``) with
  ``keras_optim.AdaBelief(rectify=False)`` (or Keras' Adam), against a hand-written
  ``jax.jit`` step of the same model (``model.stateless_call``, ``jax.value_and_grad``) with
  ``optax.adabelief`` (or ``optax.adam``), parameters and optimizer state donated;
- update alone: ``optimizer.stateless_apply`` against ``optax`` ``update`` +
  ``apply_updates``, each in ``jax.jit`` with donated state, on fixed gradients.

Epsilon: optax's AdaBelief adds ``eps_root`` to :math:`s_t` and ``eps`` to
:math:`\\sqrt{\\hat s_t}`, as the authors' code and keras_optim do, so both use 1e-16 for both
and compute the same update (the script prints the largest difference after a few steps).
optax's Adam adds ``eps`` to :math:`\\sqrt{\\hat v_t}`, Keras' to :math:`\\sqrt{v_t}` (outside the
bias correction): the Adam pair is the baseline of what Keras' train step itself costs.
Target (issue 12): keras_optim's AdaBelief at most 1.10x optax's. Candidates are timed in
interleaved rounds (``benchmarks/timing.py``).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from benchmarks.optimizer_step_time import jax_update_step  # noqa: E402
from keras_optim.backend import KERAS3, keras  # noqa: E402

EPSILON = 1e-16
LEARNING_RATE = 1e-3


def mlp(width, depth=8):
    return keras.Sequential([keras.Input((width,))]
                            + [keras.layers.Dense(width, activation="relu") for _ in range(depth)]
                            + [keras.layers.Dense(10)])


def batch(width, size=8):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(size, width)).astype("float32"),
            rng.integers(0, 10, size).astype("int32"))


def keras_train_step(width, make_optimizer):
    keras.utils.set_random_seed(0)
    model = mlp(width)
    model.compile(optimizer=make_optimizer(), jit_compile=True,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = batch(width)
    return model, lambda: np.asarray(model.train_on_batch(x, y))


def optax_train_step(width, transformation):
    """The same model, loss and batch, trained by a jax.jit step with an optax optimizer."""
    import jax
    import optax

    keras.utils.set_random_seed(0)
    model = mlp(width)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    x, y = (jax.numpy.asarray(a) for a in batch(width))
    params = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def loss(params):
        logits, _ = model.stateless_call(params, non_trainable, x, training=True)
        return loss_fn(y, logits)

    @jax.jit
    def init(params):
        return transformation.init(params)

    def train(params, state):
        value, grads = jax.value_and_grad(loss)(params)
        updates, state = transformation.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    train = jax.jit(train, donate_argnums=(0, 1))
    carry = {"params": params, "state": init(params)}

    def step():
        carry["params"], carry["state"], value = train(carry["params"], carry["state"])
        return np.asarray(value)

    return carry, step


def keras_update(width, make_optimizer):
    keras.utils.set_random_seed(0)
    variables = mlp(width).trainable_variables
    return jax_update_step(make_optimizer(), variables, _fixed_gradients(variables))


def optax_update(width, transformation):
    import jax
    import optax

    keras.utils.set_random_seed(0)
    model = mlp(width)
    params = [v.value for v in model.trainable_variables]
    grads = _fixed_gradients(model.trainable_variables)

    def apply(params, state):
        updates, state = transformation.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    apply = jax.jit(apply, donate_argnums=(0, 1))
    carry = {"params": params, "state": jax.jit(transformation.init)(params)}

    def step():
        carry["params"], carry["state"] = apply(carry["params"], carry["state"])
        carry["params"][0].block_until_ready()

    return step


def _fixed_gradients(variables):
    import jax

    rng = np.random.default_rng(1)
    return [jax.numpy.asarray(rng.normal(scale=1e-2, size=v.shape).astype("float32"))
            for v in variables]


def pairs():
    import optax

    import keras_optim

    return {
        "AdaBelief": (lambda: keras_optim.AdaBelief(LEARNING_RATE, epsilon=EPSILON, rectify=False),
                      optax.adabelief(LEARNING_RATE, eps=EPSILON, eps_root=EPSILON)),
        "Adam": (lambda: keras.optimizers.Adam(LEARNING_RATE, epsilon=1e-8),
                 optax.adam(LEARNING_RATE, eps=1e-8)),
    }


def agreement(width, steps=3):
    """Largest |difference| of the parameters after a few AdaBelief training steps."""
    make, transformation = pairs()["AdaBelief"]
    model, keras_step = keras_train_step(width, make)
    carry, optax_step = optax_train_step(width, transformation)
    for _ in range(steps):
        keras_step()
        optax_step()
    return max(float(np.max(np.abs(np.asarray(v.value) - np.asarray(p))))
               for v, p in zip(model.trainable_variables, carry["params"]))


def main(argv=None):
    from benchmarks import timing

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=1024, help="MLP width (8 layers)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds-per-round", type=float, default=0.5)
    parser.add_argument("--quick", action="store_true", help="a smoke test: width 32, 2 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.width, args.rounds, args.seconds_per_round = 32, 2, 0.01
    if not (KERAS3 and keras.backend.backend() == "jax"):
        raise SystemExit("error: run with Keras 3 on JAX (KERAS_BACKEND=jax)")
    try:
        import jax
        import optax
    except ImportError as error:
        raise SystemExit(f"error: {error}; pip install -r benchmarks/requirements-peers-jax.txt")

    print(f"# keras_optim vs optax, Keras {keras.__version__} / JAX {jax.__version__} / optax "
          f"{optax.__version__}, device: {jax.devices()[0].device_kind} ({jax.default_backend()})")
    parameters = mlp(args.width).count_params()
    print(f"MLP 8 x {args.width}, {parameters / 1e6:.3g}M parameters, batch 8; AdaBelief after 3 "
          f"steps, max |keras_optim - optax| = {agreement(args.width):.2e}")
    for title, keras_fn, optax_fn in (
        ("training step (train_on_batch vs jax.jit step)",
         lambda make: keras_train_step(args.width, make)[1],
         lambda t: optax_train_step(args.width, t)[1]),
        ("update alone (stateless_apply vs optax update + apply_updates)",
         lambda make: keras_update(args.width, make),
         lambda t: optax_update(args.width, t)),
    ):
        steps = {}
        for name, (make, transformation) in pairs().items():
            steps[f"optax.{name.lower()}"] = optax_fn(transformation)
            label = "keras_optim.AdaBelief" if name == "AdaBelief" else "keras Adam"
            steps[label] = keras_fn(make)
        repeats = {name: timing.warm_up(step, args.seconds_per_round) for name, step in steps.items()}
        times = timing.interleaved(steps, repeats, args.rounds)
        print(f"\n{title}, {args.rounds} rounds; each keras figure x its optax peer")
        print(timing.HEADER)
        for name in pairs():
            peer = f"optax.{name.lower()}"
            label = "keras_optim.AdaBelief" if name == "AdaBelief" else "keras Adam"
            pair = timing.summarize({peer: times[peer], label: times[label]}, peer)
            for key in (peer, label):
                print(timing.row(key, *pair[key]))


if __name__ == "__main__":
    main()
