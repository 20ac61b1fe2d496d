r"""One asynchronous experiment: the data, model, schedule and process of its settings, and what
its output folder records: the track that ``tff_experiments.program.output_folder`` runs.

``DATASET_LOADERS`` maps a data set name to its loader (``settings -> (client_data, client_ids,
(x_test, y_test))``).
"""
import functools
import math

import numpy as np
import tensorflow_federated as tff

from tff_experiments import models, tff_optimizers
from tff_experiments.asynchronous.algorithms import build_schedule
from tff_experiments.asynchronous.client_times import ClientTimes
from tff_experiments.asynchronous.data_source import ScheduleDataSource
from tff_experiments.asynchronous.evaluation import GlobalEvaluator
from tff_experiments.asynchronous.local_data import LocalBatches
from tff_experiments.asynchronous.driver import as_model_weights
from tff_experiments.asynchronous.process import build_stale_model_process, takes_arrays
from tff_experiments.asynchronous.program import ScheduleTrack
from tff_experiments.asynchronous.schedule import client_importance
from tff_experiments.asynchronous.settings import DATASETS, MODELS
from tff_experiments.command_line.errors import UsageError
from tff_experiments.data import partitions, real
from tff_experiments.data.digits import load_digits_split
from tff_experiments.data.mnist import mnist_client_data
from tff_experiments.data.shakespeare import shakespeare_client_data
from tff_experiments.data.synthetic_federated import synthetic_client_data
from tff_experiments.program.export import export_keras_and_savedmodel

# Local works per TFF client value (build_stale_model_process(clients_per_group=...)): at 10^4
# clients of Synthetic, groups of 1,024 ran 1.14-1.24x the updates per second of groups of 256.
CLIENTS_PER_GROUP = 1024
# Datasets too big to evaluate whole at every evaluation: fixed seeded subsamples.
LARGE_DATASETS = ("shakespeare", "emnist", "cifar10", "cifar100", "synthetic")
EVAL_EXAMPLES_PER_CLIENT = 100
# The most clients' examples the federated objectives are evaluated on: up to 10^4 clients each
# keeps EVAL_EXAMPLES_PER_CLIENT (or all it has), beyond each keeps fewer (at least one), so that
# memory stops growing with the population (10^5 clients x 100 examples of Synthetic: 2.4 GB).
EVAL_EXAMPLES = 1_000_000


def _split(settings, x_train, y_train):
    """The training examples across the clients by ``settings.partition``."""
    parts = partitions.partition(settings.partition, y_train, settings.clients, settings.alpha, settings.seed)
    return partitions.partitioned_client_data(x_train, y_train, parts)


def _digits(settings):
    # The same split as digits_client_data(clients, alpha, seed) with the default partition.
    x_train, y_train, x_test, y_test = load_digits_split(seed=settings.seed)
    client_data = _split(settings, x_train, y_train)
    return client_data, client_data.client_ids, (x_test, y_test)


def _mnist(settings):
    client_data, test = mnist_client_data(settings.clients, settings.partition, settings.alpha, seed=settings.seed)
    return client_data, client_data.client_ids, test


def _shakespeare(settings):
    client_data, test = shakespeare_client_data(max_clients=settings.clients, seed=settings.seed)
    if len(client_data.client_ids) < settings.clients:
        raise UsageError(f"--clients {settings.clients}: Shakespeare has only {len(client_data.client_ids)} "
                         "speaking roles with enough text")
    return client_data, client_data.client_ids, test


def _cifar10(settings):
    client_data, test = real.cifar10_client_data(settings.clients, settings.alpha, seed=settings.seed,
                                                 data_dir=settings.cache_dir, partition=settings.partition)
    return client_data, client_data.client_ids, test


def _synthetic(settings):
    client_data, test = synthetic_client_data(settings.clients, settings.synthetic_alpha, settings.synthetic_beta,
                                              iid=settings.synthetic_iid, seed=settings.seed)
    return client_data, client_data.client_ids, test


def _tff_dataset(loader_name):
    def load(settings):
        train, test_data = getattr(real, loader_name)(cache_dir=settings.cache_dir)
        if len(train.client_ids) < settings.clients:
            raise UsageError(f"--clients {settings.clients}: {settings.dataset} has only "
                             f"{len(train.client_ids)} clients")
        chosen = sorted(np.random.default_rng(settings.seed).choice(len(train.client_ids), settings.clients,
                                                                    replace=False))
        return train, [train.client_ids[i] for i in chosen], real.client_data_to_arrays(test_data, max_examples=10000)
    return load


# dataset name -> loader(settings) -> (client_data, client_ids, (x_test, y_test))
DATASET_LOADERS = {
    "digits": _digits,
    "mnist": _mnist,
    "shakespeare": _shakespeare,
    "emnist": _tff_dataset("emnist_client_data"),
    "cifar10": _cifar10,
    "cifar100": _tff_dataset("cifar100_client_data"),
    "synthetic": _synthetic,
}
assert tuple(DATASET_LOADERS) == DATASETS


def keras_builder(dataset, model):
    """The ``tff_experiments.models`` builder of ``model`` on ``dataset`` (``MODELS``).

    Args:
      dataset: a data set name (``DATASETS``).
      model: one of its models (``MODELS[dataset]``).
    """
    entry = MODELS[dataset][model]
    name, kwargs = (entry, {}) if isinstance(entry, str) else entry
    builder = getattr(models, name)
    return functools.partial(builder, **kwargs) if kwargs else builder


def build_optimizer(name, learning_rate):
    """The TFF optimizer of a ``--client-optimizer`` / ``--server-optimizer`` name.

    Args:
      name: one of ``OPTIMIZERS`` (``sgdm``: momentum 0.9, the authors' default).
      learning_rate: its learning rate.
    """
    if name == "sgd":
        return tff.learning.optimizers.build_sgdm(learning_rate=learning_rate)
    if name == "sgdm":
        return tff.learning.optimizers.build_sgdm(learning_rate=learning_rate, momentum=0.9)
    if name == "adam":
        return tff.learning.optimizers.build_adam(learning_rate=learning_rate)
    if name == "adabelief":
        return tff_optimizers.build_adabelief(learning_rate=learning_rate)
    return tff_optimizers.build_diffgrad(learning_rate=learning_rate)


def evaluation_examples_per_client(num_clients):
    """How many examples of each client the federated objectives are evaluated on, at most."""
    return max(1, min(EVAL_EXAMPLES_PER_CLIENT, EVAL_EXAMPLES // num_clients))


def _evaluation_arrays(client_data, local):
    """The clients' examples the federated objectives are evaluated on."""
    if getattr(client_data, "generates_clients", False):
        # The first examples of each client (i.i.d. within a client): generating every client
        # whole would cost minutes and gigabytes at 10^4 clients of Synthetic's size tail.
        keep = evaluation_examples_per_client(local.num_clients)
        return [local.examples(i, np.arange(min(keep, local.num_examples(i)))) for i in range(local.num_clients)]
    return [local.arrays(i) for i in range(local.num_clients)]


def step_summary(steps_done, server_step, train_metrics):
    """The ``events.csv`` row of a server step: its clients, their staleness and weights summed
    up, and its training loss.

    Args:
      steps_done: the step's number in the log (``server_step.index + 1``).
      server_step: the schedule's ``ServerStep``.
      train_metrics: the step's training metrics (``loss`` when an update counted).
    """
    staleness = server_step.staleness()
    return dict(step=steps_done, time=server_step.time, clients=len(staleness),
                mean_staleness=float(np.mean(staleness)) if staleness else "",
                max_staleness=max(staleness) if staleness else "",
                total_weight=float(sum(c.weight for c in server_step.contributions)),
                train_loss=float(train_metrics["loss"]) if "loss" in train_metrics else "")


def update_rows(steps_done, server_step):
    """The ``updates.csv`` rows of a server step: one per client update.

    Args:
      steps_done: the step's number in the log (``server_step.index + 1``).
      server_step: the schedule's ``ServerStep``.
    """
    return [dict(step=steps_done, time=server_step.time, client=c.client, sent_version=c.sent_version,
                 staleness=server_step.index - c.sent_version, weight=c.weight)
            for c in server_step.contributions]


class AsynchronousExperiment(ScheduleTrack):
    """The run of ``settings``: its data, schedule, process and evaluation, and what its output
    folder records (``metrics.csv``, ``events.csv``, ``model/``).

    Args:
      settings: the run's ``AsynchronousSettings``.
    """

    event_fields = ("step", "time", "clients", "mean_staleness", "max_staleness", "total_weight", "train_loss")
    update_fields = ("step", "time", "client", "sent_version", "staleness", "weight")
    progress_unit = "virtual time"

    def __init__(self, settings):
        self.settings = s = settings
        self.run_config = s.as_dict()
        self.horizon = s.horizon
        client_data, client_ids, test = DATASET_LOADERS[s.dataset](s)
        self.builder = keras_builder(s.dataset, s.model)
        local = LocalBatches(client_data, s.local_steps, s.batch_size, seed=s.seed, client_ids=client_ids)
        self.importance = client_importance(s.importance, [local.num_examples(i) for i in range(local.num_clients)])
        self.clients_per_group = s.clients_per_group or CLIENTS_PER_GROUP
        self.times = ClientTimes.from_scenario(s.clients, s.scenario, s.client_times, s.time_sigma, s.seed)
        schedule = build_schedule(s.algorithm, self.times, s.horizon, self.importance, s.policy,
                                  delta_t=s.delta_t, buffer_size=s.buffer_size, concurrency=s.concurrency,
                                  seed=s.seed)
        if not len(schedule):
            raise UsageError(f"no server step fits in --horizon {s.horizon}: raise it")
        process = build_stale_model_process(
            models.tff_model_fn(self.builder, client_data.element_type_structure, seed=s.seed),
            build_optimizer(s.client_optimizer, s.client_lr),
            build_optimizer(s.server_optimizer, s.server_lr),
            # many local works per TFF call: TFF 0.87 costs ~60 ms per client of a computation
            clients_per_group=self.clients_per_group,
        )
        super().__init__(process, ScheduleDataSource(schedule, local, arrays=takes_arrays(process)))
        large = s.dataset in LARGE_DATASETS
        self.evaluate = GlobalEvaluator(
            self.builder, _evaluation_arrays(client_data, local), self.importance, test,
            surrogate=schedule.effective_importance(), seed=s.seed,
            max_test_examples=5000 if large else None,
            max_examples_per_client=evaluation_examples_per_client(s.clients) if large else None)

    def description(self):
        """What ``run.json`` records about the run besides its settings."""
        return {"server_steps": self.num_steps, "clients_per_group": self.clients_per_group,
                "client_mean_times": self.times.mean_times.tolist(),
                "importance": self.importance.tolist(),
                "effective_importance": self.schedule.effective_importance().tolist()}

    # -- what the output folder records (tff_experiments.program.output_folder)
    def evaluation_due(self, steps_done):
        if steps_done == self.num_steps:
            return True
        every = self.settings.eval_every
        return math.floor(self.clock(steps_done) / every) > math.floor(self.clock(steps_done - 1) / every)

    def metrics(self, steps_done, model, train_metrics):
        """The ``metrics.csv`` row of the released global model after ``steps_done`` steps."""
        return {"time": self.clock(steps_done), **self.evaluate(as_model_weights(model["model_weights"]))}

    def progress_fields(self, row):
        return {"acc": f"{row.get('test_accuracy', float('nan')):.3f}"}

    def event(self, steps_done, train_metrics):
        """The ``events.csv`` row of step ``steps_done`` (``step_summary``)."""
        return step_summary(steps_done, self.schedule.steps[steps_done - 1], train_metrics)

    def updates(self, steps_done):
        """The ``updates.csv`` rows of step ``steps_done`` (``update_rows``)."""
        return update_rows(steps_done, self.schedule.steps[steps_done - 1])

    def export(self, final_model, model_dir):
        return export_keras_and_savedmodel(self.builder, as_model_weights(final_model), model_dir,
                                           seed=self.settings.seed)
