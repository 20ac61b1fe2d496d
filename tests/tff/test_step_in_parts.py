"""A server step of a grouped process run in parts (``AsynchronousDriver(works_per_call=...)``:
``step_sums`` per part, ``apply_sums`` of their sum) equals the step in one ``next`` call, in
float64 (an SGD-momentum client, Adam server: the parts' sums feed a state-changing server
optimizer), with stale works, uneven parts, a part whose works all have weight zero, and the
metrics; the driver reads a part's batches only when it packs that part."""
import numpy as np
import pytest

tff = pytest.importorskip("tensorflow_federated")
import tensorflow as tf  # noqa: E402

from tff_experiments import models  # noqa: E402
from tff_experiments.asynchronous import (  # noqa: E402
    AsynchronousDriver, ClientTimes, LocalBatches, build_schedule, build_stale_model_process,
    client_importance)
from tff_experiments.asynchronous.local_data import StepWorks  # noqa: E402
from tff_experiments.asynchronous.process import pack_client_values  # noqa: E402
from tff_experiments.asynchronous.schedule import Contribution  # noqa: E402
from tff_experiments.data.digits import digits_client_data  # noqa: E402

CLIENTS, LOCAL_STEPS, BATCH, GROUP = 6, 2, 8, 2
DIGITS_SPEC = {"x": tf.TensorSpec((8, 8, 1), tf.float32), "y": tf.TensorSpec((), tf.int32)}


def float64_logistic(seed=0):
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy("float64")
    try:
        return models.digits_logistic(seed=seed)
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


@pytest.fixture(scope="module")
def setting():
    data, _ = digits_client_data(CLIENTS, alpha=0.5, seed=0)
    local = LocalBatches(data, LOCAL_STEPS, BATCH, seed=1)
    process = build_stale_model_process(
        models.tff_model_fn(float64_logistic, DIGITS_SPEC, seed=1),
        tff.learning.optimizers.build_sgdm(np.float64(0.05), momentum=np.float64(0.9)),
        tff.learning.optimizers.build_adam(0.01), clients_per_group=GROUP)
    # FedFix: steps of up to 6 works from a few stale versions
    schedule = build_schedule("fedfix", ClientTimes.from_scenario(CLIENTS, "F-80", "exponential", seed=2),
                              2.0, client_importance("uniform", [1] * CLIENTS), delta_t=0.5)
    return local, process, schedule


class CountingProcess:
    """``process`` with its calls counted."""

    def __init__(self, process):
        self.process, self.calls = process, []

    def __getattr__(self, name):
        attribute = getattr(self.process, name)
        if name in ("next", "step_sums", "apply_sums"):
            def counted(*args):
                self.calls.append(name)
                return attribute(*args)
            return counted
        return attribute


def run(local, process, schedule, works_per_call):
    counting = CountingProcess(process)
    driver = AsynchronousDriver(counting, schedule, local, works_per_call=works_per_call)
    run_state, records = driver.initial_state(), []
    while run_state.next_step < len(schedule):
        run_state, record = driver.run_step(run_state)
        records.append(record)
    return run_state, records, counting.calls


@pytest.mark.parametrize("works_per_call", [1, 3])
def test_a_step_in_parts_equals_the_step_in_one_call(setting, works_per_call):
    local, process, schedule = setting
    sizes = [len(s.contributions) for s in schedule.steps]
    assert max(sizes) > 3 and len(set(sizes)) > 2  # steps of one and of several parts
    want, want_records, want_calls = run(local, process, schedule, works_per_call=max(sizes))
    got, got_records, got_calls = run(local, process, schedule, works_per_call=works_per_call)
    assert set(want_calls) == {"next"}
    parts = sum(-(-size // works_per_call) for size in sizes if size > works_per_call)
    assert got_calls.count("step_sums") == parts > 0
    assert got_calls.count("apply_sums") == sum(size > works_per_call for size in sizes)
    assert want.process_state.global_model_weights.trainable[0].dtype == np.float64
    start = process.initialize().global_model_weights.trainable
    for s, g, w in zip(start, got.process_state.global_model_weights.trainable,
                       want.process_state.global_model_weights.trainable):
        assert np.abs(w - s).max() > 1e-3  # the run moved the model
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    # the server optimizer's state (Adam's moments and step count) too
    tf.nest.map_structure(lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12),
                          got.process_state.finalizer, want.process_state.finalizer)
    for g, w in zip(got_records, want_records):
        if w.train_metrics is None:
            assert g.train_metrics is None
            continue
        got_train, want_train = g.train_metrics["client_work"]["train"], w.train_metrics["client_work"]["train"]
        assert got_train["num_examples"] == want_train["num_examples"] > 0
        assert got_train["num_batches"] == want_train["num_batches"]
        for name in ("loss", "accuracy"):  # Keras metrics sum in float32, in another order
            np.testing.assert_allclose(got_train[name], want_train[name], rtol=1e-6)


def test_a_part_of_zero_weights_adds_nothing(setting):
    """Parts whose works all have weight 0 count no update; the step is the counted parts'."""
    local, process, _ = setting
    state = process.initialize()
    w = state.global_model_weights
    batches = local.batch_arrays
    counted = [(w, batches(i, 0), d) for i, d in [(0, 0.5), (1, 0.25)]]
    zero = [(w, batches(i, 0), 0.0) for i in (2, 3, 4)]
    whole = process.next(state, pack_client_values(process, counted + zero))
    parts = [process.step_sums(state, pack_client_values(process, items)) for items in (zero, counted)]
    total = tf.nest.map_structure(np.add, *parts)
    assert parts[0][1] == 0 and total[1] == 2
    got = process.apply_sums(state, *total)
    for g, want in zip(got.state.global_model_weights.trainable, whole.state.global_model_weights.trainable):
        np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-12)


def test_step_works_make_a_works_data_when_read():
    made = []

    def batches(client, work_index):
        made.append((client, work_index))
        return {"x": np.zeros((1, 2))}

    works = StepWorks([Contribution(client=i, sent_version=0, work_index=i + 1, weight=1.0) for i in range(5)],
                      batches)
    assert len(works) == 5 and made == []
    part = works[1:3]
    assert [c.client for c, _ in part] == [1, 2] and made == [(1, 2), (2, 3)]
    assert works[4][0].work_index == 5 and made[-1] == (4, 5)
