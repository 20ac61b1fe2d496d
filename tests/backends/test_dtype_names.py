"""Dtype names on every Keras 3 backend. PyTorch's dtypes have no ``name`` and print as
``torch.float16``: keras_optim reads them through Keras' own ``standardize_dtype``, so that
half-precision statistics are kept in float32 on PyTorch too (PyTorch itself is checked by hand,
docs/compatibility.md; its wheel is too large for CI)."""
import types

import pytest

from keras_optim import backend


class TorchLikeDtype:
    """As ``torch.float16``: no ``name`` attribute, ``str()`` gives ``torch.float16``."""

    def __init__(self, name):
        self._name = name

    def __str__(self):
        return f"torch.{self._name}"


@pytest.mark.skipif(not backend.KERAS3, reason="Keras 3 backends")
@pytest.mark.parametrize("name", ["float16", "bfloat16", "float32", "float64"])
def test_torch_style_dtypes_are_named_as_keras_names_them(name):
    assert backend.dtype_name(TorchLikeDtype(name)) == name
    variable = types.SimpleNamespace(dtype=TorchLikeDtype(name))
    expected = "float32" if name in ("float16", "bfloat16") else name
    assert backend.statistics_dtype(variable) == expected
