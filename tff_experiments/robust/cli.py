r"""Byzantine-robust peer-to-peer learning from the command line: MoNNA and its baselines.

    python -m tff_experiments.robust --machines 26 --byzantine 5 --rule nna --momentum 0.99 \
        --attack alie --alpha 1 --steps 600 --out runs/monna-alie

Farhadkhani, Guerraoui, Gupta, Hoang, Pinot, Stephan, "Robust Collaborative Learning with Linear
Gradient Overhead", ICML 2023, as the authors' ``peerToPeer.py`` runs it: every honest machine
takes a momentum half step :math:`\theta_j - \gamma_t m_j` on its own data, the machines
exchange models, the :math:`f` Byzantine machines send what the attack says, and each honest
machine mixes what it received with the rule (``nna``: average of the nearest ones, MoNNA with
``--momentum 0.99``, NNA with 0). The honest machines are TFF clients with their own state
(``tff_experiments.robust``); ``python -m tff_experiments.monna`` is the same command.

The output folder holds ``metrics.csv`` and ``tensorboard/`` (mean and worst honest test
accuracy, spread between honest models, wall seconds and gradients per step),
``checkpoints/``, ``model/`` (one honest machine's ``model.keras`` and SavedModel) and
``summary.json``, and ``run.json`` (the command, the settings and, with ``--workers``, what each
worker served). Run the same command again after a crash or kill: it resumes from the last
checkpoint and ends exactly where an uninterrupted run ends.

With ``--workers host:port,...`` the honest machines' steps run on TFF executor services
(``python -m tff_experiments.workers``, through mutual TLS with ``--tls-ca/--tls-cert/--tls-key``),
each worker a contiguous share of the machines; the models are the same as on the local runtime,
bit for bit (the server orders the gathered messages by machine).
"""
import json
import shlex
import sys

from tff_experiments.command_line.arguments import add_run_arguments, command_line_parser
from tff_experiments.command_line.launch import launch
from tff_experiments.program.run_dir import json_safe
from tff_experiments.robust.choices import ATTACK_NAMES, MODELS, RECEPTIONS, RULE_NAMES
from tff_experiments.robust.settings import DATASETS, PARTITIONS, RobustSettings
from tff_experiments.workers.flags import add_worker_arguments, check_workers, network_reason, run_on_workers

MODULE = "tff_experiments.robust"


def build_parser():
    parser = command_line_parser(MODULE, "MoNNA and Byzantine-robust peer-to-peer learning (Farhadkhani et al., "
                                         "ICML 2023) in TensorFlow Federated, on scikit-learn digits or MNIST.")
    machines = parser.add_argument_group("machines and attack")
    machines.add_argument("--machines", dest="num_machines", metavar="N", type=int, default=26, help="n, all machines (default 26, the authors' MNIST)")
    machines.add_argument("--byzantine", dest="num_byzantine", metavar="F", type=int, default=5,
                          help="f, Byzantine machines among them, 0 <= f < n/2; the rule tolerates as many (default 5)")
    machines.add_argument("--attack", default=None, choices=ATTACK_NAMES,
                          help="what the Byzantine machines send, knowing the honest models: sign_flipping (-mean), "
                               "alie (mean + z std), foe (mean - z mean), label_flipping (a step on labels 9-y), "
                               "mimic (a copy of one honest machine); none when f = 0 (default: alie, or none if f = 0)")
    machines.add_argument("--attack-factor", type=float, default=None,
                          help="z of alie/foe (default: the authors' line search of the z that hurts the rule most, "
                               "every step)")
    machines.add_argument("--mimic-target", type=int, default=0, help="honest machine copied by mimic (default 0)")

    rule = parser.add_argument_group("mixing rule")
    rule.add_argument("--rule", default="nna", choices=RULE_NAMES,
                      help="nna: mean of the nearest received models (MoNNA/NNA); average: D-SGD; trimmed_mean: "
                           "MoCWTM/BRIDGE; median: coordinate-wise; geometric_median: MoGM; centered_clipping: SCC; "
                           "krum (default nna)")
    rule.add_argument("--reception", default="authors", choices=RECEPTIONS,
                      help="authors: each machine receives n-f models (its own, n-2f-1 random honest, the f "
                           "Byzantine) and nna keeps n-2f; all: it receives all n and nna keeps n-f, as byzfl's "
                           "MoNNA (default authors)")
    rule.add_argument("--clip-threshold", type=float, default=2.0, help="centered_clipping tau (default 2, the authors')")
    rule.add_argument("--clip-iterations", type=int, default=3, help="centered_clipping L (default 3, the authors')")
    rule.add_argument("--krum-plain-distances", dest="krum_squared", action="store_false",
                      help="krum scores with plain distances, as the MoNNA authors' code (default: squared, as the paper)")

    optim = parser.add_argument_group("local steps")
    optim.add_argument("--momentum", type=float, default=0.99,
                       help="beta of m <- beta m + (1-beta) g (default 0.99: MoNNA; 0: NNA; the authors' SCC uses 0.9)")
    optim.add_argument("--lr", dest="learning_rate", metavar="LR", type=float, default=0.75, help="gamma_0 (default 0.75, the authors' MNIST)")
    optim.add_argument("--lr-decay", dest="decay", metavar="TAU", type=float, default=50.0,
                       help="tau of gamma_t = gamma_0/(t/tau + 1); 0 keeps gamma constant (default 50)")
    optim.add_argument("--lr-decay-delta", dest="decay_delta", metavar="STEPS", type=int, default=50, help="update gamma_t every this many steps (default 50)")
    optim.add_argument("--l2", dest="l2_regularization", metavar="LAMBDA", type=float, default=1e-4, help="lambda of lambda ||theta||_2 in the loss (default 1e-4)")
    optim.add_argument("--batch-size", type=int, default=25, help="examples per machine per step (default 25)")
    optim.add_argument("--steps", type=int, default=600, help="training steps (default 600)")

    data = parser.add_argument_group("data and model")
    data.add_argument("--dataset", default="digits", choices=DATASETS,
                      help="digits: scikit-learn's 8x8 digits (1,437 to the machines, 360 held out); mnist: 5,000 "
                           "MNIST images (4,000 to the machines, 1,000 held out; bash scripts/fetch_data.sh first) "
                           "(default digits)")
    data.add_argument("--partition", default=None, choices=PARTITIONS,
                      help="how the honest machines share the data by label: monna-dirichlet (the authors' code: "
                           "Dirichlet(--alpha) class counts, truncated); extreme (the authors' extreme "
                           "heterogeneity: sorted by label, cut in equal parts); dirichlet (the project's: Dirichlet(--alpha) "
                           "proportions, counts rounded to N/h); fedfix-dirichlet (FedFix's: drawn with replacement) "
                           "(default: monna-dirichlet for mnist, dirichlet for digits)")
    data.add_argument("--alpha", type=float, default=1.0,
                      help="Dirichlet concentration of the label split over the honest machines, >= 0 "
                           "(default 1; the authors' MNIST runs: 1 and 5)")
    data.add_argument("--model", default="logistic", choices=MODELS,
                      help="logistic: multinomial regression on the pixels; cnn: digits' small CNN, or on mnist the "
                           "authors' network (two 5x5 conv, dense 500) (default logistic)")
    data.add_argument("--seed", type=int, default=0, help="seeds the split, model, batches and receptions")

    run = add_run_arguments(parser, checkpoint_every=50, eval_every=(
        int, 10, "evaluate every honest model every N steps (default 10)"))
    run.add_argument("--export-machine", type=int, default=0, help="honest machine whose model is exported (default 0)")
    add_worker_arguments(run)
    return parser


def settings_from(argv=None):
    """The validated ``RobustSettings`` of a command line (one-line ``UsageError`` if bad)."""
    return RobustSettings(**vars(build_parser().parse_args(argv)))


def main(argv=None, isolate=False):
    """The command line; ``isolate``: run in a private namespace (``python -m`` does)."""
    settings = settings_from(argv)
    if settings.workers:
        check_workers(settings.workers, settings.tls)  # before anything is written
    return launch(run, settings, module=MODULE, argv=argv, isolate=isolate,
                  network_needed_for=network_reason(settings.workers, settings.tls))


def run(settings, out):
    """Runs (or resumes) the experiment of ``settings`` into the output folder ``out``."""
    from tff_experiments.command_line.launch import warn
    from tff_experiments.robust.experiment import run_robust_experiment

    description = json_safe({"command": shlex.join(["python", "-m", MODULE, *sys.argv[1:]]),
                             "config": settings.as_dict()})
    (out / "run.json").write_text(json.dumps(description, indent=1, allow_nan=False))
    with run_on_workers(settings.workers, settings.tls, out / "run.json", description) as usage:
        summary = run_robust_experiment(settings, out)
    idle = [address for address, served in (usage or {}).items() if not served["groups"]]
    if idle:
        warn(f"{', '.join(idle)} ran none of the honest machines' steps: each worker takes a share of the "
             f"{settings.num_honest} honest machines, and there are more workers than machines")
    final = {k: round(v, 4) if isinstance(v, float) else v for k, v in summary["final"].items()}
    print(json.dumps(json_safe({"out": str(settings.out), "step": summary["steps"], **final}), allow_nan=False))
    return 0
