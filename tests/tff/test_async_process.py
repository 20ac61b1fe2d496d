"""The TFF stale-model process and the driver: synchronous FedAvg equals TFF's own
``build_weighted_fed_avg``; asynchronous schedules equal an independent NumPy simulation of the
authors' server rule with local SGD-momentum; a state restored mid-run ends where the
uninterrupted run ends."""
import collections

import numpy as np
import pytest

tff = pytest.importorskip("tensorflow_federated")
import tensorflow as tf  # noqa: E402

from tff_experiments.asynchronous import (  # noqa: E402
    AsynchronousDriver, ClientTimes, LocalBatches, build_schedule, build_stale_model_process,
    client_importance)
from tff_experiments.asynchronous.process import client_inputs  # noqa: E402
from tff_experiments.data.digits import digits_client_data  # noqa: E402

NUM_CLIENTS, LOCAL_STEPS, LR, MOMENTUM = 3, 3, 0.1, 0.9


def logistic_model_fn():
    keras_model = tf.keras.Sequential([
        tf.keras.layers.Flatten(input_shape=(8, 8, 1)),
        tf.keras.layers.Dense(10, kernel_initializer=tf.keras.initializers.GlorotUniform(seed=1)),
    ])
    return tff.learning.models.from_keras_model(
        keras_model,
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        input_spec={"x": tf.TensorSpec([None, 8, 8, 1], tf.float32),
                    "y": tf.TensorSpec([None], tf.int32)},
    )


def client_sgdm():
    return tff.learning.optimizers.build_sgdm(learning_rate=LR, momentum=MOMENTUM)


@pytest.fixture(scope="module")
def client_data():
    data, _ = digits_client_data(NUM_CLIENTS, alpha=0.5, seed=0)
    return data


@pytest.fixture(scope="module")
def process():
    return build_stale_model_process(logistic_model_fn, client_sgdm())


@pytest.fixture(scope="module")
def grouped_process():
    return build_stale_model_process(logistic_model_fn, client_sgdm(), clients_per_group=2)


def trainable(weights):
    return [np.asarray(w) for w in weights.trainable]


@pytest.mark.parametrize("importance,batch_size,weighting", [
    ("uniform", 16, tff.learning.ClientWeighting.UNIFORM),
    # batches larger than every client: each step sees all n_i examples, so TFF's
    # NUM_EXAMPLES weighting is n_i / n, the data-size importance.
    ("data-size", 1000, tff.learning.ClientWeighting.NUM_EXAMPLES),
])
def test_synchronous_fedavg_equals_tff_build_weighted_fed_avg(process, client_data, importance,
                                                              batch_size, weighting):
    local = LocalBatches(client_data, LOCAL_STEPS, batch_size, seed=5)
    p = client_importance(importance, [local.num_examples(i) for i in range(NUM_CLIENTS)])
    schedule = build_schedule("fedavg", ClientTimes.from_scenario(NUM_CLIENTS, "F-50"), 3.0, p)
    assert len(schedule) == 3
    ours = AsynchronousDriver(process, schedule, local).run()

    tff_fedavg = tff.learning.algorithms.build_weighted_fed_avg(
        logistic_model_fn, client_sgdm(), client_weighting=weighting)
    state = tff_fedavg.initialize()
    for n in range(3):
        state = tff_fedavg.next(state, [local.dataset(i, n) for i in range(NUM_CLIENTS)]).state
    want = trainable(tff_fedavg.get_model_weights(state))
    got = trainable(ours.process_state.global_model_weights)
    assert not np.allclose(want[0], trainable(process.initialize().global_model_weights)[0])
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def numpy_local_work(weights, x, y, batches):
    """K steps of SGD with momentum (PyTorch/TFF form: a = mu a + g; w -= lr a) on the mean
    softmax cross-entropy of a linear model, in float64."""
    kernel, bias = (w.astype(np.float64) for w in weights)
    acc_k, acc_b = np.zeros_like(kernel), np.zeros_like(bias)
    for rows in batches:
        xb = x[rows].reshape(len(rows), -1).astype(np.float64)
        logits = xb @ kernel + bias
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        probs[np.arange(len(rows)), y[rows]] -= 1.0
        g_k, g_b = xb.T @ probs / len(rows), probs.mean(axis=0)
        acc_k, acc_b = MOMENTUM * acc_k + g_k, MOMENTUM * acc_b + g_b
        kernel, bias = kernel - LR * acc_k, bias - LR * acc_b
    return [kernel, bias]


def numpy_simulation(schedule, local, initial, eta_g=1.0):
    """The authors' simu_async loop: every step, each aggregated client trains from the model
    it was sent; theta += eta_g * sum_i d_i (local_i - sent_i); the clients get theta."""
    models = {0: [w.astype(np.float64) for w in initial]}
    for step in schedule.steps:
        theta = [w.copy() for w in models[step.index]]
        for c in step.contributions:
            arrays = local.arrays(c.client)
            sent = models[c.sent_version]
            trained = numpy_local_work(sent, arrays["x"], arrays["y"],
                                       local.batch_indices(c.client, c.work_index))
            theta = [t + eta_g * c.weight * (l - s) for t, l, s in zip(theta, trained, sent)]
        models[step.index + 1] = theta
    return models[len(schedule)]


@pytest.mark.parametrize("algorithm,kwargs,policy", [
    ("async", {}, "weight"),
    ("fedbuff", dict(buffer_size=2), "identical"),
    ("fedfix", dict(delta_t=0.4), "weight"),
    ("fedbuff-keep-training", dict(buffer_size=2), "weight"),
])
@pytest.mark.parametrize("grouped", [False, True], ids=["per-client", "grouped"])
def test_stale_schedules_equal_numpy_simulation(process, grouped_process, client_data, algorithm, kwargs,
                                                policy, grouped):
    process = grouped_process if grouped else process
    local = LocalBatches(client_data, LOCAL_STEPS, batch_size=16, seed=2)
    schedule = build_schedule(algorithm, ClientTimes.from_scenario(NUM_CLIENTS, "F-60"), 2.0,
                              client_importance("uniform", [1] * NUM_CLIENTS), policy, **kwargs)
    assert any(max(s.staleness(), default=0) > 0 for s in schedule.steps), "no stale work to test"
    got = trainable(AsynchronousDriver(process, schedule, local).run().process_state.global_model_weights)
    want = numpy_simulation(schedule, local, trainable(process.initialize().global_model_weights))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-5)


def test_grouped_local_works_equal_tff_client_work_with_their_metrics(process, grouped_process, client_data):
    # 3 clients, groups of at most 2, two different stale models: every value and metric as
    # TFF's own client work gives it.
    local = LocalBatches(client_data, LOCAL_STEPS, batch_size=16, seed=2)
    start = process.initialize()
    other = process.next(start, client_inputs(process, local, [(start.global_model_weights, 0, 0, 1.0)])).state
    works = [(start.global_model_weights, 0, 1, 0.5), (other.global_model_weights, 1, 0, 0.25),
             (start.global_model_weights, 2, 0, 0.125)]
    want = process.next(other, client_inputs(process, local, works))
    inputs = client_inputs(grouped_process, local, works)
    assert [len(g["weight"]) for g in inputs] == [2, 1]
    got = grouped_process.next(other, inputs)
    for g, w in zip(trainable(got.state.global_model_weights), trainable(want.state.global_model_weights)):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)
    train_got, train_want = got.metrics["client_work"]["train"], want.metrics["client_work"]["train"]
    assert train_got["num_examples"] == train_want["num_examples"] == 3 * LOCAL_STEPS * 16
    np.testing.assert_allclose(train_got["loss"], train_want["loss"], rtol=1e-5)


@pytest.mark.parametrize("clients_per_group", [None, 4])
def test_a_step_without_clients_leaves_the_whole_state_unchanged(client_data, clients_per_group):
    # Server SGD with momentum: a zero update would still move the model by the momentum.
    momentum_process = build_stale_model_process(
        logistic_model_fn, client_sgdm(), tff.learning.optimizers.build_sgdm(1.0, momentum=0.9),
        clients_per_group=clients_per_group)
    local = LocalBatches(client_data, LOCAL_STEPS, batch_size=16, seed=2)
    state = momentum_process.initialize()
    works = [(state.global_model_weights, i, 0, 1 / 3) for i in range(NUM_CLIENTS)]
    state = momentum_process.next(state, client_inputs(momentum_process, local, works)).state
    assert np.abs(np.asarray(state.finalizer["accumulator"][0])).max() > 0
    # no client; and clients whose weights are all zero
    for works in ([], [(state.global_model_weights, 0, 1, 0.0)]):
        after = momentum_process.next(state, client_inputs(momentum_process, local, works)).state
        for a, b in zip(tf.nest.flatten(after), tf.nest.flatten(state)):
            np.testing.assert_array_equal(a, b)


def test_hparams_expose_client_and_server_learning_rates_as_tff_fedavg(process, client_data):
    server = tff.learning.optimizers.build_sgdm(learning_rate=1.0)
    fedavg = tff.learning.algorithms.build_weighted_fed_avg(
        logistic_model_fn, client_sgdm(), server_optimizer_fn=server)
    ours = process.get_hparams(process.initialize())
    theirs = fedavg.get_hparams(fedavg.initialize())
    assert tf.nest.map_structure(float, ours) == tf.nest.map_structure(float, theirs)
    assert ours["client_work"]["learning_rate"] == pytest.approx(LR)
    assert ours["finalizer"]["learning_rate"] == pytest.approx(1.0)
    # set_hparams: a server learning rate of 0.5 halves the step; a client rate of 0 stops it
    local = LocalBatches(client_data, LOCAL_STEPS, batch_size=16, seed=2)
    start = process.initialize()
    works = [(start.global_model_weights, 0, 0, 1.0)]
    full = process.next(start, client_inputs(process, local, works)).state
    hparams = tf.nest.map_structure(lambda x: x, ours)
    hparams["finalizer"]["learning_rate"] = np.float32(0.5)
    half = process.next(process.set_hparams(start, hparams), client_inputs(process, local, works)).state
    assert process.get_hparams(half)["finalizer"]["learning_rate"] == pytest.approx(0.5)
    for s, f, h in zip(trainable(start.global_model_weights), trainable(full.global_model_weights),
                       trainable(half.global_model_weights)):
        np.testing.assert_allclose(h - s, 0.5 * (f - s), rtol=1e-4, atol=1e-7)
    hparams["client_work"]["learning_rate"] = np.float32(0.0)
    frozen = process.next(process.set_hparams(start, hparams), client_inputs(process, local, works)).state
    for s, f in zip(trainable(start.global_model_weights), trainable(frozen.global_model_weights)):
        np.testing.assert_array_equal(s, f)


def test_restored_state_continues_exactly(process, client_data, tmp_path):
    local = LocalBatches(client_data, LOCAL_STEPS, batch_size=16, seed=2)
    schedule = build_schedule("async", ClientTimes.from_scenario(NUM_CLIENTS, "F-80", "exponential", seed=1),
                              2.5, client_importance("uniform", [1] * NUM_CLIENTS), "weight")
    driver = AsynchronousDriver(process, schedule, local)
    uninterrupted = driver.run()
    assert len(schedule) > 6
    half = driver.run(stop=len(schedule) // 2)
    manager = tff.program.FileProgramStateManager(str(tmp_path))
    import asyncio
    asyncio.run(manager.save(driver.to_program_state(half), version=half.next_step))
    loaded = asyncio.run(manager.load(half.next_step, driver.program_state_template()))
    resumed = driver.run(driver.from_program_state(loaded))
    assert resumed.next_step == uninterrupted.next_step
    for g, w in zip(trainable(resumed.process_state.global_model_weights),
                    trainable(uninterrupted.process_state.global_model_weights)):
        np.testing.assert_array_equal(g, w)


def test_program_logic_with_tff_program_components_resumes_exactly(grouped_process, client_data, tmp_path):
    process = grouped_process
    import asyncio

    from tff_experiments.asynchronous import ScheduleDataSource, train_asynchronous_model

    local = LocalBatches(client_data, LOCAL_STEPS, batch_size=16, seed=2)
    schedule = build_schedule("fedfix", ClientTimes.from_scenario(NUM_CLIENTS, "F-80"), 1.2,
                              client_importance("uniform", [1] * NUM_CLIENTS), "weight", delta_t=0.1)
    assert any(not s.contributions for s in schedule.steps), "no empty step to test"
    want = AsynchronousDriver(process, schedule, local).run()

    def run(directory, **kwargs):
        metrics, model = tff.program.MemoryReleaseManager(), tff.program.MemoryReleaseManager()
        done = asyncio.run(train_asynchronous_model(
            train_process=process, train_data_source=ScheduleDataSource(schedule, local, arrays=True),
            program_state_manager=tff.program.FileProgramStateManager(str(directory)),
            model_output_manager=model, train_metrics_manager=metrics, checkpoint_every=3, **kwargs))
        return done, dict(metrics.values()), dict(model.values())

    done, metrics, model = run(tmp_path / "whole")
    assert done == len(schedule) and sorted(metrics) == list(range(1, len(schedule) + 1))
    assert all(metrics[n + 1]["clients"] == len(s.contributions) for n, s in enumerate(schedule.steps))
    for g, w in zip(model["final_model"]["trainable"], trainable(want.process_state.global_model_weights)):
        np.testing.assert_array_equal(g, w)
    # killed after 4 steps (last checkpoint at 3 is not the stop: the stop saves too), rerun
    assert run(tmp_path / "resumed", stop_after=4)[0] == 4
    done, metrics, resumed = run(tmp_path / "resumed")
    assert done == len(schedule) and min(metrics) == 5
    for g, w in zip(resumed["final_model"]["trainable"], model["final_model"]["trainable"]):
        np.testing.assert_array_equal(g, w)


def test_the_run_keeps_one_model_per_version_in_flight_not_per_client(process):
    """Memory grows with the distinct global versions that work in flight started from (FedFix's
    clients that restart at the same tick share one), not with the clients."""
    clients = 24
    data, _ = digits_client_data(clients, alpha=0.5, seed=0)
    local = LocalBatches(data, 1, batch_size=16, seed=3)
    schedule = build_schedule("fedfix", ClientTimes.from_scenario(clients, "F-80", "exponential", seed=4),
                              3.0, client_importance("uniform", [1] * clients), delta_t=0.5)
    driver = AsynchronousDriver(process, schedule, local)
    run_state, most_clients, most_versions = driver.initial_state(), 0, 0
    while run_state.next_step < len(schedule):
        run_state, _ = driver.run_step(run_state)
        n = run_state.next_step
        in_flight = [(c.client, c.sent_version) for step in schedule.steps[n:] for c in step.contributions
                     if c.sent_version < n]  # local works started before step n, returned later
        assert set(run_state.versions) == {v for _, v in in_flight} | {n}
        most_clients = max(most_clients, len({client for client, _ in in_flight}))
        most_versions = max(most_versions, len(run_state.versions))
    assert most_versions == driver.version_slots < most_clients  # clients did share versions
