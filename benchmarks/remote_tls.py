"""What mutual TLS costs a run on TFF executor services: client updates per second of FedFix at
M clients on two workers reached through plain gRPC (``worker_binary`` on localhost ports) and
on two workers reached only through mutual TLS (``python -m tff_experiments.workers``,
certificates made for the run); same process, data and schedule, the two in turns (the whole
horizon each time, until each has ``--min-seconds`` of stepping, so that both see the same
drift of a shared machine's load); prints both rates and their ratios.

Setting: Synthetic(1, 1), multinomial logistic regression, scenario F-80, horizon 1, one local
step of SGD on a batch of 10, FedFix delta-t = 0.5 (``benchmarks/async_scale.py``'s), the
command line's group size (``CLIENTS_PER_GROUP``). One warm-up step on each set of workers
traces the computation. "CPU ms/upd": CPU seconds of this process and its children (both sets
of workers) per update, which a shared machine's load inflates less than the wall-clock rate.

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
    from tff_experiments.workers.tls import MutualTls

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
    from tff_experiments.workers.remote import local_worker_services, remote_context
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
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as folder:
        plain = stack.enter_context(local_worker_services(2))
        secure, tls = _tls_workers(stack, Path(folder))
        modes = {"plain": remote_context(plain), "TLS": remote_context(secure, tls=tls)}
        totals = {name: [0, 0.0, 0.0] for name in modes}  # updates, seconds, CPU seconds
        for name, (context, _) in modes.items():
            with tff.framework.get_context_stack().install(context):
                driver.run(stop=1)  # traces the computation on these workers
        # the two modes in turns, the whole horizon each time: a shared machine's load drifts
        # over minutes, and both modes see the same drift
        while min(seconds for _, seconds, _ in totals.values()) < args.min_seconds:
            for name, (context, _) in modes.items():
                with tff.framework.get_context_stack().install(context):
                    begin, cpu = time.perf_counter(), _cpu_seconds()
                    run_state = driver.initial_state()
                    while run_state.next_step < len(schedule):
                        run_state, record = driver.run_step(run_state)
                        totals[name][0] += len(record.step.contributions)
                    totals[name][1] += time.perf_counter() - begin
                    totals[name][2] += _cpu_seconds() - cpu
        for name, (_, usage) in modes.items():
            assert all(served["groups"] for served in usage.values()), f"a {name} worker got no work: {usage}"
    rates = {}
    for name, (updates, seconds, cpu) in totals.items():
        rates[name] = updates / seconds
        print(f"{name:10} {rates[name]:10.0f} {1000 * cpu / updates:11.2f} {updates:8d} {seconds:8.1f}")
    print(f"TLS / plain updates per second: {rates['TLS'] / rates['plain']:.2f}x; CPU per update: "
          f"{totals['TLS'][2] / totals['TLS'][0] / (totals['plain'][2] / totals['plain'][0]):.2f}x")


if __name__ == "__main__":
    main()
