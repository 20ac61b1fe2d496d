"""Wall-clock per server step of the asynchronous processes relative to TFF's own FedAvg.

For each scheme, one server step of ``tff_experiments.asynchronous`` (the stale-model
``LearningProcess`` driven by ``AsynchronousDriver``: building the clients' inputs, their stale
models included, the TFF call, keeping the versions) is timed against one round of
``tff.learning.algorithms.build_weighted_fed_avg`` on the same clients, the same local batches
(the same ``LocalBatches`` datasets, built inside the timed loop for both) and the same model
and client optimizer. Server steps and rounds are interleaved so that machine noise hits both
alike; the figures are the ratio of the medians and the ratio of the best (fastest) steps, the
latter less sensitive to other load on a shared machine. Target (issue 4): <= 1.2x.

    .venv-tff/bin/python benchmarks/async_vs_tff_fedavg.py            # digits CNN, M=20, K=10, B=64
    .venv-tff/bin/python benchmarks/async_vs_tff_fedavg.py --steps 5 --model logistic
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tff_experiments.command_line.launch import start_command_line  # noqa: E402

start_command_line()  # stops TFF's worker_binary at exit, quiet TensorFlow: before it is imported

import tensorflow_federated as tff  # noqa: E402

from tff_experiments import models  # noqa: E402
from tff_experiments.asynchronous import (  # noqa: E402
    AsynchronousDriver, ClientTimes, LocalBatches, build_schedule, build_stale_model_process,
    client_importance)
from tff_experiments.data.digits import digits_client_data  # noqa: E402

SCHEMES = [("fedavg (20 clients/step)", "fedavg", {}),
           ("fedbuff c=5", "fedbuff", dict(buffer_size=5)),
           ("fedfix dt=0.5", "fedfix", dict(delta_t=0.5)),
           ("async (1 client/step)", "async", {})]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--local-steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=16, help="timed steps per scheme (after 2 warm-up)")
    parser.add_argument("--model", choices=("cnn", "logistic"), default="cnn")
    args = parser.parse_args()

    client_data, _ = digits_client_data(args.clients, alpha=0.1, seed=0)
    builder = models.digits_cnn if args.model == "cnn" else models.digits_logistic
    model_fn = models.tff_model_fn(builder, client_data.element_type_structure)
    client_optimizer = tff.learning.optimizers.build_sgdm(0.05, momentum=0.9)
    local = LocalBatches(client_data, args.local_steps, args.batch_size, seed=0)
    importance = client_importance("uniform", [1] * args.clients)
    times = ClientTimes.from_scenario(args.clients, "F-80")

    process = build_stale_model_process(model_fn, client_optimizer)
    fedavg = tff.learning.algorithms.build_weighted_fed_avg(
        model_fn, client_optimizer, client_weighting=tff.learning.ClientWeighting.UNIFORM)

    print(f"digits {args.model}, M={args.clients}, K={args.local_steps}, B={args.batch_size}; "
          f"median wall-clock per server step over {args.steps} steps")
    print(f"{'scheme':28s} {'clients/step':>12s} {'ours (s)':>10s} {'TFF FedAvg (s)':>15s} "
          f"{'ratio':>7s} {'best-step ratio':>16s}")
    ratios, best_ratios = [], []
    for label, algorithm, kwargs in SCHEMES:
        schedule = build_schedule(algorithm, times, args.steps + 3.0 if algorithm == "fedavg" else 200.0,
                                  importance, "weight", **kwargs)
        steps = [s for s in schedule.steps if s.contributions][: args.steps + 2]
        driver = AsynchronousDriver(process, schedule, local)
        run_state = driver.initial_state()
        tff_state = fedavg.initialize()
        ours, theirs = [], []
        for k, step in enumerate(steps):
            run_state = driver.run(run_state, stop=step.index)  # empty steps in between (FedFix)

            def ours_step():
                nonlocal run_state
                run_state, _ = driver.run_step(run_state)

            def tff_round():
                nonlocal tff_state
                data = [local.dataset(c.client, c.work_index) for c in step.contributions]
                tff_state = fedavg.next(tff_state, data).state

            # Alternate which goes first, so that neither always runs on a warmer machine.
            order = (ours_step, tff_round) if k % 2 == 0 else (tff_round, ours_step)
            elapsed = {}
            for fn in order:
                start = time.perf_counter()
                fn()
                elapsed[fn] = time.perf_counter() - start
            elapsed_ours, elapsed_theirs = elapsed[ours_step], elapsed[tff_round]
            if k >= 2:  # warm-up: tracing and the first call of each cardinality
                ours.append(elapsed_ours)
                theirs.append(elapsed_theirs)
        ratio = statistics.median(ours) / statistics.median(theirs)
        best_ratio = min(ours) / min(theirs)
        ratios.append(ratio)
        best_ratios.append(best_ratio)
        clients = statistics.mean(len(s.contributions) for s in steps[2:])
        print(f"{label:28s} {clients:12.1f} {statistics.median(ours):10.3f} "
              f"{statistics.median(theirs):15.3f} {ratio:6.2f}x {best_ratio:15.2f}x", flush=True)
    print(f"worst median ratio {max(ratios):.2f}x, worst best-step ratio {max(best_ratios):.2f}x "
          "(target <= 1.2x)")


if __name__ == "__main__":
    main()
