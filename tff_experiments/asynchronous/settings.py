"""The settings of an asynchronous run, and the names of its choices.

``AsynchronousSettings`` holds every setting of ``python -m tff_experiments.asynchronous`` under
the flag's name (``client_lr`` is ``--client-lr``), checked once, when built, with one-line
``UsageError``s that name the flag; the command line only maps argparse onto it. ``MODELS``
maps a data set to its models (``tff_experiments.models`` builders): a new data set is one entry
here and one loader in ``tff_experiments.asynchronous.experiment``. ``PARTITIONED_DATASETS``
are split across the clients by ``--partition`` (``tff_experiments.data.partitions``); their
default partition is ``DEFAULT_PARTITIONS``' (FedFix's own on MNIST, the paper's data set).
Nothing here imports TensorFlow, so the command line's checks are fast.
"""
import dataclasses
from typing import Optional

from tff_experiments.asynchronous.algorithms import ALGORITHMS, expected_server_steps
from tff_experiments.asynchronous.client_times import scenario_mean_times
from tff_experiments.asynchronous.schedule import IMPORTANCES, POLICIES
from tff_experiments.command_line.arguments import check_number
from tff_experiments.command_line.errors import UsageError
from tff_experiments.data.partitions import PARTITIONS, check_partition  # noqa: F401  (the CLI's choices)
from tff_experiments.workers.flags import WORKER_FLAGS, checked_worker_flags
from tff_experiments.workers.tls import MutualTls

OPTIMIZERS = ("sgd", "sgdm", "adam", "adabelief", "diffgrad")
CLIENT_TIMES = ("fixed", "exponential", "lognormal")
# The longest schedule a run may build: the schedule is built whole, in memory, before the run
# (a few hundred bytes a step; 10^7 steps take minutes to build), and a step takes milliseconds.
MAX_SERVER_STEPS = 10_000_000
# data set name -> {model name: builder name in tff_experiments.models, or (name, kwargs)}; the
# first model is the default.
MODELS = {
    "digits": {"cnn": "digits_cnn", "logistic": "digits_logistic"},
    # FedFix's MNIST model is multinomial logistic regression (FL/create_model.py, load_model).
    "mnist": {"logistic": ("image_logistic", {"input_shape": (28, 28, 1), "num_classes": 10}),
              "cnn": ("image_cnn", {"input_shape": (28, 28, 1), "num_classes": 10})},
    "shakespeare": {"rnn": "char_rnn"},
    "emnist": {"cnn": ("image_cnn", {"input_shape": (28, 28, 1), "num_classes": 10}),
               "logistic": ("image_logistic", {"input_shape": (28, 28, 1), "num_classes": 10})},
    "cifar10": {"cnn": ("image_cnn", {"input_shape": (32, 32, 3), "num_classes": 10})},
    "cifar100": {"cnn": ("image_cnn", {"input_shape": (32, 32, 3), "num_classes": 100})},
    "synthetic": {"logistic": "synthetic_logistic"},
}
DATASETS = tuple(MODELS)
# The data sets split across the clients by a partition of their labels, and their default one.
DEFAULT_PARTITIONS = {"digits": "dirichlet", "mnist": "fedfix-dirichlet", "cifar10": "dirichlet"}
PARTITIONED_DATASETS = tuple(DEFAULT_PARTITIONS)
# The data sets read from a download cache (--cache-dir): TFF's for emnist and cifar100, TFDS's
# data folder for cifar10.
DOWNLOADED_DATASETS = ("emnist", "cifar10", "cifar100")
# Settings of how a run is run, not of its result: a resume may change them.
RUN_ONLY = ("out", "progress", *WORKER_FLAGS, "checkpoint_every", "cache_dir")


@dataclasses.dataclass
class AsynchronousSettings:
    """Every setting of an asynchronous run, named as its flag; checked when built."""

    algorithm: str
    out: str
    policy: str = "weight"
    delta_t: Optional[float] = None
    buffer_size: Optional[int] = None
    server_lr: float = 1.0
    server_optimizer: str = "sgd"
    clients: int = 20
    concurrency: Optional[int] = None  # default: every client always training
    scenario: str = "F-80"
    client_times: str = "fixed"
    time_sigma: float = 0.5
    horizon: float = 200.0
    importance: str = "uniform"
    local_steps: int = 10
    batch_size: int = 64
    client_optimizer: str = "sgdm"
    client_lr: Optional[float] = None  # default: 0.05 for sgd/sgdm, 0.001 for the adaptive ones
    dataset: str = "digits"
    partition: Optional[str] = None  # default: DEFAULT_PARTITIONS[dataset]
    alpha: float = 0.1
    synthetic_alpha: float = 1.0  # Synthetic(alpha, beta) of Li et al. (FedProx)
    synthetic_beta: float = 1.0
    synthetic_iid: bool = False
    model: Optional[str] = None  # default: the dataset's first model
    seed: int = 0
    eval_every: Optional[float] = None  # default: horizon / 50
    checkpoint_every: int = 100
    workers: Optional[tuple] = None  # "host:port" addresses of TFF executor services
    tls_ca: Optional[str] = None  # mutual TLS with the workers: the CA, our certificate and key
    tls_cert: Optional[str] = None
    tls_key: Optional[str] = None
    clients_per_group: Optional[int] = None  # local works per TFF client value (default: experiment's)
    progress: Optional[bool] = None
    cache_dir: Optional[str] = None  # where the downloaded data sets are (default: TFF's, TFDS's)

    def __post_init__(self):
        for name, choices in (("algorithm", ALGORITHMS), ("policy", POLICIES), ("server_optimizer", OPTIMIZERS),
                              ("client_optimizer", OPTIMIZERS), ("client_times", CLIENT_TIMES),
                              ("importance", IMPORTANCES), ("dataset", DATASETS)):
            if getattr(self, name) not in choices:
                raise UsageError(f"--{name.replace('_', '-')} must be one of {', '.join(choices)}, "
                                 f"got {getattr(self, name)!r}")
        if self.algorithm == "fedfix":
            if self.delta_t is None:
                raise UsageError("--algorithm fedfix needs --delta-t")
            check_number("delta_t", self.delta_t, low=0, low_open=True)
        elif self.delta_t is not None:
            raise UsageError(f"--delta-t is FedFix's; --algorithm {self.algorithm} does not take it")
        if self.algorithm.startswith("fedbuff"):
            if self.buffer_size is None:
                raise UsageError(f"--algorithm {self.algorithm} needs --buffer-size")
            check_number("buffer_size", self.buffer_size, low=1, integer=True)
        elif self.buffer_size is not None:
            raise UsageError(f"--buffer-size is FedBuff's; --algorithm {self.algorithm} does not take it")
        for name in ("clients", "local_steps", "batch_size", "checkpoint_every"):
            check_number(name, getattr(self, name), low=1, integer=True)
        check_number("seed", self.seed, low=0, high=2**32 - 1, integer=True)
        check_number("concurrency", self.concurrency, low=1, high=self.clients, integer=True)
        training = self.concurrency or self.clients  # the clients training at once
        if self.algorithm == "fedbuff" and self.buffer_size > training:
            raise UsageError(f"--buffer-size {self.buffer_size} is larger than the {training} clients training at once")
        for name in ("horizon", "server_lr", "time_sigma", "eval_every"):
            check_number(name, getattr(self, name), low=0, low_open=True)
        check_number("client_lr", self.client_lr, low=0)
        check_number("alpha", self.alpha, low=0)
        self._check_data()
        check_number("synthetic_alpha", self.synthetic_alpha, low=0)
        check_number("synthetic_beta", self.synthetic_beta, low=0)
        try:
            mean_times = scenario_mean_times(self.clients, self.scenario)
        except ValueError as error:
            raise UsageError(f"--scenario: {error}") from None
        steps = expected_server_steps(self.algorithm, mean_times, self.horizon, delta_t=self.delta_t,
                                      buffer_size=self.buffer_size, concurrency=self.concurrency)
        if steps > MAX_SERVER_STEPS:
            raise UsageError(f"--horizon {self.horizon:g} means about {steps:.3g} server steps, more than the "
                             f"{MAX_SERVER_STEPS:,} a run can schedule: lower --horizon")
        models = MODELS[self.dataset]
        self.model = self.model or next(iter(models))
        if self.model not in models:
            raise UsageError(f"--model {self.model} does not fit --dataset {self.dataset} "
                             f"(use {' or '.join(models)})")
        if self.client_lr is None:
            self.client_lr = 0.05 if self.client_optimizer in ("sgd", "sgdm") else 0.001
        if self.eval_every is None:
            self.eval_every = self.horizon / 50
        check_number("clients_per_group", self.clients_per_group, low=1, integer=True)
        self.workers, tls = checked_worker_flags(self.workers, self.tls_ca, self.tls_cert, self.tls_key)
        if tls is not None:
            self.tls_ca, self.tls_cert, self.tls_key = tls.ca, tls.cert, tls.key

    @property
    def tls(self):
        """The ``MutualTls`` of ``--tls-ca/--tls-cert/--tls-key``, or ``None`` (plain channels)."""
        return MutualTls(self.tls_ca, self.tls_cert, self.tls_key) if self.tls_ca else None

    def _check_data(self):
        """``--partition`` and ``--cache-dir`` fit ``--dataset``; sets the default partition."""
        if self.dataset in PARTITIONED_DATASETS:
            self.partition = self.partition or DEFAULT_PARTITIONS[self.dataset]
            try:
                check_partition(self.partition, self.alpha)
            except ValueError as error:
                raise UsageError(f"--partition {self.partition}: {error}") from None
        elif self.partition is not None:
            raise UsageError(f"--partition splits {', '.join(PARTITIONED_DATASETS)} by label; --dataset "
                             f"{self.dataset} has its own clients")
        if self.cache_dir is not None and self.dataset not in DOWNLOADED_DATASETS:
            raise UsageError(f"--cache-dir is for the downloaded data sets ({', '.join(DOWNLOADED_DATASETS)}), "
                             f"not --dataset {self.dataset}")

    def as_dict(self):
        """The settings that determine the result (a resume must use the same)."""
        return {k: v for k, v in sorted(dataclasses.asdict(self).items()) if k not in RUN_ONLY}
