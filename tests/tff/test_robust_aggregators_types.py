# Adapted from TensorFlow Federated 0.87.0, tensorflow_federated/python/aggregators/mean_test.py
# (Copyright 2020 The TensorFlow Federated Authors, Apache License 2.0): the type checks and type
# signatures that TFF holds its own aggregation factories to, applied to the robust factories.
"""The robust tff.aggregators factories: TFF's type/dtype checks (wrong types, dtypes kept)."""
import numpy as np
import pytest

tff = pytest.importorskip("tensorflow_federated")

from tff_experiments.robust import aggregators  # noqa: E402

# mean_test.py's _test_struct_type: mixed float32 / float64 leaves.
STRUCT_TYPE = ((np.float32, (2,)), np.float64)


@pytest.mark.parametrize(
    "wrong_type",
    [
        tff.FederatedType(np.float32, tff.SERVER),
        tff.FederatedType(np.float32, tff.CLIENTS),
        tff.FunctionType(None, ()),
        tff.SequenceType(np.float32),
        tff.TensorType(np.int32, [2]),
    ],
    ids=["federated_server", "federated_clients", "function", "sequence", "int32"],
)
def test_incorrect_create_type_raises_type_error(wrong_type):
    with pytest.raises(TypeError):
        aggregators.coordinate_median_factory().create(wrong_type)


@pytest.mark.parametrize("value_type", [np.float32, np.float64, np.float16, STRUCT_TYPE], ids=str)
def test_type_properties(value_type):
    """mean_test.py's test_type_properties_unweighted: the result has the value's own type."""
    value_type = tff.types.to_type(value_type)
    process = aggregators.trimmed_mean_factory(1).create(value_type)
    assert isinstance(process, tff.templates.AggregationProcess)
    next_type = process.next.type_signature
    assert next_type.parameter[1].is_equivalent_to(tff.FederatedType(value_type, tff.CLIENTS))
    assert next_type.result.result.is_equivalent_to(tff.FederatedType(value_type, tff.SERVER))


def test_float64_median_keeps_float64_precision():
    process = aggregators.coordinate_median_factory().create(tff.TensorType(np.float64))
    output = process.next(process.initialize(), [1.0 + 1e-12, 1.0 + 1e-12, 5.0])
    assert output.result.dtype == np.float64
    assert output.result == 1.0 + 1e-12


def test_mixed_structure_runs_in_float64_and_keeps_each_dtype():
    process = aggregators.centered_clipping_factory(clip_threshold=10.0, iterations=1).create(
        tff.types.to_type(STRUCT_TYPE)
    )
    tiny = 1e-12
    values = [((1.0, 2.0), 3.0 + tiny), ((1.0, 2.0), 3.0 + tiny), ((1.0, 2.0), 3.0 + tiny)]
    output = process.next(process.initialize(), values)
    (pair, scalar) = output.result
    assert np.asarray(pair).dtype == np.float32 and np.asarray(scalar).dtype == np.float64
    # Centered clipping from 0 with a threshold above every distance: the plain mean.
    np.testing.assert_array_equal(pair, np.float32([1.0, 2.0]))
    np.testing.assert_allclose(scalar, 3.0 + tiny, rtol=1e-15, atol=0)  # float32 would give 3.0
    assert np.asarray(output.state).dtype == np.float64
