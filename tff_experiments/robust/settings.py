"""The settings of a robust peer-to-peer run.

``RobustSettings`` is checked once, when built, with one-line ``UsageError``s that name the flag of
``python -m tff_experiments.robust`` (the command line maps its flags onto the fields).
The process (``tff_experiments.robust.process``) takes them as they are. Nothing here imports
TensorFlow, so the command line's checks are fast.
"""
import dataclasses
from typing import Optional

from tff_experiments.command_line.arguments import check_number
from tff_experiments.command_line.errors import UsageError
from tff_experiments.data.partitions import PARTITIONS, check_partition  # noqa: F401  (the CLI's choices)
from tff_experiments.robust.choices import ATTACK_NAMES, MODELS, RECEPTIONS, RULE_NAMES, SCALED_ATTACKS, check_rule_input
from tff_experiments.workers.flags import WORKER_FLAGS, checked_worker_flags
from tff_experiments.workers.tls import MutualTls

# The data sets, their number of classes and default partition over the honest machines
# (tff_experiments.data.partitions): MNIST is split by the MoNNA authors' own code.
DATASETS = ("digits", "mnist")
NUM_CLASSES = {"digits": 10, "mnist": 10}
DEFAULT_PARTITIONS = {"digits": "dirichlet", "mnist": "monna-dirichlet"}
# The budget of the line search of the attack factor z (the authors' 16 evaluations).
ATTACK_EVALUATIONS = 16
# Settings of how a run is run, not of its result: a resume may change them.
RUN_ONLY = ("out", "eval_every", "checkpoint_every", "export_machine", "progress", *WORKER_FLAGS)


@dataclasses.dataclass(frozen=True)
class RobustSettings:
    """Every setting of a robust peer-to-peer run, checked once, here (one-line ``UsageError``s
    that name the command line's flag). ``as_dict()`` holds those that determine the result."""

    num_machines: int = 26
    num_byzantine: int = 5
    rule: str = "nna"
    attack: Optional[str] = None  # default: alie, or none when num_byzantine is 0
    momentum: float = 0.99
    reception: str = "authors"
    attack_factor: Optional[float] = None
    learning_rate: float = 0.75
    decay: float = 50.0
    decay_delta: int = 50
    l2_regularization: float = 1e-4
    batch_size: int = 25
    steps: int = 600
    dataset: str = "digits"
    partition: Optional[str] = None  # default: DEFAULT_PARTITIONS[dataset]
    alpha: float = 1.0
    model: str = "logistic"
    seed: int = 0
    clip_threshold: float = 2.0
    clip_iterations: int = 3
    krum_squared: bool = True
    mimic_target: int = 0
    out: Optional[str] = None
    eval_every: int = 10
    checkpoint_every: int = 50
    export_machine: int = 0
    progress: Optional[bool] = None
    workers: Optional[tuple] = None  # "host:port" addresses of TFF executor services
    tls_ca: Optional[str] = None  # mutual TLS with the workers: the CA, our certificate and key
    tls_cert: Optional[str] = None
    tls_key: Optional[str] = None

    def __post_init__(self):
        if self.model not in MODELS:
            raise UsageError(f"--model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if self.dataset not in DATASETS:
            raise UsageError(f"--dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}")
        if self.partition is None:
            object.__setattr__(self, "partition", DEFAULT_PARTITIONS[self.dataset])
        if self.attack is None:
            object.__setattr__(self, "attack", "alie" if self.num_byzantine > 0 else "none")
        for field in ("batch_size", "steps", "eval_every", "checkpoint_every"):
            check_number(field, getattr(self, field), low=1, integer=True)
        for field in ("clip_iterations", "export_machine"):
            check_number(field, getattr(self, field), low=0, integer=True)
        for field in ("alpha", "clip_threshold"):
            check_number(field, getattr(self, field), low=0)
        try:
            check_partition(self.partition, self.alpha)
        except ValueError as error:
            raise UsageError(f"--partition {self.partition}: {error}") from None
        self._check_peer_to_peer()
        if self.export_machine >= self.num_honest:
            raise UsageError(f"--export-machine must be a honest machine, 0 <= machine < {self.num_honest}")
        workers, tls = checked_worker_flags(self.workers, self.tls_ca, self.tls_cert, self.tls_key)
        object.__setattr__(self, "workers", workers)
        if tls is not None:
            for name in ("ca", "cert", "key"):
                object.__setattr__(self, f"tls_{name}", getattr(tls, name))

    @property
    def tls(self):
        """The ``MutualTls`` of ``--tls-ca/--tls-cert/--tls-key``, or ``None`` (plain channels)."""
        return MutualTls(self.tls_ca, self.tls_cert, self.tls_key) if self.tls_ca else None

    @property
    def num_honest(self):
        """:math:`h = n - f`, the honest machines."""
        return self.num_machines - self.num_byzantine

    @property
    def num_received(self):
        """Vectors each honest machine receives, its own included."""
        return self.num_machines - self.num_byzantine if self.reception == "authors" else self.num_machines

    @property
    def needs_flipped_gradients(self):
        """Whether the Byzantine machines need gradients on flipped labels (label flipping)."""
        return self.attack == "label_flipping"

    @property
    def attack_evaluations(self):
        """The line search's budget when ALIE/FOE's factor is searched."""
        return ATTACK_EVALUATIONS

    @property
    def num_classes(self):
        """:math:`K` of label flipping, :math:`y \\mapsto K - 1 - y` (10 for digits and MNIST)."""
        return NUM_CLASSES[self.dataset]

    def _check_peer_to_peer(self):
        """The machines, attack, rule and learning-rate settings make a run (one-line ``UsageError``)."""
        n, f = self.num_machines, self.num_byzantine
        rule, attack, reception = self.rule, self.attack, self.reception
        for field, value, choices in (("rule", rule, RULE_NAMES), ("attack", attack, ATTACK_NAMES),
                                      ("reception", reception, RECEPTIONS)):
            if value not in choices:
                raise UsageError(f"--{field} must be one of {', '.join(choices)}, got {value!r}")
        check_number("machines", n, low=1, integer=True)
        check_number("byzantine", f, low=0, integer=True)
        check_number("lr-decay-delta", self.decay_delta, low=1, integer=True)
        check_number("mimic-target", self.mimic_target, low=0, integer=True)
        check_number("seed", self.seed, low=0, high=2**32 - 1, integer=True)
        check_number("lr", self.learning_rate, low=0, low_open=True)
        check_number("momentum", self.momentum, low=0, high=1, high_open=True)
        check_number("lr-decay", self.decay, low=0)
        check_number("l2", self.l2_regularization, low=0)
        check_number("attack-factor", self.attack_factor)
        if 2 * f >= n:
            raise UsageError(f"--byzantine must satisfy 0 <= f < n/2 (n = {n}): got f = {f}; no rule tolerates a "
                             "Byzantine half")
        if f > 0 and attack == "none":
            raise UsageError(f"f = {f} Byzantine machines need an --attack ({', '.join(ATTACK_NAMES[1:])})")
        if f == 0 and attack != "none":
            raise UsageError(f"--attack {attack} needs Byzantine machines: set --byzantine > 0")
        if self.attack_factor is not None and attack not in SCALED_ATTACKS:
            raise UsageError(f"--attack-factor is for alie and foe, not {attack}")
        if self.mimic_target >= n - f:
            raise UsageError(f"--mimic-target must be a honest machine, 0 <= machine < {n - f}")
        try:  # the rule's needs (krum: k > f + 1, ...) for what each machine receives
            check_rule_input(rule, n - f if reception == "authors" else n, f)
        except ValueError as error:
            raise UsageError(f"--rule {rule}: {error}") from None

    def as_dict(self):
        """The settings that determine the result (a resume must use the same)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in RUN_ONLY}
