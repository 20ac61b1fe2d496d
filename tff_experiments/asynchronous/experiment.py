r"""One asynchronous experiment: its settings (validated once, here), its data, model, schedule
and process, and what its output folder records (``run_outputs`` runs it with
``train_asynchronous_model``).

``AsynchronousSettings`` holds every setting of ``python -m tff_experiments.asynchronous`` under
the flag's name (``client_lr`` is ``--client-lr``); the command line only maps argparse onto it.
``DATASETS`` maps a dataset name to its loader and ``MODELS`` a ``(dataset, model)`` pair to its
Keras builder (``tff_experiments.models``): a new dataset is one entry in each.
"""
import dataclasses
import functools
import math
from typing import Optional

from tff_experiments.program.cli import check_number
from tff_experiments.program.errors import UsageError

ALGORITHMS = ("fedavg", "async", "fedfix", "fedbuff", "fedbuff-keep-training")
OPTIMIZERS = ("sgd", "sgdm", "adam", "adabelief", "diffgrad")
CLIENT_TIMES = ("fixed", "exponential", "lognormal")
# The longest schedule a run may build: the schedule is built whole, in memory, before the run
# (a few hundred bytes a step; 10^7 steps take minutes to build), and a step takes milliseconds.
MAX_SERVER_STEPS = 10_000_000
# Local works per TFF client value (build_stale_model_process(clients_per_group=...)).
CLIENTS_PER_GROUP = 256


def _digits(settings):
    from tff_experiments.data.digits import digits_client_data

    client_data, test = digits_client_data(settings.clients, settings.alpha, seed=settings.seed)
    return client_data, client_data.client_ids, test


def _shakespeare(settings):
    from tff_experiments.data.shakespeare import shakespeare_client_data

    client_data, test = shakespeare_client_data(max_clients=settings.clients, seed=settings.seed)
    if len(client_data.client_ids) < settings.clients:
        raise UsageError(f"--clients {settings.clients}: Shakespeare has only {len(client_data.client_ids)} "
                         "speaking roles with enough text")
    return client_data, client_data.client_ids, test


def _cifar10(settings):
    from tff_experiments.data import real

    client_data, test = real.cifar10_client_data(settings.clients, settings.alpha, seed=settings.seed)
    return client_data, client_data.client_ids, test


def _synthetic(settings):
    from tff_experiments.data.synthetic import synthetic_client_data

    client_data, test = synthetic_client_data(settings.clients, settings.synthetic_alpha, settings.synthetic_beta,
                                              iid=settings.synthetic_iid, seed=settings.seed)
    return client_data, client_data.client_ids, test


def _tff_dataset(loader_name):
    def load(settings):
        import numpy as np

        from tff_experiments.data import real

        train, test_data = getattr(real, loader_name)()
        if len(train.client_ids) < settings.clients:
            raise UsageError(f"--clients {settings.clients}: {settings.dataset} has only "
                             f"{len(train.client_ids)} clients")
        chosen = sorted(np.random.default_rng(settings.seed).choice(len(train.client_ids), settings.clients,
                                                                    replace=False))
        return train, [train.client_ids[i] for i in chosen], real.client_data_to_arrays(test_data, max_examples=10000)
    return load


# dataset name -> loader(settings) -> (client_data, client_ids, (x_test, y_test))
DATASETS = {
    "digits": _digits,
    "shakespeare": _shakespeare,
    "emnist": _tff_dataset("emnist_client_data"),
    "cifar10": _cifar10,
    "cifar100": _tff_dataset("cifar100_client_data"),
    "synthetic": _synthetic,
}
# dataset name -> {model name: builder name in tff_experiments.models, or (name, kwargs)}; the
# first model is the default.
MODELS = {
    "digits": {"cnn": "digits_cnn", "logistic": "digits_logistic"},
    "shakespeare": {"rnn": "char_rnn"},
    "emnist": {"cnn": ("image_cnn", {"input_shape": (28, 28, 1), "num_classes": 10})},
    "cifar10": {"cnn": ("image_cnn", {"input_shape": (32, 32, 3), "num_classes": 10})},
    "cifar100": {"cnn": ("image_cnn", {"input_shape": (32, 32, 3), "num_classes": 100})},
    "synthetic": {"logistic": "synthetic_logistic"},
}
# Datasets too big to evaluate whole at every evaluation: fixed seeded subsamples.
LARGE_DATASETS = ("shakespeare", "emnist", "cifar10", "cifar100", "synthetic")
EVAL_EXAMPLES_PER_CLIENT = 100
_NOT_IN_CONFIG = ("out", "progress", "workers", "checkpoint_every")


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
    alpha: float = 0.1
    synthetic_alpha: float = 1.0  # Synthetic(alpha, beta) of Li et al. (FedProx)
    synthetic_beta: float = 1.0
    synthetic_iid: bool = False
    model: Optional[str] = None  # default: the dataset's first model
    seed: int = 0
    eval_every: Optional[float] = None  # default: horizon / 50
    checkpoint_every: int = 100
    workers: Optional[tuple] = None  # "host:port" addresses of TFF executor services
    progress: Optional[bool] = None

    def __post_init__(self):
        from tff_experiments.asynchronous import expected_server_steps
        from tff_experiments.asynchronous.client_times import scenario_mean_times
        from tff_experiments.asynchronous.schedule import IMPORTANCES, POLICIES

        for name, choices in (("algorithm", ALGORITHMS), ("policy", POLICIES), ("server_optimizer", OPTIMIZERS),
                              ("client_optimizer", OPTIMIZERS), ("client_times", CLIENT_TIMES),
                              ("importance", IMPORTANCES), ("dataset", tuple(DATASETS))):
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
            if self.algorithm == "fedbuff" and self.buffer_size > self.clients:
                raise UsageError(f"--buffer-size {self.buffer_size} is larger than --clients {self.clients}")
        elif self.buffer_size is not None:
            raise UsageError(f"--buffer-size is FedBuff's; --algorithm {self.algorithm} does not take it")
        for name in ("clients", "local_steps", "batch_size", "checkpoint_every"):
            check_number(name, getattr(self, name), low=1, integer=True)
        check_number("seed", self.seed, low=0, high=2**32 - 1, integer=True)
        for name in ("horizon", "server_lr", "time_sigma", "eval_every"):
            check_number(name, getattr(self, name), low=0, low_open=True)
        check_number("client_lr", self.client_lr, low=0)
        check_number("alpha", self.alpha, low=0)
        check_number("synthetic_alpha", self.synthetic_alpha, low=0)
        check_number("synthetic_beta", self.synthetic_beta, low=0)
        try:
            mean_times = scenario_mean_times(self.clients, self.scenario)
        except ValueError as error:
            raise UsageError(f"--scenario: {error}") from None
        steps = expected_server_steps(self.algorithm, mean_times, self.horizon, delta_t=self.delta_t,
                                      buffer_size=self.buffer_size)
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
        if isinstance(self.workers, str):
            self.workers = tuple(w.strip() for w in self.workers.split(",") if w.strip())
            if not self.workers or any(not _is_address(w) for w in self.workers):
                raise UsageError("--workers takes host:port[,host:port...]")

    def config(self):
        """The settings that determine the result (a resume must use the same)."""
        return {k: v for k, v in sorted(dataclasses.asdict(self).items()) if k not in _NOT_IN_CONFIG}


def _is_address(text):
    host, _, port = text.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def check_workers(addresses, timeout=5.0):
    """Raises ``UsageError`` unless a gRPC server answers at every address within ``timeout`` s."""
    import grpc

    for address in addresses:
        channel = grpc.insecure_channel(address)
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise UsageError(f"--workers: no TFF executor service answers at {address} "
                             f"(waited {timeout:g} s)") from None
        finally:
            channel.close()


def keras_builder(dataset, model):
    """The ``tff_experiments.models`` builder of ``model`` on ``dataset`` (``MODELS``)."""
    from tff_experiments import models

    entry = MODELS[dataset][model]
    name, kwargs = (entry, {}) if isinstance(entry, str) else entry
    builder = getattr(models, name)
    return functools.partial(builder, **kwargs) if kwargs else builder


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


class AsynchronousExperiment:
    """The run of ``settings``: schedule, process, driver and evaluator."""

    event_fields = ("step", "time", "clients", "sent_versions", "staleness", "weights", "train_loss")
    progress_unit = "virtual time"

    def __init__(self, settings):
        from tff_experiments import models
        from tff_experiments.asynchronous import (AsynchronousDriver, ClientTimes, LocalBatches, build_schedule,
                                                  build_stale_model_process, client_importance)
        from tff_experiments.asynchronous.evaluation import GlobalEvaluator
        import numpy as np

        self.settings = s = settings
        self.run_config = s.config()
        client_data, client_ids, test = DATASETS[s.dataset](s)
        self.builder = keras_builder(s.dataset, s.model)
        local = LocalBatches(client_data, s.local_steps, s.batch_size, seed=s.seed, client_ids=client_ids)
        self.importance = client_importance(s.importance, [local.num_examples(i) for i in range(local.num_clients)])
        self.times = ClientTimes.from_scenario(s.clients, s.scenario, s.client_times, s.time_sigma, s.seed)
        self.schedule = build_schedule(s.algorithm, self.times, s.horizon, self.importance, s.policy,
                                       delta_t=s.delta_t, buffer_size=s.buffer_size)
        if not len(self.schedule):
            raise UsageError(f"no server step fits in --horizon {s.horizon}: raise it")
        process = build_stale_model_process(
            models.tff_model_fn(self.builder, client_data.element_type_structure, seed=s.seed),
            build_optimizer(s.client_optimizer, s.client_lr),
            build_optimizer(s.server_optimizer, s.server_lr),
            # many local works per TFF call: TFF 0.87 costs ~60 ms per client of a computation
            clients_per_group=CLIENTS_PER_GROUP,
        )
        self.driver = AsynchronousDriver(process, self.schedule, local)
        large = s.dataset in LARGE_DATASETS
        if getattr(client_data, "generates_clients", False):
            # The first examples of each client (i.i.d. within a client): generating every client
            # whole would cost minutes and gigabytes at 10^4 clients of Synthetic's size tail.
            train_arrays = [local.examples(i, np.arange(min(EVAL_EXAMPLES_PER_CLIENT, local.num_examples(i))))
                            for i in range(local.num_clients)]
        else:
            train_arrays = [local.arrays(i) for i in range(local.num_clients)]
        self.evaluate = GlobalEvaluator(
            self.builder, train_arrays, self.importance, test,
            surrogate=self.schedule.effective_importance(), seed=s.seed,
            max_test_examples=5000 if large else None, max_examples_per_client=EVAL_EXAMPLES_PER_CLIENT if large else None)
        self.num_steps = len(self.schedule)
        self.horizon = s.horizon

    def description(self):
        """What ``run.json`` records about the run besides its settings."""
        return {"server_steps": self.num_steps, "client_mean_times": self.times.mean_times.tolist(),
                "importance": self.importance.tolist(),
                "effective_importance": self.schedule.effective_importance().tolist()}

    # -- what the run's release managers (run_outputs) need
    def clock(self, steps_done):
        return self.schedule.steps[steps_done - 1].time if steps_done else 0.0

    def evaluation_due(self, steps_done):
        if steps_done == self.num_steps:
            return True
        every = self.settings.eval_every
        return math.floor(self.clock(steps_done) / every) > math.floor(self.clock(steps_done - 1) / every)

    def metrics(self, steps_done, model_weights):
        """The ``metrics.csv`` row of the global model ``model_weights`` after ``steps_done`` steps."""
        return {"time": self.clock(steps_done), **self.evaluate(model_weights)}

    def progress_fields(self, row):
        return {"acc": f"{row.get('test_accuracy', float('nan')):.3f}"}

    def event(self, steps_done, train_metrics):
        """The ``events.csv`` row of step ``steps_done`` from its released training metrics."""
        step = self.schedule.steps[steps_done - 1]
        return dict(step=steps_done, time=step.time, clients=[c.client for c in step.contributions],
                    sent_versions=[c.sent_version for c in step.contributions], staleness=step.staleness(),
                    weights=[c.weight for c in step.contributions],
                    train_loss=float(train_metrics["loss"]) if "loss" in train_metrics else "")

    def export(self, model_weights, model_dir):
        from tff_experiments.program.export import export_keras_and_savedmodel

        return export_keras_and_savedmodel(self.builder, model_weights, model_dir, seed=self.settings.seed)
