"""The same simulation on TFF executor services (two worker_binary processes on localhost
ports, started and stopped here) gives the result of the local run."""
import numpy as np
import pytest

tff = pytest.importorskip("tensorflow_federated")

from tests.tff.test_async_process import logistic_model_fn  # noqa: E402
from tff_experiments.asynchronous import (  # noqa: E402
    AsynchronousDriver, ClientTimes, LocalBatches, build_schedule, build_stale_model_process,
    client_importance)
from tff_experiments.asynchronous.remote import local_worker_services, remote_execution  # noqa: E402
from tff_experiments.data.digits import digits_client_data  # noqa: E402


def test_two_worker_services_give_the_local_result():
    client_data, _ = digits_client_data(4, alpha=0.5, seed=0)
    local = LocalBatches(client_data, local_steps=2, batch_size=16, seed=0)
    schedule = build_schedule("fedbuff", ClientTimes.from_scenario(4, "F-50"), 2.0,
                              client_importance("uniform", [1] * 4), "weight", buffer_size=2)
    process = build_stale_model_process(
        logistic_model_fn, tff.learning.optimizers.build_sgdm(0.1, momentum=0.9))
    driver = AsynchronousDriver(process, schedule, local)
    stop = min(len(schedule), 4)
    want = driver.run(stop=stop).process_state.global_model_weights.trainable

    with local_worker_services(2) as addresses:
        assert len(set(addresses)) == 2
        with remote_execution(addresses) as calls:
            got = driver.run(stop=stop).process_state.global_model_weights.trainable
    assert set(calls) == set(addresses), f"a worker got no work: {calls}"
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-6, atol=1e-7)
