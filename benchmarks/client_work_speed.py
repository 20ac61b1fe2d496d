"""Local work speed of a grouped stale-model process: its groups run as a loop over the clients
vs as batched computations, beside a plain NumPy loop over the clients doing the same local
work on the same batches.

FedFix as ``benchmarks/async_scale.py`` runs it: M = 10,000 clients of Synthetic(1, 1), scenario
F-80, delta-t = 0.5, horizon 1, multinomial logistic regression, one local SGD step (learning
rate 0.05) on a batch of 10, ``clients_per_group`` 256. The batches of every local work are drawn
first (``LocalBatches``, the same for every row); then each row runs the whole horizon again
and again until ``--min-seconds``, the rows taking turns for ``--rounds`` rounds (a shared
machine's load falls on all of them alike). A process row times ``AsynchronousDriver.run_step``
with the drawn batches: packing the groups, ``process.next``, keeping the stale versions. The
NumPy row runs the same steps: each client's K SGD steps from the version it was sent, in
float32, then :math:`\\theta \\mathrel{+}= \\sum_i d_i (\\theta_i - \\theta^{\\rho_i})`.
"updates/s" = local works / seconds of all rounds; "CPU ms/upd" = CPU seconds of the process
and its TFF ``worker_binary`` per local work. Then the digits CNN
(``tff_experiments.models.digits_cnn``), FedFix at ``--cnn-clients`` clients of the digits
data: the loop vs the batched group work.

    .venv-tff/bin/python benchmarks/client_work_speed.py
    .venv-tff/bin/python benchmarks/client_work_speed.py --clients 1000 --rounds 2 --min-seconds 1
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

LEARNING_RATE = 0.05


def cpu_seconds():
    """CPU time (user + system) of this process and its children (TFF's worker_binary)."""
    import psutil

    total = 0.0
    for p in [psutil.Process()] + psutil.Process().children(recursive=True):
        try:
            times = p.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def fedfix_setting(client_data, num_clients, batch_size):
    """``(schedule, drawn batches {(client, work index): arrays}, local batches)``: FedFix over
    ``client_data``, one local step on a batch of ``batch_size``."""
    from tff_experiments.asynchronous import ClientTimes, LocalBatches, build_schedule, client_importance

    local = LocalBatches(client_data, local_steps=1, batch_size=batch_size, seed=0)
    schedule = build_schedule("fedfix", ClientTimes.from_scenario(num_clients, "F-80"), 1.0,
                              client_importance("uniform", [1] * num_clients), "weight", delta_t=0.5)
    batches = {(c.client, c.work_index): local.batch_arrays(c.client, c.work_index)
               for step in schedule.steps for c in step.contributions}
    return schedule, batches, local


def build_processes(model_fn, group):
    """``{'loop': process, 'batched': process}``, both ``build_stale_model_process`` with groups."""
    import tensorflow_federated as tff

    from tff_experiments.asynchronous import build_stale_model_process
    from tff_experiments.asynchronous.batched_model import batched_model

    if batched_model(model_fn) is None:
        raise SystemExit("the model does not take the batched path")
    return {name: build_stale_model_process(model_fn, tff.learning.optimizers.build_sgdm(LEARNING_RATE),
                                            clients_per_group=group, batched_groups=name == "batched")
            for name in ("loop", "batched")}


def process_run(process, schedule, batches, local):
    """A no-argument function running the whole schedule with ``process`` on the drawn batches;
    it returns ``(local works, final trainable weights)``."""
    from tff_experiments.asynchronous import AsynchronousDriver

    driver = AsynchronousDriver(process, schedule, local)
    initial = driver.initial_state()

    def run():
        run_state, updates = initial, 0
        while run_state.next_step < len(schedule):
            step = schedule.steps[run_state.next_step]
            works = [(c, batches[c.client, c.work_index]) for c in step.contributions]
            run_state, _ = driver.run_step(run_state, works)
            updates += len(works)
        return updates, [np.asarray(w) for w in driver.model_weights(run_state).trainable]

    return run


def transfer_run(process, schedule, batches, initial):
    """The same steps' groups packed and handed to a TFF computation that only sums their
    inputs: what moving a step's data through TFF's runtime costs, whatever the group work."""
    import tensorflow as tf
    import tensorflow_federated as tff

    from tff_experiments.asynchronous.process import pack_client_values

    clients_type = process.next.type_signature.parameter[1]

    @tff.tensorflow.computation(clients_type.member)
    def inputs_sum(group):
        return tf.add_n([tf.reduce_sum(tf.cast(t, tf.float32)) for t in tf.nest.flatten(group)])

    @tff.federated_computation(clients_type)
    def move(groups):
        return tff.federated_sum(tff.federated_map(inputs_sum, groups))

    def run():
        versions, updates = {}, 0
        for step in schedule.steps:  # one model object per version, as the driver keeps them
            works = [(versions.setdefault(c.sent_version, initial.__class__(*initial)),
                      batches[c.client, c.work_index], c.weight) for c in step.contributions]
            move(pack_client_values(process, works))
            updates += len(works)
        return updates, None

    return run


def numpy_run(schedule, batches, initial):
    """The same FedFix steps as a plain NumPy loop over the clients (float32)."""

    def run():
        versions, updates = {0: [np.asarray(w, np.float32) for w in initial]}, 0
        for step in schedule.steps:
            theta = [w.copy() for w in versions[step.index]]
            for c in step.contributions:
                sent = versions[c.sent_version]
                update = numpy_local_work(sent, batches[c.client, c.work_index])
                if all(np.isfinite(u).all() for u in update):
                    theta = [t - np.float32(c.weight) * u for t, u in zip(theta, update)]  # u = start - end
                updates += 1
            versions[step.index + 1] = theta
        return updates, versions[len(schedule)]

    return run


def numpy_local_work(weights, batches):
    """K SGD steps of multinomial logistic regression (mean softmax cross-entropy); the update
    start - end."""
    kernel, bias = weights
    for x, y in zip(batches["x"], batches["y"]):
        x = x.reshape(len(x), -1)
        logits = x @ kernel + bias
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(y)), y] -= 1
        kernel = kernel - np.float32(LEARNING_RATE / len(y)) * (x.T @ p)
        bias = bias - np.float32(LEARNING_RATE / len(y)) * p.sum(axis=0)
    return [weights[0] - kernel, weights[1] - bias]


def race(runs, rounds, min_seconds):
    """``{name: (updates, seconds, cpu seconds, final weights)}``: the runs take turns, each
    repeated until ``min_seconds`` per round, for ``rounds`` rounds (after one untimed run each)."""
    totals = {name: [0, 0.0, 0.0, run()[1]] for name, run in runs.items()}  # traces the computations
    for _ in range(rounds):
        for name, run in runs.items():
            begin, cpu = time.perf_counter(), cpu_seconds()
            while True:
                updates, _ = run()
                totals[name][0] += updates
                if time.perf_counter() - begin >= min_seconds:
                    break
            totals[name][1] += time.perf_counter() - begin
            totals[name][2] += cpu_seconds() - cpu
    return totals


def report(title, totals):
    """Prints one row per run; returns ``{name: updates/s}``."""
    print(title)
    print(f"  {'':16s} {'updates/s':>10s} {'CPU ms/upd':>10s} {'local works':>12s}")
    rates = {}
    for name, (updates, seconds, cpu, _) in totals.items():
        rates[name] = updates / seconds
        print(f"  {name:16s} {rates[name]:10.0f} {1000 * cpu / updates:10.3f} {updates:12d}")
    finals = [t[3] for t in totals.values() if t[3] is not None]
    same = all(np.allclose(a, b, rtol=1e-4, atol=1e-5) for f in finals[1:] for a, b in zip(finals[0], f))
    print(f"  same final model in every row: {'yes' if same else 'NO'}")
    return rates


def synthetic_rows(args):
    from tff_experiments import models
    from tff_experiments.data.synthetic_federated import synthetic_client_data

    client_data, _ = synthetic_client_data(args.clients, 1.0, 1.0, seed=0, test_clients=1)
    schedule, batches, local = fedfix_setting(client_data, args.clients, args.batch_size)
    model_fn = models.tff_model_fn(models.synthetic_logistic, client_data.element_type_structure)
    processes = build_processes(model_fn, args.group)
    runs = {name: process_run(p, schedule, batches, local) for name, p in processes.items()}
    if args.big_group:
        big = build_processes(model_fn, args.big_group)["batched"]
        runs[f"batched G={args.big_group}"] = process_run(big, schedule, batches, local)
    initial = processes["loop"].initialize().global_model_weights
    runs["transfer"] = transfer_run(processes["batched"], schedule, batches, initial)
    runs["numpy"] = numpy_run(schedule, batches, initial.trainable)
    rates = report(f"Synthetic(1, 1), logistic, FedFix at M = {args.clients} ({len(batches)} local works a run), "
                   f"1 SGD step on a batch of {args.batch_size}, groups of {args.group}:",
                   race(runs, args.rounds, args.min_seconds))
    print(f"  batched / loop: {rates['batched'] / rates['loop']:.2f}x; "
          f"batched / NumPy: {rates['batched'] / rates['numpy']:.2f}x (target >= 1); "
          f"transfer / NumPy: {rates['transfer'] / rates['numpy']:.2f}x")


def cnn_rows(args):
    from tff_experiments import models
    from tff_experiments.data.digits import digits_client_data

    client_data, _ = digits_client_data(args.cnn_clients, alpha=1.0, seed=0)
    schedule, batches, local = fedfix_setting(client_data, args.cnn_clients, args.batch_size)
    model_fn = models.tff_model_fn(models.digits_cnn, client_data.element_type_structure)
    processes = build_processes(model_fn, args.group)
    runs = {name: process_run(p, schedule, batches, local) for name, p in processes.items()}
    rates = report(f"digits, digits_cnn, FedFix at M = {args.cnn_clients} ({len(batches)} local works a run), "
                   f"1 SGD step on a batch of {args.batch_size}:", race(runs, args.rounds, args.min_seconds))
    print(f"  batched / loop: {rates['batched'] / rates['loop']:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10000)
    parser.add_argument("--cnn-clients", type=int, default=200, help="clients of the digits CNN rows (0: none)")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--group", type=int, default=256, help="clients_per_group of the processes")
    parser.add_argument("--big-group", type=int, default=1024,
                        help="clients_per_group of one more batched row (0: none)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-seconds", type=float, default=3.0, help="per row and round")
    args = parser.parse_args()
    from tff_experiments.runtime import install_reaper

    install_reaper()  # stops TFF's worker_binary at exit
    synthetic_rows(args)
    if args.cnn_clients:
        cnn_rows(args)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
