"""``ScheduleDataSourceIterator`` keeps TFF's ``FederatedDataSourceIterator`` contract: it is
``Serializable``, and ``from_bytes(to_bytes())`` gives an equal iterator (adapted from TFF 0.87's
``program/client_id_data_source_test.py`` / ``dataset_data_source_test.py`` ``test_serializable``,
Apache-2.0), which then selects exactly the data the original would."""
import numpy as np
import pytest

tff = pytest.importorskip("tensorflow_federated")
import tensorflow as tf  # noqa: E402

from tff_experiments.asynchronous import ClientTimes, LocalBatches, build_schedule, client_importance  # noqa: E402
from tff_experiments.data.digits import digits_client_data  # noqa: E402
from tff_experiments.data.synthetic_federated import synthetic_federated_data  # noqa: E402
from tff_experiments.asynchronous.data_source import ScheduleDataSource, ScheduleDataSourceIterator  # noqa: E402

NUM_CLIENTS = 5


def source(dataset, arrays):
    if dataset == "digits":
        client_data, _ = digits_client_data(NUM_CLIENTS, alpha=0.5, seed=0)
    else:
        client_data, _ = synthetic_federated_data(NUM_CLIENTS, 1.0, 0.5, seed=3)
    local = LocalBatches(client_data, local_steps=2, batch_size=8, seed=1)
    schedule = build_schedule("fedfix", ClientTimes.from_scenario(NUM_CLIENTS, "F-80", "exponential", seed=2), 1.5,
                              client_importance("uniform", [1] * NUM_CLIENTS), "weight", delta_t=0.25)
    return ScheduleDataSource(schedule, local, arrays=arrays)


def as_arrays(data):
    if isinstance(data, tf.data.Dataset):
        return [tf.nest.map_structure(np.asarray, batch) for batch in data.as_numpy_iterator()]
    return data


@pytest.mark.parametrize("dataset,arrays", [("digits", False), ("digits", True), ("synthetic", True)])
def test_serializable(dataset, arrays):
    data_source = source(dataset, arrays)
    iterator = data_source.iterator()
    iterator.select(len(data_source.schedule.steps[0].contributions))
    iterator.select(len(data_source.schedule.steps[1].contributions))

    iterator_bytes = iterator.to_bytes()
    actual_iterator = ScheduleDataSourceIterator.from_bytes(iterator_bytes)

    assert isinstance(iterator_bytes, bytes)
    assert actual_iterator is not iterator
    assert actual_iterator == iterator
    assert actual_iterator.federated_type == iterator.federated_type
    assert actual_iterator.next_step == 2
    # the restored iterator goes on with exactly the original's selections
    for step in data_source.schedule.steps[2:]:
        want, got = iterator.select(), actual_iterator.select()
        assert [c for c, _ in got] == [c for c, _ in want] == list(step.contributions)
        for (_, g), (_, w) in zip(got, want):
            tf.nest.map_structure(np.testing.assert_array_equal, as_arrays(g), as_arrays(w))
    assert actual_iterator == iterator


def test_iterators_at_other_steps_or_data_are_not_equal():
    data_source = source("digits", True)
    assert data_source.iterator(next_step=1) != data_source.iterator(next_step=2)
    assert data_source.iterator() != source("synthetic", True).iterator()
    with pytest.raises(ValueError, match="not the bytes"):
        ScheduleDataSourceIterator.from_bytes((9).to_bytes(8, "little") + b'{"a": 1}')


def test_the_command_lines_state_manager_keeps_tffs_contract(tmp_path):
    """``CheckpointStateManager`` (the command line's checkpoints as a ``tff.program``
    ``ProgramStateManager``): versions, load of any kept version, load_latest, missing version."""
    import asyncio

    from tff_experiments.program.checkpoints import CheckpointStateManager
    from tff_experiments.program.checkpoints import Checkpointer

    manager = CheckpointStateManager(Checkpointer(tmp_path, every=1, keep=3, config={"a": 1}))
    template = {"step": np.int64(0), "w": np.zeros(3, np.float32)}
    assert asyncio.run(manager.get_versions()) is None
    assert asyncio.run(manager.load_latest(template)) == (None, 0) and manager.resumed_from is None
    for version in (1, 2, 3):
        asyncio.run(manager.save({"step": np.int64(version), "w": np.full(3, version, np.float32)}, version))
    assert asyncio.run(manager.get_versions()) == [1, 2, 3]
    loaded = asyncio.run(manager.load(2, template))
    assert int(loaded["step"]) == 2 and np.array_equal(loaded["w"], np.full(3, 2, np.float32))
    latest, version = asyncio.run(manager.load_latest(template))
    assert version == 3 == manager.resumed_from and int(latest["step"]) == 3
    with pytest.raises(tff.program.ProgramStateNotFoundError):
        asyncio.run(manager.load(7, template))
