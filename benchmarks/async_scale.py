"""Client updates per second and peak memory of the asynchronous schemes at M = 100, 1,000,
10,000 clients, beside TFF's own ``build_weighted_fed_avg`` at the same clients per round.

Setting (issue 11): Synthetic(1, 1) (``tff_experiments.data.synthetic``), multinomial logistic
regression, scenario F-80, horizon 1, one local step of SGD on a batch of 10; FedFix
delta-t = 0.5, FedBuff c = 10, async FedAvg. Every configuration runs in its own process (so
that its peak memory is its own): data, schedule and process are built, one warm-up call traces
the TFF computation, then the server steps run until the horizon or ``--max-seconds`` of
stepping (FedFix: always the whole horizon, run again from the start until ``--min-seconds``).
"updates/s" = local works aggregated / seconds of stepping (inputs built and the stale versions
kept included); "CPU ms/upd" = CPU seconds of the process and its TFF workers over those steps
per update, the figure a shared machine's load does not inflate. "peak MB" is the largest
resident memory of the process and its TFF workers together over the whole run, setup
included. ``--workers 1 2`` runs each row on 1, then 2, TFF executor services (``worker_binary``
on localhost ports, started and stopped by the row: ``tff_experiments.workers.remote``)
instead of TFF's local runtime. TFF FedAvg runs rounds of the
scheme's mean clients per step (capped by ``--tff-max-clients``: its cost per client is flat in
the clients per round, so the cap changes the time a round takes, not the rate) with the same
data, model and optimizer.

    .venv-tff/bin/python benchmarks/async_scale.py                       # M = 100, 1000, 10000
    .venv-tff/bin/python benchmarks/async_scale.py --clients 100 300 --max-seconds 20
    .venv-tff/bin/python benchmarks/async_scale.py --schemes fedfix --clients 1000 --workers 1 2 --skip-tff
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SCHEMES = {"fedfix": dict(delta_t=0.5), "fedbuff": dict(buffer_size=10), "async": {}}


class PeakMemory:
    """Samples the resident memory of this process and its children (TFF's worker_binary)."""

    def __init__(self, every=0.05):
        import psutil

        self._process, self._every, self.peak = psutil.Process(), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        import psutil

        while not self._stop.is_set():
            total = 0
            for p in [self._process] + self._process.children(recursive=True):
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self._every)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peak

    def cpu_seconds(self):
        """CPU time (user + system) so far of this process and its children (TFF's worker):
        on a shared machine, the figure that load does not inflate."""
        import psutil

        total = 0.0
        for p in [self._process] + self._process.children(recursive=True):
            try:
                times = p.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
        return total


def _setup(num_clients, batch_size):
    import tensorflow_federated as tff

    from tff_experiments import models
    from tff_experiments.asynchronous import LocalBatches
    from tff_experiments.data.synthetic_federated import synthetic_client_data

    client_data, _ = synthetic_client_data(num_clients, 1.0, 1.0, seed=0, test_clients=1)
    local = LocalBatches(client_data, local_steps=1, batch_size=batch_size, seed=0)
    model_fn = models.tff_model_fn(models.synthetic_logistic, client_data.element_type_structure)
    return tff, local, model_fn


def run_scheme(args):
    """One scheme at one M (on ``--workers`` localhost TFF worker services if > 0); prints a JSON
    line."""
    import contextlib

    memory = PeakMemory()
    start = time.perf_counter()
    from tff_experiments.runtime import install_reaper

    install_reaper()  # stops TFF's worker_binary at exit
    from tff_experiments.asynchronous import (AsynchronousDriver, ClientTimes, build_schedule,
                                              build_stale_model_process, client_importance)
    from tff_experiments.asynchronous.process import client_inputs

    tff, local, model_fn = _setup(args.m, args.batch_size)
    times = ClientTimes.from_scenario(args.m, "F-80")
    schedule = build_schedule(args.scheme, times, args.horizon, client_importance("uniform", [1] * args.m),
                              "weight", **SCHEMES[args.scheme])
    process = build_stale_model_process(model_fn, tff.learning.optimizers.build_sgdm(0.05),
                                        clients_per_group=args.group)
    driver = AsynchronousDriver(process, schedule, local)
    with contextlib.ExitStack() as stack:
        workers = args.workers[0]
        if workers:  # the same run on TFF executor services (worker_binary) on localhost ports
            from tff_experiments.workers.remote import local_worker_services, remote_execution

            stack.enter_context(remote_execution(stack.enter_context(local_worker_services(workers))))
        initial = driver.initial_state()
        w = initial.process_state.global_model_weights
        process.next(process.initialize(), client_inputs(process, local, [(w, 0, 0, 0.0)]))  # trace
        setup = time.perf_counter() - start
        updates, steps, runs = 0, 0, 0
        begin, cpu_begin = time.perf_counter(), memory.cpu_seconds()
        # FedFix has horizon / delta-t = 2 steps: always the whole run (the target), again
        # from the start until --min-seconds of steps (a few hundred updates are too short to time).
        while runs == 0 or (args.scheme == "fedfix" and time.perf_counter() - begin < args.min_seconds):
            run_state, runs = initial, runs + 1
            while run_state.next_step < len(schedule) and (
                    args.scheme == "fedfix" or time.perf_counter() - begin < args.max_seconds):
                run_state, record = driver.run_step(run_state)
                updates += len(record.step.contributions)
                steps += 1
        seconds, cpu = time.perf_counter() - begin, memory.cpu_seconds() - cpu_begin
    print(json.dumps(dict(
        scheme=args.scheme, m=args.m, steps=steps // runs, total_steps=len(schedule), updates=updates, runs=runs,
        seconds=seconds, cpu_seconds=cpu, setup=setup, clients_per_step=updates / max(steps, 1),
        workers=workers, peak_mb=memory.stop() / 2**20)), flush=True)


def run_tff_fedavg(args):
    """TFF's build_weighted_fed_avg, rounds of ``args.round_clients`` clients; a JSON line."""
    memory = PeakMemory()
    from tff_experiments.runtime import install_reaper

    install_reaper()  # stops TFF's worker_binary at exit

    tff, local, model_fn = _setup(args.m, args.batch_size)
    fedavg = tff.learning.algorithms.build_weighted_fed_avg(
        model_fn, tff.learning.optimizers.build_sgdm(0.05),
        client_weighting=tff.learning.ClientWeighting.UNIFORM)
    state = fedavg.initialize()
    state = fedavg.next(state, [local.dataset(0, 0)]).state  # trace
    updates, rounds, n = 0, 0, args.round_clients
    begin, cpu_begin = time.perf_counter(), memory.cpu_seconds()
    while rounds < 1 or time.perf_counter() - begin < args.max_seconds:
        clients = [(rounds * n + j) % args.m for j in range(n)]
        state = fedavg.next(state, [local.dataset(i, rounds) for i in clients]).state
        updates, rounds = updates + n, rounds + 1
    seconds, cpu = time.perf_counter() - begin, memory.cpu_seconds() - cpu_begin
    print(json.dumps(dict(scheme="tff-fedavg", m=args.m, steps=rounds, updates=updates, seconds=seconds,
                          cpu_seconds=cpu,
                          clients_per_step=n, peak_mb=memory.stop() / 2**20)), flush=True)


def _child(argv, timeout):
    command = [sys.executable, os.path.abspath(__file__)] + [str(a) for a in argv]
    with open(os.devnull, "rb") as stdin:
        done = subprocess.run(command, stdin=stdin, capture_output=True, text=True, timeout=timeout)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--schemes", nargs="+", default=list(SCHEMES), choices=list(SCHEMES))
    parser.add_argument("--horizon", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--group", type=int, default=256, help="clients_per_group of the process")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="stepping time per configuration")
    parser.add_argument("--tff-max-clients", type=int, default=300)
    parser.add_argument("--skip-tff", action="store_true", help="leave out TFF's FedAvg rows")
    parser.add_argument("--min-seconds", type=float, default=5.0,
                        help="FedFix: run the whole horizon again until this much stepping time (default 5)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0],
                        help="numbers of localhost TFF worker services (worker_binary) to run our schemes on, "
                             "a row each; 0: TFF's local runtime (default 0)")
    parser.add_argument("--timeout", type=float, default=900.0, help="per configuration")
    parser.add_argument("--worker", choices=list(SCHEMES) + ["tff-fedavg"], help=argparse.SUPPRESS)
    parser.add_argument("--m", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--round-clients", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "tff-fedavg":
        return run_tff_fedavg(args)
    if args.worker:
        args.scheme = args.worker
        return run_scheme(args)

    common = ["--horizon", args.horizon, "--batch-size", args.batch_size, "--group", args.group,
              "--max-seconds", args.max_seconds, "--min-seconds", args.min_seconds]
    print(f"Synthetic(1, 1), logistic, F-80, horizon {args.horizon:g}, 1 local step, batch {args.batch_size}; "
          f"clients_per_group {args.group}; at most {args.max_seconds:g} s of steps per row")
    print(f"{'scheme':9s} {'M':>6s} {'steps':>11s} {'clients/step':>12s} {'updates/s':>10s} {'CPU ms/upd':>10s} "
          f"{'setup s':>8s} {'peak MB':>8s} | {'TFF clients/round':>17s} {'TFF updates/s':>13s} "
          f"{'TFF CPU ms/upd':>14s} {'TFF peak MB':>11s} {'ours/TFF':>8s}", flush=True)
    rates, cpu_costs = {}, {}
    for scheme in args.schemes:
        for m in args.clients:
            for workers in args.workers:
                ours = _child(["--worker", scheme, "--m", m, "--workers", workers] + common, args.timeout)
                rate = ours["updates"] / ours["seconds"]
                rates[scheme, m, workers] = rate
                cpu_costs[scheme, m, workers] = 1000 * ours["cpu_seconds"] / ours["updates"]
                steps = f"{ours['steps']}/{ours['total_steps']}"
                label = scheme + (f" w{workers}" if workers else "")
                row = (f"{label:9s} {m:6d} {steps:>11s} {ours['clients_per_step']:12.1f} {rate:10.1f} "
                       f"{cpu_costs[scheme, m, workers]:10.2f} {ours['setup']:8.1f} {ours['peak_mb']:8.0f} |")
                if not args.skip_tff and workers == args.workers[0]:
                    per_round = max(1, min(args.tff_max_clients, round(ours["clients_per_step"])))
                    theirs = _child(["--worker", "tff-fedavg", "--m", m, "--round-clients", per_round] + common,
                                    args.timeout)
                    tff_rate = theirs["updates"] / theirs["seconds"]
                    row += (f" {per_round:17d} {tff_rate:13.1f} "
                            f"{1000 * theirs['cpu_seconds'] / theirs['updates']:14.2f} "
                            f"{theirs['peak_mb']:11.0f} {rate / tff_rate:7.1f}x")
                print(row, flush=True)
    low, high = min(args.clients), max(args.clients)
    for scheme in args.schemes:
        for workers in args.workers:
            if (scheme, low, workers) in rates and (scheme, high, workers) in rates and low != high:
                print(f"{scheme}{f' on {workers} worker(s)' if workers else ''}: cost per update at M={high} / "
                      f"at M={low}: wall {rates[scheme, low, workers] / rates[scheme, high, workers]:.2f}x, "
                      f"CPU {cpu_costs[scheme, high, workers] / cpu_costs[scheme, low, workers]:.2f}x (target <= 1.2x)")
        for m in args.clients:
            if len(args.workers) > 1:
                print(f"{scheme} M={m}: updates/s " + ", ".join(
                    f"{rates[scheme, m, w]:.1f} ({f'{w} worker' + 's' * (w > 1) if w else 'local runtime'})"
                    for w in args.workers))
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
