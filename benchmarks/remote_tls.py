"""What mutual TLS costs a run on TFF executor services: client updates per second of FedFix at
M clients on two workers reached through plain gRPC (``worker_binary`` on localhost ports), then
on two workers reached only through mutual TLS (``python -m tff_experiments.asynchronous.worker``,
certificates made for the run), same process, same data, same schedule; prints both rates and
their ratio.

Setting: Synthetic(1, 1), multinomial logistic regression, scenario F-80, horizon 1, one local
step of SGD on a batch of 10, FedFix delta-t = 0.5 (``benchmarks/async_scale.py``'s), the
command line's group size (``CLIENTS_PER_GROUP``). One warm-up step traces the computation; then
the whole horizon runs again until ``--min-seconds`` of stepping. "CPU ms/upd": CPU seconds of
this process and its children (the workers) per update, which a shared machine's load inflates
less than the wall-clock rate.

    .venv-tff/bin/python benchmarks/remote_tls.py --clients 1000
"""
import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _cpu_seconds():
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += sum(child.cpu_times()[:2])
    return total


def _tls_workers(stack, folder):
    import portpicker

    from tests.tff.certificates import make_certificates
    from tests.tff.tls_workers import start_tls_worker, stop_tls_worker
    from tff_experiments.asynchronous.tls import MutualTls

    certificates = make_certificates(folder)
    addresses = []
    for _ in range(2):
        port = portpicker.pick_unused_port()
        worker = start_tls_worker(port, certificates)
        stack.callback(stop_tls_worker, worker)
        addresses.append(f"localhost:{port}")
    return addresses, MutualTls(certificates["ca"], certificates["driver_cert"], certificates["driver_key"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--min-seconds", type=float, default=20.0, help="of stepping per row (default 20)")
    args = parser.parse_args()
    from tff_experiments.runtime import install_reaper

    install_reaper()
    import tensorflow_federated as tff

    from tff_experiments import models
    from tff_experiments.asynchronous import (AsynchronousDriver, ClientTimes, LocalBatches, build_schedule,
                                              build_stale_model_process, client_importance)
    from tff_experiments.asynchronous.experiment import CLIENTS_PER_GROUP
    from tff_experiments.asynchronous.remote import local_worker_services, remote_execution
    from tff_experiments.data.synthetic_federated import synthetic_client_data

    m = args.clients
    client_data, _ = synthetic_client_data(m, 1.0, 1.0, seed=0, test_clients=1)
    local = LocalBatches(client_data, local_steps=1, batch_size=10, seed=0)
    model_fn = models.tff_model_fn(models.synthetic_logistic, client_data.element_type_structure)
    schedule = build_schedule("fedfix", ClientTimes.from_scenario(m, "F-80"), 1.0,
                              client_importance("uniform", [1] * m), "weight", delta_t=0.5)
    process = build_stale_model_process(model_fn, tff.learning.optimizers.build_sgdm(0.05),
                                        clients_per_group=CLIENTS_PER_GROUP)
    driver = AsynchronousDriver(process, schedule, local)
    print(f"FedFix, M = {m}: {len(schedule)} steps of {[len(s.contributions) for s in schedule.steps]} local works, "
          f"groups of {CLIENTS_PER_GROUP}, two workers")
    print(f"{'channels':10} {'updates/s':>10} {'CPU ms/upd':>11} {'updates':>8} {'seconds':>8}")
    rates = {}
    for name in ("plain", "TLS"):
        with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as folder:
            if name == "plain":
                addresses, tls = stack.enter_context(local_worker_services(2)), None
            else:
                addresses, tls = _tls_workers(stack, Path(folder))
            usage = stack.enter_context(remote_execution(addresses, tls=tls))
            driver.run(stop=1)  # traces the computation on the workers
            updates, begin, cpu = 0, time.perf_counter(), _cpu_seconds()
            while updates == 0 or time.perf_counter() - begin < args.min_seconds:
                run_state = driver.initial_state()
                while run_state.next_step < len(schedule):
                    run_state, record = driver.run_step(run_state)
                    updates += len(record.step.contributions)
            seconds, cpu = time.perf_counter() - begin, _cpu_seconds() - cpu
            assert all(served["groups"] for served in usage.values()), f"a worker got no work: {usage}"
        rates[name] = updates / seconds
        print(f"{name:10} {rates[name]:10.0f} {1000 * cpu / updates:11.2f} {updates:8d} {seconds:8.1f}", flush=True)
    print(f"TLS / plain updates per second: {rates['TLS'] / rates['plain']:.2f}x")


if __name__ == "__main__":
    main()
