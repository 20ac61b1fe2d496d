"""The run configuration of the app: every key, its default, and its check, in one place.

Flower passes the run configuration (``[tool.flwr.app.config]`` of ``app/pyproject.toml``, with
the ``flwr run --run-config`` overrides) to both components as a dict with hyphenated keys;
``Settings.from_run_config`` checks it once. The node configuration (``flower-supernode
--node-config``) gives each node ``partition-id``, ``num-partitions`` and, optionally,
``sleep`` (seconds a node waits after its local work, to make nodes heterogeneous).
"""
import dataclasses

from tff_experiments.asynchronous.rules import ALGORITHMS
from tff_experiments.asynchronous.schedule import IMPORTANCES, POLICIES

MODELS = ("numpy-logistic", "logistic", "cnn")
DATASETS = ("digits", "synthetic")
CLIENT_OPTIMIZERS = ("sgd", "sgdm", "adam", "adabelief", "diffgrad")
SERVER_OPTIMIZERS = ("sgd", "sgdm", "adam")


@dataclasses.dataclass(frozen=True)
class Settings:
    """A run's settings (the run configuration's keys, with ``_`` for ``-``).

    Attributes:
      algorithm: one of ``ALGORITHMS`` (``fedavg`` is synchronous FedAvg, the baseline).
      policy: the aggregation weights, one of ``POLICIES``.
      importance: the clients' importance :math:`p_i` for the ``weight`` policy, ``uniform``
        or ``data-size``.
      buffer_size: FedBuff's c.
      delta_t: FedFix's aggregation period, in seconds.
      aggregations: the server steps of the run.
      min_nodes: the nodes the server waits for before it starts; synchronous FedAvg needs as many
        to go on (as Flower's FedAvg's ``min_available_nodes``).
      model: one of ``MODELS`` (``numpy-logistic``: a NumPy client, no TensorFlow).
      dataset: one of ``DATASETS``.
      alpha: digits' Dirichlet concentration, or Synthetic's :math:`\\alpha`.
      beta: Synthetic's :math:`\\beta`.
      client_optimizer: one of ``CLIENT_OPTIMIZERS`` (keras-optim's classes).
      client_lr: the client optimizer's learning rate.
      coordinate_clip: keras-optim's coordinate-wise clipping fraction (0: off).
      local_steps: the local steps of a node's work.
      batch_size: the local batch size.
      server_optimizer: one of ``SERVER_OPTIMIZERS``.
      server_lr: :math:`\\eta_g`.
      server_momentum: the momentum of ``sgdm``.
      seed: seeds the initial model, the partition and the local batches.
      out: the server's output folder (absolute path; created).
      export: write ``model.keras`` and a SavedModel at the end.
      reply_timeout: seconds a node's work may take: a work not back by then counts as a
        failure of its node (and the server waits as long for ``min_nodes`` nodes to connect).
      max_consecutive_failures: a node whose works fail this many times in a row (an error
        reply, or none within ``reply_timeout``) is dropped from the run.
    """

    algorithm: str = "fedbuff"
    policy: str = "staleness"
    importance: str = "data-size"
    buffer_size: int = 2
    delta_t: float = 10.0
    aggregations: int = 20
    min_nodes: int = 2
    model: str = "logistic"
    dataset: str = "digits"
    alpha: float = 1.0
    beta: float = 1.0
    client_optimizer: str = "sgd"
    client_lr: float = 0.1
    coordinate_clip: float = 0.0
    local_steps: int = 10
    batch_size: int = 32
    server_optimizer: str = "sgd"
    server_lr: float = 1.0
    server_momentum: float = 0.9
    seed: int = 0
    out: str = "flower_async_run"
    export: bool = True
    reply_timeout: float = 600.0
    max_consecutive_failures: int = 3

    def __post_init__(self):
        for name, choices in (("algorithm", ALGORITHMS), ("policy", POLICIES), ("importance", IMPORTANCES),
                              ("model", MODELS), ("dataset", DATASETS),
                              ("client_optimizer", CLIENT_OPTIMIZERS), ("server_optimizer", SERVER_OPTIMIZERS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name.replace('_', '-')} must be one of {choices}, got {getattr(self, name)!r}")
        for name in ("buffer_size", "aggregations", "min_nodes", "local_steps", "batch_size",
                     "max_consecutive_failures"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")
        for name in ("delta_t", "client_lr", "server_lr", "reply_timeout"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name.replace('_', '-')} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.coordinate_clip < 1:
            raise ValueError(f"coordinate-clip must be in [0, 1), got {self.coordinate_clip!r}")
        if self.model == "cnn" and self.dataset != "digits":
            raise ValueError("the cnn model is for the digits images; use logistic on synthetic")
        if self.algorithm == "fedbuff" and self.buffer_size > self.min_nodes:
            raise ValueError(f"FedBuff's buffer size {self.buffer_size} is larger than the number of "
                             f"nodes ({self.min_nodes}): its clients wait for the step")

    @classmethod
    def from_run_config(cls, run_config):
        """The settings of a Flower run configuration (hyphenated keys; unknown keys refused).

        Args:
          run_config: ``context.run_config``, or any mapping of the same keys.
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values = {}
        for key, value in run_config.items():
            name = key.replace("-", "_")
            if name not in fields:
                raise ValueError(f"unknown run-config key {key!r}; known: {sorted(run_config_defaults())}")
            kind = type(fields[name].default)
            values[name] = kind(value) if kind is float and isinstance(value, int) else value
        return cls(**values)


def run_config_defaults():
    """``{run-config key: default}``: what ``app/pyproject.toml`` declares."""
    return {f.name.replace("_", "-"): f.default for f in dataclasses.fields(Settings)}
