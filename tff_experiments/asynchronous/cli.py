r"""Asynchronous federated learning from the command line: FedAvg, async FedAvg, FedFix, FedBuff.

    python -m tff_experiments.asynchronous --algorithm fedfix --delta-t 0.5 --dataset digits \
        --clients 20 --scenario F-80 --horizon 200 --local-steps 10 --client-optimizer sgdm \
        --out runs/x

Fraboni, Vidal, Kameni, Lorenzi, JMLR 2023 (arXiv 2206.10189). The clients' times follow the
scenario (``F-X``: the fastest client X% faster than the slowest) on a virtual clock up to the
horizon; the server aggregates per the algorithm, each client's work starting from the (stale)
model it was sent: :math:`\theta \leftarrow \theta + \eta_g \sum_{i \in S_n} d_i
(\theta_i^{local} - \theta_i^{sent})`. The local work and the server update run in TFF
(``tff_experiments.asynchronous``); ``python -m tff_experiments.fedfix`` is the same command.

The output folder holds ``metrics.csv`` and ``tensorboard/`` (loss and accuracy on held-out
data, the federated and surrogate objectives on the clients' data, over virtual time and
server steps), ``events.csv`` (per server step: virtual time, clients aggregated, their
staleness and weights summed up), ``updates.csv`` (per client update: the step, the client, the
version it was sent, its staleness and weight), ``checkpoints/`` and ``model/`` (``model.keras`` and a SavedModel).
Run the same command again after a crash or kill: it resumes from the last checkpoint and ends
exactly where an uninterrupted run ends.
"""
import json
import shlex
import sys

from tff_experiments.asynchronous.schedule import POLICIES
from tff_experiments.asynchronous.settings import (ALGORITHMS, CLIENT_TIMES, DATASETS, MODELS, OPTIMIZERS,
                                                   PARTITIONS, AsynchronousSettings)
from tff_experiments.command_line.arguments import add_run_arguments, command_line_parser
from tff_experiments.command_line.launch import launch
from tff_experiments.data.real import needs_download
from tff_experiments.workers.flags import add_worker_arguments, check_workers, network_reason, run_on_workers

MODULE = "tff_experiments.asynchronous"


def build_parser():
    """The command line's ``argparse`` parser (its flags are ``AsynchronousSettings``' fields)."""
    parser = command_line_parser(MODULE, "Synchronous FedAvg, asynchronous FedAvg, FedFix and FedBuff (Fraboni et al., "
                                         "JMLR 2023) in TensorFlow Federated, on a virtual clock.")
    _add_algorithm_arguments(parser.add_argument_group("algorithm"))
    _add_client_arguments(parser.add_argument_group("clients and virtual time"))
    _add_local_work_arguments(parser.add_argument_group("local work"))
    _add_data_arguments(parser.add_argument_group("data and model"))
    run = add_run_arguments(parser, checkpoint_every=100, eval_every=(
        float, None, "evaluate the global model every this much virtual time (default horizon/50)"))
    add_worker_arguments(run)
    return parser


def _add_algorithm_arguments(scheme):
    scheme.add_argument("--algorithm", required=True, choices=ALGORITHMS,
                        help="fedavg: all clients every round (a round lasts as long as the slowest); "
                             "async: every returning client alone; fedfix: every --delta-t, whoever is back; "
                             "fedbuff: the --buffer-size earliest returns (they wait); "
                             "fedbuff-keep-training: Nguyen et al.'s FedBuff, clients restart at once")
    scheme.add_argument("--policy", default="weight", choices=POLICIES,
                        help="aggregation weights d_i: 'weight' makes every scheme optimize the federated "
                             "objective sum_i p_i F_i (async: sum_j(1/tau_j) tau_i p_i; fedfix: "
                             "ceil(tau_i/dt) p_i; fedbuff: p_i / participation rate; with --concurrency, p_i / "
                             "each client's expected updates per step); 'identical': 1/|S_n|; 'staleness': "
                             "FedBuff's s(tau)/|S_n|, s(tau) = 1/sqrt(1 + tau) (default: weight)")
    scheme.add_argument("--delta-t", type=float, help="FedFix: virtual time between aggregations (> 0)")
    scheme.add_argument("--buffer-size", type=int, help="FedBuff: number of updates per aggregation (c)")
    scheme.add_argument("--server-lr", type=float, default=1.0, help="eta_g, the server learning rate (default 1)")
    scheme.add_argument("--server-optimizer", default="sgd", choices=OPTIMIZERS,
                        help="applied to -sum_i d_i (local_i - sent_i) (default: sgd, the paper's update)")


def _add_client_arguments(clock):
    clock.add_argument("--clients", type=int, default=20, help="number of clients M, the population (default 20)")
    clock.add_argument("--concurrency", type=int, default=None,
                       help="C: at most C clients train at once; when one is done, a client drawn at random "
                            "(seeded by --seed) among those not training takes its place, from the current "
                            "model (FedBuff's setting, e.g. --clients 342477 --concurrency 1000; default: "
                            "every client always training)")
    clock.add_argument("--scenario", default="F-80",
                       help="F-X: client i's mean time tau_i = 1 - i (X/100)/(M-1), client 0 slowest at 1 "
                            "(default F-80)")
    clock.add_argument("--client-times", default="fixed", choices=CLIENT_TIMES,
                       help="each local work lasts tau_i (fixed, the paper) or a seeded random draw of "
                            "mean tau_i (default fixed)")
    clock.add_argument("--time-sigma", type=float, default=0.5,
                       help="log-standard-deviation of lognormal times (default 0.5)")
    clock.add_argument("--horizon", type=float, default=200.0, help="virtual time T to run until (default 200)")
    clock.add_argument("--importance", default="uniform", choices=("uniform", "data-size"),
                       help="client importance p_i in the federated objective (default uniform)")


def _add_local_work_arguments(local):
    local.add_argument("--local-steps", type=int, default=10, help="K optimizer steps per local work (default 10)")
    local.add_argument("--batch-size", type=int, default=64, help="examples per local step (default 64)")
    local.add_argument("--client-optimizer", default="sgdm", choices=OPTIMIZERS,
                       help="sgdm: SGD with momentum 0.9 (the authors' default); adabelief, diffgrad: "
                            "keras_optim's, as TFF optimizers (default sgdm)")
    local.add_argument("--clients-per-group", type=int, default=None,
                       help="local works per TFF client value; a server step's groups are what --workers "
                            "share, so a step of fewer groups than workers leaves workers idle: lower it to "
                            "split small steps (results then differ from an unsplit run by float rounding, "
                            "about 1e-7) (default: CLIENTS_PER_GROUP of tff_experiments.asynchronous.experiment; "
                            "run.json records the value used)")
    local.add_argument("--client-lr", type=float, default=None,
                       help="local learning rate (default: 0.05 for sgd/sgdm, 0.001 for the adaptive ones)")


def _add_data_arguments(data):
    data.add_argument("--dataset", default="digits", choices=DATASETS,
                      help="digits: scikit-learn digits; mnist: 5,000 MNIST images (4,000 to the clients, "
                           "1,000 held out; bash scripts/fetch_data.sh first); both split by --partition; "
                           "shakespeare: one client per speaking role (bash scripts/fetch_data.sh first); emnist, "
                           "cifar100: downloaded by TFF (internet needed, or a filled --cache-dir); cifar10: "
                           "TFDS' CIFAR-10, prepared once in --cache-dir (tfds build cifar10 --data_dir DIR); "
                           "synthetic: Synthetic(--synthetic-alpha, --synthetic-beta), generated, any number of "
                           "clients (default digits)")
    data.add_argument("--partition", default=None, choices=PARTITIONS,
                      help="how digits, mnist and cifar10 are split across the clients by label: dirichlet "
                           "(Dirichlet(--alpha) class proportions, distinct examples per client); fedfix-dirichlet "
                           "(the FedFix authors' code: Dirichlet(--alpha), examples drawn with replacement); "
                           "monna-dirichlet (the MoNNA authors' code); extreme (sorted by label, cut in equal "
                           "parts) (default: fedfix-dirichlet for mnist, dirichlet otherwise)")
    data.add_argument("--alpha", type=float, default=0.1,
                      help="Dirichlet concentration of the label split, >= 0; 0 = one class "
                           "per client (default 0.1)")
    data.add_argument("--synthetic-alpha", type=float, default=1.0,
                      help="synthetic: Synthetic(alpha, beta) of Li et al. (FedProx), the spread of the clients' "
                           "models (default 1)")
    data.add_argument("--synthetic-beta", type=float, default=1.0,
                      help="synthetic: the spread of the clients' feature means (default 1)")
    data.add_argument("--synthetic-iid", action="store_true",
                      help="synthetic: the IID variant (one model for all clients, features centered)")
    data.add_argument("--model", default=None, choices=sorted({m for models in MODELS.values() for m in models}),
                      help="; ".join(f"{d}: {' or '.join(m)}" for d, m in MODELS.items()) + " (default: the first)")
    data.add_argument("--seed", type=int, default=0, help="seeds the split, model, batches and random times")
    data.add_argument("--cache-dir", default=None,
                      help="emnist, cifar100: the folder of TFF's downloads, where emnist_all.sqlite / "
                           "cifar100.sqlite are read without the network (default ~/.tff); cifar10: the TFDS "
                           "data folder holding the prepared cifar10/ (default $TFDS_DATA_DIR or "
                           "~/tensorflow_datasets)")


def settings_from(argv=None):
    """The validated ``AsynchronousSettings`` of a command line (one-line ``UsageError`` if bad)."""
    return AsynchronousSettings(**vars(build_parser().parse_args(argv)))


def main(argv=None, isolate=False):
    """The command line; ``isolate``: run in a private namespace (``python -m`` does)."""
    settings = settings_from(argv)
    if settings.workers:
        check_workers(settings.workers, settings.tls)  # before anything is written
    needs = [network_reason(settings.workers, settings.tls)]
    if needs_download(settings.dataset, settings.cache_dir):
        needs.append(f"downloading {settings.dataset} into the cache")
    reason = " and ".join(n for n in needs if n) or None
    return launch(run, settings, module=MODULE, argv=argv, isolate=isolate, network_needed_for=reason)


def run(settings, out):
    """Runs (or resumes) the experiment of ``settings`` into the output folder ``out``."""
    from tff_experiments.asynchronous.experiment import AsynchronousExperiment
    from tff_experiments.program.metrics import read_metrics
    from tff_experiments.program.output_folder import train_in_folder
    from tff_experiments.program.run_dir import json_safe, run_paths
    from tff_experiments.program.sync import run_sync

    experiment = AsynchronousExperiment(settings)
    command = shlex.join(["python", "-m", MODULE, *sys.argv[1:]])
    description = {"command": command, "config": settings.as_dict(), **experiment.description()}
    description = json_safe(description)
    (out / "run.json").write_text(json.dumps(description, indent=1, allow_nan=False))
    with run_on_workers(settings.workers, settings.tls, out / "run.json", description) as usage:
        run_sync(train_in_folder(experiment, out, checkpoint_every=settings.checkpoint_every,
                                 progress=settings.progress))
    if usage is not None:
        _warn_about_idle_workers(usage, experiment)
    rows = read_metrics(run_paths(out)["metrics"])
    final = {row["step"]: row for row in rows}.get(experiment.num_steps, {})
    print(f"{settings.algorithm}: {experiment.num_steps} server steps to virtual time "
          f"{experiment.clock(experiment.num_steps):.2f}; test accuracy {final.get('test_accuracy', float('nan')):.4f}, "
          f"federated loss {final.get('federated_loss', float('nan')):.4f}; model in {run_paths(out)['model'] / 'saved_model'}")
    return 0


def _warn_about_idle_workers(usage, experiment):
    from tff_experiments.command_line.launch import warn

    idle = [address for address, served in usage.items() if not served["groups"]]
    if idle:
        warn(f"{', '.join(idle)} ran none of the clients' work: each worker takes whole groups of up to "
             f"--clients-per-group {experiment.clients_per_group} local works, and no server step had enough groups "
             "for every worker; lower --clients-per-group to split the steps")
