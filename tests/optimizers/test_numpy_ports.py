"""keras_optim against independent NumPy ports of the papers' equations, on random problems,
in float64 (to 1e-9) and float32 (to float32 rounding)."""
import numpy as np
import pytest
import tensorflow as tf

import keras_optim
from tests.optimizers.numpy_ports import CASES

SHAPES = [(4, 3), (7,), (2, 2, 2)]


@pytest.mark.parametrize("dtype,rtol,atol", [("float64", 1e-9, 0.0), ("float32", 2e-4, 1e-5)])
@pytest.mark.parametrize("case", range(len(CASES)), ids=[f"{c[0]}{i}" for i, c in enumerate(CASES)])
def test_matches_numpy_port(case, dtype, rtol, atol):
    name, keras_args, port_cls, port_args = CASES[case]
    rng = np.random.default_rng(case)
    params = [rng.normal(size=s) for s in SHAPES]
    variables = [tf.Variable(p.astype(dtype)) for p in params]
    optimizer = getattr(keras_optim, name)(**keras_args)
    port = port_cls(**port_args)
    for t in range(25):
        grads = [rng.normal(scale=10.0 ** rng.uniform(-2, 1), size=s) for s in SHAPES]
        optimizer.apply_gradients([(tf.constant(g.astype(dtype)), v) for g, v in zip(grads, variables)])
        params = port.step(params, [g.astype(dtype).astype(np.float64) for g in grads])
        for v, p in zip(variables, params):
            np.testing.assert_allclose(v.numpy(), p, rtol=rtol, atol=atol, err_msg=f"step {t + 1}")
