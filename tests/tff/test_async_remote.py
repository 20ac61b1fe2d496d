"""The simulation on TFF executor services (``worker_binary`` processes on localhost ports,
started and stopped here): the local result, bit for bit when no step is split across the
workers and to float rounding when one is; what each worker served; a lost worker ends the run
in one line, and the same command resumes once it is back."""
import json
import threading

import numpy as np
import portpicker
import pytest

tff = pytest.importorskip("tensorflow_federated")

from tests.tff import cli_runs  # noqa: E402
from tests.tff.test_async_process import logistic_model_fn  # noqa: E402
from tff_experiments.asynchronous import (  # noqa: E402
    AsynchronousDriver, ClientTimes, LocalBatches, build_schedule, build_stale_model_process,
    client_importance)
from tff_experiments.asynchronous import cli as asynchronous_cli  # noqa: E402
from tff_experiments.workers.remote import (  # noqa: E402
    local_worker_services, remote_execution, stop)
from tff_experiments.workers.service import start_worker_binary  # noqa: E402
from tff_experiments.command_line.errors import run_cli  # noqa: E402
from tff_experiments.data.digits import digits_client_data  # noqa: E402

CLIENTS = 6


def fedfix_driver(clients_per_group):
    """FedFix on 6 clients: steps of 1 and of 6 local works (F-50, delta t 0.5)."""
    client_data, _ = digits_client_data(CLIENTS, alpha=0.5, seed=0)
    local = LocalBatches(client_data, local_steps=2, batch_size=16, seed=0)
    schedule = build_schedule("fedfix", ClientTimes.from_scenario(CLIENTS, "F-50"), 1.5,
                              client_importance("uniform", [1] * CLIENTS), "weight", delta_t=0.5)
    assert max(len(s.contributions) for s in schedule.steps) == CLIENTS
    process = build_stale_model_process(logistic_model_fn, tff.learning.optimizers.build_sgdm(0.1, momentum=0.9),
                                        clients_per_group=clients_per_group)
    return AsynchronousDriver(process, schedule, local)


def final_weights(driver):
    return [np.asarray(w) for w in driver.run().process_state.global_model_weights.trainable]


@pytest.fixture(scope="module")
def addresses():
    with local_worker_services(2) as found:
        assert len(set(found)) == 2
        yield found


def test_unsplit_steps_give_the_local_result_bit_for_bit(addresses):
    driver = fedfix_driver(clients_per_group=256)  # every step is one group: one worker runs it
    want = final_weights(driver)
    with remote_execution(addresses) as usage:
        got = final_weights(driver)
    # the second worker ran no client: no step was split
    assert usage[addresses[0]]["groups"] > 0 and usage[addresses[1]]["groups"] == 0, usage
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_split_steps_give_the_local_result_to_float_rounding(addresses):
    driver = fedfix_driver(clients_per_group=2)  # steps of 6 works: 3 groups, shared 2 + 1
    want = final_weights(driver)
    with remote_execution(addresses) as usage:
        got = final_weights(driver)
    assert all(served["groups"] > 0 for served in usage.values()), f"a worker got no work: {usage}"
    for g, w in zip(got, want):
        # the sum of the groups' updates is reassociated (per worker, then merged): float32 rounding
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


def test_a_worker_back_within_the_wait_does_not_end_the_run():
    """Killed between two steps and started again on its port 2 s later: the next step waits for
    it (TFF repeats the call) and the run ends with the result of a run without the loss."""
    driver = fedfix_driver(clients_per_group=2)
    want = final_weights(driver)
    ports = [portpicker.pick_unused_port() for _ in range(2)]
    workers = [start_worker_binary(port) for port in ports]
    try:
        with remote_execution([f"localhost:{p}" for p in ports]) as usage:
            state = driver.run(stop=2)
            stop(workers[:1])
            restart = threading.Timer(2.0, lambda: workers.__setitem__(0, start_worker_binary(ports[0])))
            restart.start()
            got = [np.asarray(w) for w in driver.run(state).process_state.global_model_weights.trainable]
            restart.join()
        assert all(served["groups"] > 0 for served in usage.values()), usage
    finally:
        stop(workers)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


ASYNC_FLAGS = ["--algorithm", "async", "--model", "logistic", "--clients", "5", "--horizon", "1.5", "--local-steps", "2",
       "--batch-size", "16", "--eval-every", "1", "--no-progress", "--checkpoint-every", "2"]


def test_a_lost_worker_ends_the_run_in_one_line_and_the_rerun_resumes(tmp_path, capfd):
    reference = tmp_path / "local"
    with pytest.raises(SystemExit) as exit_info:
        run_cli(asynchronous_cli.main, ASYNC_FLAGS + ["--out", str(reference)])
    assert exit_info.value.code == 0, capfd.readouterr().err[-2000:]

    ports = [portpicker.pick_unused_port() for _ in range(2)]
    workers = [start_worker_binary(port) for port in ports]
    try:
        address = f"localhost:{ports[0]}"  # the worker of every step (one group each)
        out = tmp_path / "remote"
        args = ASYNC_FLAGS + ["--workers", ",".join(f"localhost:{p}" for p in ports), "--out", str(out)]
        stderr = cli_runs.lose_a_worker_then_resume("tff_experiments.asynchronous", args, out, workers, ports, step=2)
        cli_runs.assert_same_exported_weights(out, reference)  # one group a step: bit for bit
        served = json.loads((out / "run.json").read_text())["workers"]
        assert served[address]["groups"] > 0 and served[f"localhost:{ports[1]}"]["groups"] == 0, served
        assert f"localhost:{ports[1]} ran none of the clients' work" in stderr
    finally:
        stop(workers)
