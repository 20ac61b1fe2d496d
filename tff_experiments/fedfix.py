r"""Asynchronous federated learning from the command line: FedAvg, async FedAvg, FedFix, FedBuff.

    python -m tff_experiments.fedfix --algorithm fedfix --delta-t 0.5 --dataset digits \
        --clients 20 --scenario F-80 --horizon 200 --local-steps 10 --client-optimizer sgdm \
        --out runs/x

Fraboni, Vidal, Kameni, Lorenzi, JMLR 2023 (arXiv 2206.10189). The clients' times follow the
scenario (``F-X``: the fastest client X% faster than the slowest) on a virtual clock up to the
horizon; the server aggregates per the algorithm, each client's work starting from the (stale)
model it was sent: :math:`\theta \leftarrow \theta + \eta_g \sum_{i \in S_n} d_i
(\theta_i^{local} - \theta_i^{sent})`. The local work and the server update run in TFF
(``tff_experiments.asynchronous``).

The output folder holds ``metrics.csv`` and ``tensorboard/`` (loss and accuracy on held-out
data, the federated and surrogate objectives on the clients' data, over virtual time and
server steps), ``events.csv`` (per server step: virtual time, clients aggregated, their
staleness and weights), ``checkpoints/`` and ``model/`` (``model.keras`` and a SavedModel).
Run the same command again after a crash or kill: it resumes from the last checkpoint and ends
exactly where an uninterrupted run ends.
"""
import json
import math
import sys

from tff_experiments.program.errors import CliArgumentParser, UsageError, run_cli

ALGORITHMS = ("fedavg", "async", "fedfix", "fedbuff", "fedbuff-keep-training")
DATASETS = ("digits", "shakespeare", "emnist", "cifar10", "cifar100")
OPTIMIZERS = ("sgd", "sgdm", "adam", "adabelief", "diffgrad")
# Settings that do not change the result: a resume may change them.
_NOT_IN_CONFIG = ("out", "progress", "workers", "checkpoint_every")


def build_parser():
    parser = CliArgumentParser(
        prog="python -m tff_experiments.fedfix",
        description="Synchronous FedAvg, asynchronous FedAvg, FedFix and FedBuff (Fraboni et al., "
                    "JMLR 2023) in TensorFlow Federated, on a virtual clock.",
        epilog="Re-running the same command with the same --out resumes a killed run exactly.",
    )
    scheme = parser.add_argument_group("algorithm")
    scheme.add_argument("--algorithm", required=True, choices=ALGORITHMS,
                        help="fedavg: all clients every round (a round lasts as long as the slowest); "
                             "async: every returning client alone; fedfix: every --delta-t, whoever is back; "
                             "fedbuff: the --buffer-size earliest returns (they wait); "
                             "fedbuff-keep-training: Nguyen et al.'s FedBuff, clients restart at once")
    scheme.add_argument("--policy", default="weight", choices=("weight", "identical"),
                        help="aggregation weights d_i: 'weight' makes every scheme optimize the federated "
                             "objective sum_i p_i F_i (async: sum_j(1/tau_j) tau_i p_i; fedfix: "
                             "ceil(tau_i/dt) p_i; fedbuff: p_i / participation rate); 'identical': 1/|S_n| "
                             "(default: weight)")
    scheme.add_argument("--delta-t", type=float, help="FedFix: virtual time between aggregations (> 0)")
    scheme.add_argument("--buffer-size", type=int, help="FedBuff: number of updates per aggregation (c)")
    scheme.add_argument("--server-lr", type=float, default=1.0, help="eta_g, the server learning rate (default 1)")
    scheme.add_argument("--server-optimizer", default="sgd", choices=OPTIMIZERS,
                        help="applied to -sum_i d_i (local_i - sent_i) (default: sgd, the paper's update)")

    clock = parser.add_argument_group("clients and virtual time")
    clock.add_argument("--clients", type=int, default=20, help="number of clients M (default 20)")
    clock.add_argument("--scenario", default="F-80",
                       help="F-X: client i's mean time tau_i = 1 - i (X/100)/(M-1), client 0 slowest at 1 "
                            "(default F-80)")
    clock.add_argument("--client-times", default="fixed", choices=("fixed", "exponential", "lognormal"),
                       help="each local work lasts tau_i (fixed, the paper) or a seeded random draw of "
                            "mean tau_i (default fixed)")
    clock.add_argument("--time-sigma", type=float, default=0.5,
                       help="log-standard-deviation of lognormal times (default 0.5)")
    clock.add_argument("--horizon", type=float, default=200.0, help="virtual time T to run until (default 200)")
    clock.add_argument("--importance", default="uniform", choices=("uniform", "data-size"),
                       help="client importance p_i in the federated objective (default uniform)")

    local = parser.add_argument_group("local work")
    local.add_argument("--local-steps", type=int, default=10, help="K optimizer steps per local work (default 10)")
    local.add_argument("--batch-size", type=int, default=64, help="examples per local step (default 64)")
    local.add_argument("--client-optimizer", default="sgdm", choices=OPTIMIZERS,
                       help="sgdm: SGD with momentum 0.9 (the authors' default); adabelief, diffgrad: "
                            "keras_optim's, as TFF optimizers (default sgdm)")
    local.add_argument("--client-lr", type=float, default=None,
                       help="local learning rate (default: 0.05 for sgd/sgdm, 0.001 for the adaptive ones)")

    data = parser.add_argument_group("data and model")
    data.add_argument("--dataset", default="digits", choices=DATASETS,
                      help="digits: scikit-learn digits split by Dirichlet(--alpha); shakespeare: one client "
                           "per speaking role (bash scripts/fetch_data.sh first); emnist, cifar10, cifar100: "
                           "downloaded by TFF/TFDS (internet needed) (default digits)")
    data.add_argument("--alpha", type=float, default=0.1,
                      help="Dirichlet concentration of the digits/cifar10 label split, >= 0; 0 = one class "
                           "per client (default 0.1)")
    data.add_argument("--model", default=None, choices=("cnn", "logistic", "rnn"),
                      help="digits: cnn (default) or logistic; shakespeare: rnn")
    data.add_argument("--seed", type=int, default=0, help="seeds the split, model, batches and random times")

    run = parser.add_argument_group("run")
    run.add_argument("--out", required=True, help="output folder (resumes the run found there)")
    run.add_argument("--eval-every", type=float, default=None,
                     help="evaluate the global model every this much virtual time (default horizon/50)")
    run.add_argument("--checkpoint-every", type=int, default=100, help="checkpoint every N server steps (default 100)")
    run.add_argument("--workers", default=None,
                     help="comma-separated host:port of TFF executor services (worker_binary) to run the "
                          "clients on; default: the local TFF runtime")
    run.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="force the progress bar (default: shown on a terminal)")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    return parser


def check_arguments(args):
    """Raises ``UsageError`` (one line) for input the run cannot use."""
    def positive(name, value):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise UsageError(f"--{name} must be > 0, got {value}")

    if args.algorithm == "fedfix":
        if args.delta_t is None:
            raise UsageError("--algorithm fedfix needs --delta-t")
        positive("delta-t", args.delta_t)
    elif args.delta_t is not None:
        raise UsageError(f"--delta-t is FedFix's; --algorithm {args.algorithm} does not take it")
    if args.algorithm.startswith("fedbuff"):
        if args.buffer_size is None:
            raise UsageError(f"--algorithm {args.algorithm} needs --buffer-size")
        if args.buffer_size < 1:
            raise UsageError(f"--buffer-size must be >= 1, got {args.buffer_size}")
        if args.algorithm == "fedbuff" and args.buffer_size > args.clients:
            raise UsageError(f"--buffer-size {args.buffer_size} is larger than --clients {args.clients}")
    elif args.buffer_size is not None:
        raise UsageError(f"--buffer-size is FedBuff's; --algorithm {args.algorithm} does not take it")
    if args.clients < 1:
        raise UsageError(f"--clients must be >= 1, got {args.clients}")
    for name in ("horizon", "server_lr", "time_sigma", "eval_every"):
        positive(name.replace("_", "-"), getattr(args, name))
    if args.client_lr is not None and not args.client_lr >= 0:
        raise UsageError(f"--client-lr must be >= 0, got {args.client_lr}")
    if args.local_steps < 1 or args.batch_size < 1 or args.checkpoint_every < 1:
        raise UsageError("--local-steps, --batch-size and --checkpoint-every must be >= 1")
    if not (args.alpha >= 0 and math.isfinite(args.alpha)):
        raise UsageError(f"--alpha must be a finite number >= 0, got {args.alpha}")
    from tff_experiments.asynchronous.client_times import scenario_mean_times

    try:
        scenario_mean_times(args.clients, args.scenario)
    except ValueError as error:
        raise UsageError(f"--scenario: {error}") from None
    model = args.model or {"shakespeare": "rnn"}.get(args.dataset, "cnn")
    allowed = {"digits": ("cnn", "logistic"), "shakespeare": ("rnn",)}.get(args.dataset, ("cnn",))
    if model not in allowed:
        raise UsageError(f"--model {model} does not fit --dataset {args.dataset} (use {' or '.join(allowed)})")
    args.model = model
    if args.client_lr is None:
        args.client_lr = 0.05 if args.client_optimizer in ("sgd", "sgdm") else 0.001
    if args.workers is not None:
        args.workers = [w.strip() for w in args.workers.split(",") if w.strip()]
        if not args.workers or any(":" not in w for w in args.workers):
            raise UsageError("--workers takes host:port[,host:port...]")
    return args


def build_optimizer(name, learning_rate):
    import tensorflow_federated as tff

    from tff_experiments import tff_optimizers

    if name == "sgd":
        return tff.learning.optimizers.build_sgdm(learning_rate=learning_rate)
    if name == "sgdm":
        return tff.learning.optimizers.build_sgdm(learning_rate=learning_rate, momentum=0.9)
    if name == "adam":
        return tff.learning.optimizers.build_adam(learning_rate=learning_rate)
    if name == "adabelief":
        return tff_optimizers.build_adabelief(learning_rate=learning_rate)
    return tff_optimizers.build_diffgrad(learning_rate=learning_rate)


def image_cnn(input_shape, num_classes, seed=0):
    """A small CNN for EMNIST/CIFAR images: two conv (32, 64) + max-pool blocks, dense 128."""
    import tensorflow as tf

    seeds = [seed * 7 + i for i in range(4)]
    glorot = tf.keras.initializers.GlorotUniform
    return tf.keras.Sequential([
        tf.keras.Input(shape=input_shape),
        tf.keras.layers.Conv2D(32, 3, activation="relu", kernel_initializer=glorot(seeds[0])),
        tf.keras.layers.MaxPooling2D(2),
        tf.keras.layers.Conv2D(64, 3, activation="relu", kernel_initializer=glorot(seeds[1])),
        tf.keras.layers.MaxPooling2D(2),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(128, activation="relu", kernel_initializer=glorot(seeds[2])),
        tf.keras.layers.Dense(num_classes, kernel_initializer=glorot(seeds[3])),
    ], name="image_cnn")


def load_data(args):
    """``(client_data, client_ids, (x_test, y_test), keras_builder)`` for ``args.dataset``."""
    import functools

    import numpy as np

    from tff_experiments import models

    if args.dataset == "digits":
        from tff_experiments.data.digits import digits_client_data

        client_data, test = digits_client_data(args.clients, args.alpha, seed=args.seed)
        builder = models.digits_cnn if args.model == "cnn" else models.digits_logistic
        return client_data, client_data.client_ids, test, builder
    if args.dataset == "shakespeare":
        from tff_experiments.data.shakespeare import shakespeare_client_data

        client_data, test = shakespeare_client_data(max_clients=args.clients, seed=args.seed)
        if len(client_data.client_ids) < args.clients:
            raise UsageError(f"--clients {args.clients}: Shakespeare has only {len(client_data.client_ids)} "
                             "speaking roles with enough text")
        return client_data, client_data.client_ids, test, models.char_rnn
    from tff_experiments.data import real

    if args.dataset == "cifar10":
        client_data, test = real.cifar10_client_data(args.clients, args.alpha, seed=args.seed)
        return client_data, client_data.client_ids, test, functools.partial(image_cnn, (32, 32, 3), 10)
    if args.dataset == "emnist":
        train, test_data = real.emnist_client_data()
        shape, classes = (28, 28, 1), 10
    else:
        train, test_data = real.cifar100_client_data()
        shape, classes = (32, 32, 3), 100
    if len(train.client_ids) < args.clients:
        raise UsageError(f"--clients {args.clients}: {args.dataset} has only {len(train.client_ids)} clients")
    chosen = sorted(np.random.default_rng(args.seed).choice(len(train.client_ids), args.clients, replace=False))
    ids = [train.client_ids[i] for i in chosen]
    test = real.client_data_to_arrays(test_data, max_examples=10000)
    return train, ids, test, functools.partial(image_cnn, shape, classes)


def run_config(args):
    return {k: v for k, v in sorted(vars(args).items()) if k not in _NOT_IN_CONFIG}


def main(argv=None):
    args = check_arguments(build_parser().parse_args(argv))
    import contextlib
    from pathlib import Path

    import tff_experiments  # noqa: F401  (reaps TFF's worker_binary at exit)
    from tff_experiments import models
    from tff_experiments.asynchronous import (AsynchronousDriver, ClientTimes, LocalBatches,
                                              build_schedule, build_stale_model_process,
                                              client_importance)
    from tff_experiments.asynchronous.evaluation import GlobalEvaluator
    from tff_experiments.program import VirtualTimeProgress, run_paths
    from tff_experiments.program.checkpoints import Checkpointer
    from tff_experiments.program.export import export_keras_and_savedmodel
    from tff_experiments.program.metrics import EventLog, MetricsLogger

    client_data, client_ids, test, builder = load_data(args)
    local = LocalBatches(client_data, args.local_steps, args.batch_size, seed=args.seed, client_ids=client_ids)
    importance = client_importance(args.importance, [local.num_examples(i) for i in range(local.num_clients)])
    times = ClientTimes.from_scenario(args.clients, args.scenario, args.client_times, args.time_sigma, args.seed)
    schedule = build_schedule(args.algorithm, times, args.horizon, importance, args.policy,
                              delta_t=args.delta_t, buffer_size=args.buffer_size)
    if not len(schedule):
        raise UsageError(f"no server step fits in --horizon {args.horizon}: raise it")
    element_spec = client_data.element_type_structure
    process = build_stale_model_process(
        models.tff_model_fn(builder, element_spec, seed=args.seed),
        build_optimizer(args.client_optimizer, args.client_lr),
        build_optimizer(args.server_optimizer, args.server_lr),
    )
    driver = AsynchronousDriver(process, schedule, local)
    large = args.dataset != "digits"
    evaluate = GlobalEvaluator(
        builder, [local.arrays(i) for i in range(local.num_clients)], importance, test,
        surrogate=schedule.effective_importance(), seed=args.seed,
        max_test_examples=5000 if large else None, max_examples_per_client=100 if large else None)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpointer = Checkpointer(out, every=args.checkpoint_every, config=run_config(args))
    saved, saved_step = checkpointer.load_latest(driver.program_state_template())
    run_state = driver.from_program_state(saved) if saved is not None else driver.initial_state()
    resume = saved_step if saved is not None else None
    metrics = MetricsLogger(out, resume_step=resume)
    events = EventLog(out, ["step", "time", "clients", "sent_versions", "staleness", "weights", "train_loss"],
                      resume_step=resume)
    (out / "run.json").write_text(json.dumps({
        "command": " ".join(sys.argv), "config": run_config(args), "server_steps": len(schedule),
        "client_mean_times": times.mean_times.tolist(), "importance": importance.tolist(),
        "effective_importance": schedule.effective_importance().tolist(),
    }, indent=1))

    eval_every = args.eval_every or args.horizon / 50

    def time_at(steps_done):
        return schedule.steps[steps_done - 1].time if steps_done else 0.0

    def evaluation_due(steps_done):
        if steps_done in (0, len(schedule)):
            return True
        return math.floor(time_at(steps_done) / eval_every) > math.floor(time_at(steps_done - 1) / eval_every)

    def log_metrics(steps_done):
        values = evaluate(driver.model_weights(run_state))
        metrics.log(steps_done, values, time=time_at(steps_done))
        return values

    if resume is None:
        log_metrics(0)
        checkpointer.save(driver.to_program_state(run_state), 0)
    remote = contextlib.nullcontext()
    if args.workers:
        from tff_experiments.asynchronous.remote import remote_execution

        remote = remote_execution(args.workers)
    last = {}
    with remote, VirtualTimeProgress(args.horizon, initial=time_at(run_state.next_step),
                                      force=args.progress) as bar, metrics, events:
        while run_state.next_step < len(schedule):
            run_state, record = driver.run_step(run_state)
            done, step = run_state.next_step, record.step
            train = record.train_metrics["client_work"]["train"] if record.train_metrics else {}
            events.append(step=done, time=step.time, clients=[c.client for c in step.contributions],
                          sent_versions=[c.sent_version for c in step.contributions],
                          staleness=step.staleness(), weights=[c.weight for c in step.contributions],
                          train_loss=float(train["loss"]) if train else "")
            if evaluation_due(done):
                last = log_metrics(done)
            checkpointer.maybe_save(driver.to_program_state(run_state), done)
            bar.advance_to(step.time, step=done,
                           acc=f"{last.get('test_accuracy', float('nan')):.3f}")
    checkpointer.save(driver.to_program_state(run_state), run_state.next_step)
    paths = export_keras_and_savedmodel(builder, driver.model_weights(run_state), run_paths(out)["model"],
                                        seed=args.seed)
    final = {row["step"]: row for row in metrics.rows()}.get(len(schedule), {})
    print(f"{args.algorithm}: {len(schedule)} server steps to virtual time {time_at(len(schedule)):.2f}; "
          f"test accuracy {final.get('test_accuracy', float('nan')):.4f}, "
          f"federated loss {final.get('federated_loss', float('nan')):.4f}; model in {paths['saved_model']}")
    return 0


if __name__ == "__main__":
    run_cli(main)
