"""The Flower server's optimizers against NumPy ports of TFF's build_sgdm and build_adam
(written here from their formulas), over several steps and a checkpoint round trip."""
import numpy as np
import pytest

pytest.importorskip("flwr", reason="flwr is not installed: the Flower tests run in .venv (requirements/keras3.txt)")
from flower_async.server_optimizer import ServerOptimizer  # noqa: E402

LR, MU = 0.5, 0.9


def reference(name, weights, updates):
    w, v, m, s = ([a.copy() for a in weights], [0 * a for a in weights], [0 * a for a in weights],
                  [0 * a for a in weights])
    for t, update in enumerate(updates, 1):
        g = [-u for u in update]
        if name == "sgd":
            w = [a - LR * x for a, x in zip(w, g)]
        elif name == "sgdm":
            v = [MU * a + x for a, x in zip(v, g)]
            w = [a - LR * b for a, b in zip(w, v)]
        else:
            m = [0.9 * a + 0.1 * x for a, x in zip(m, g)]
            s = [0.999 * a + 0.001 * x * x for a, x in zip(s, g)]
            rate = LR * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
            w = [a - rate * b / (np.sqrt(c) + 1e-7) for a, b, c in zip(w, m, s)]
    return w


@pytest.mark.parametrize("name", ["sgd", "sgdm", "adam"])
def test_steps_equal_tffs_server_optimizers_and_resume(name):
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(3, 2)), rng.normal(size=4)]
    updates = [[rng.normal(size=(3, 2)), rng.normal(size=4)] for _ in range(4)]
    optimizer, current = ServerOptimizer(name, LR, MU), weights
    for update in updates[:2]:
        current = optimizer.apply(current, update)
    resumed = ServerOptimizer(name, LR, MU)
    resumed.load(optimizer.state())
    for update in updates[2:]:
        current = resumed.apply(current, update)
    for got, want in zip(current, reference(name, weights, updates)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
