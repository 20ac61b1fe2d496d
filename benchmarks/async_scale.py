"""Client updates per second and peak memory of the asynchronous schemes at M = 100, 1,000,
10,000 clients, beside TFF's own ``build_weighted_fed_avg`` at the same clients per round.

Setting (issue 11): Synthetic(1, 1) (``tff_experiments.data.synthetic``), multinomial logistic
regression, scenario F-80, horizon 1, one local step of SGD on a batch of 10; FedFix
delta-t = 0.5, FedBuff c = 10, async FedAvg. Every configuration runs in its own process (so
that its peak memory is its own): data, schedule and process are built, one warm-up call traces
the TFF computation, then the server steps run until the horizon (FedFix: always) or
``--max-seconds`` of stepping. "updates/s" = local works aggregated / seconds of stepping (inputs built and the
stale versions kept included). "peak MB" is the largest resident memory of the process and
its TFF worker together over the whole run, setup included. TFF FedAvg runs rounds of the
scheme's mean clients per step (capped by ``--tff-max-clients``: its cost per client is flat in
the clients per round, so the cap changes the time a round takes, not the rate) with the same
data, model and optimizer.

    .venv-tff/bin/python benchmarks/async_scale.py                       # M = 100, 1000, 10000
    .venv-tff/bin/python benchmarks/async_scale.py --clients 100 300 --max-seconds 20
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


def _setup(num_clients, batch_size):
    import tensorflow_federated as tff

    from tff_experiments import models
    from tff_experiments.asynchronous import LocalBatches
    from tff_experiments.data.synthetic import synthetic_client_data

    client_data, _ = synthetic_client_data(num_clients, 1.0, 1.0, seed=0, test_clients=1)
    local = LocalBatches(client_data, local_steps=1, batch_size=batch_size, seed=0)
    model_fn = models.tff_model_fn(models.synthetic_logistic, client_data.element_type_structure)
    return tff, local, model_fn


def run_scheme(args):
    """One scheme at one M; prints a JSON line."""
    memory = PeakMemory()
    start = time.perf_counter()
    import tff_experiments  # noqa: F401  (reaps TFF's worker_binary at exit)
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
    run_state = driver.initial_state()
    w = run_state.process_state.global_model_weights
    process.next(process.initialize(), client_inputs(process, local, [(w, 0, 0, 0.0)]))  # trace
    setup = time.perf_counter() - start
    updates, steps = 0, 0
    begin = time.perf_counter()
    # FedFix has horizon / delta-t = 2 steps: always the whole run (the target)
    while run_state.next_step < len(schedule) and (
            args.scheme == "fedfix" or time.perf_counter() - begin < args.max_seconds):
        run_state, record = driver.run_step(run_state)
        updates += len(record.step.contributions)
        steps += 1
    seconds = time.perf_counter() - begin
    print(json.dumps(dict(
        scheme=args.scheme, m=args.m, steps=steps, total_steps=len(schedule), updates=updates,
        seconds=seconds, setup=setup, clients_per_step=updates / max(steps, 1),
        peak_mb=memory.stop() / 2**20)), flush=True)


def run_tff_fedavg(args):
    """TFF's build_weighted_fed_avg, rounds of ``args.round_clients`` clients; a JSON line."""
    memory = PeakMemory()
    import tff_experiments  # noqa: F401

    tff, local, model_fn = _setup(args.m, args.batch_size)
    fedavg = tff.learning.algorithms.build_weighted_fed_avg(
        model_fn, tff.learning.optimizers.build_sgdm(0.05),
        client_weighting=tff.learning.ClientWeighting.UNIFORM)
    state = fedavg.initialize()
    state = fedavg.next(state, [local.dataset(0, 0)]).state  # trace
    updates, rounds, n = 0, 0, args.round_clients
    begin = time.perf_counter()
    while rounds < 1 or time.perf_counter() - begin < args.max_seconds:
        clients = [(rounds * n + j) % args.m for j in range(n)]
        state = fedavg.next(state, [local.dataset(i, rounds) for i in clients]).state
        updates, rounds = updates + n, rounds + 1
    seconds = time.perf_counter() - begin
    print(json.dumps(dict(scheme="tff-fedavg", m=args.m, steps=rounds, updates=updates, seconds=seconds,
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
              "--max-seconds", args.max_seconds]
    print(f"Synthetic(1, 1), logistic, F-80, horizon {args.horizon:g}, 1 local step, batch {args.batch_size}; "
          f"clients_per_group {args.group}; at most {args.max_seconds:g} s of steps per row")
    print(f"{'scheme':9s} {'M':>6s} {'steps':>11s} {'clients/step':>12s} {'updates/s':>10s} {'setup s':>8s} "
          f"{'peak MB':>8s} | {'TFF clients/round':>17s} {'TFF updates/s':>13s} {'TFF peak MB':>11s} {'ours/TFF':>8s}",
          flush=True)
    rates = {}
    for scheme in args.schemes:
        for m in args.clients:
            ours = _child(["--worker", scheme, "--m", m] + common, args.timeout)
            per_round = max(1, min(args.tff_max_clients, round(ours["clients_per_step"])))
            theirs = _child(["--worker", "tff-fedavg", "--m", m, "--round-clients", per_round] + common,
                            args.timeout)
            rate, tff_rate = ours["updates"] / ours["seconds"], theirs["updates"] / theirs["seconds"]
            rates[scheme, m] = rate
            steps = f"{ours['steps']}/{ours['total_steps']}"
            print(f"{scheme:9s} {m:6d} {steps:>11s} {ours['clients_per_step']:12.1f} {rate:10.1f} "
                  f"{ours['setup']:8.1f} {ours['peak_mb']:8.0f} | {per_round:17d} {tff_rate:13.1f} "
                  f"{theirs['peak_mb']:11.0f} {rate / tff_rate:7.1f}x", flush=True)
    low, high = min(args.clients), max(args.clients)
    for scheme in args.schemes:
        if (scheme, low) in rates and (scheme, high) in rates:
            print(f"{scheme}: cost per update at M={high} / at M={low}: "
                  f"{rates[scheme, low] / rates[scheme, high]:.2f}x (target <= 1.2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
