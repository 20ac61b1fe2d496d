r"""One robust peer-to-peer experiment (MoNNA or a baseline, under an attack): its data, process
and evaluation, and what its output folder records: the track that
``tff_experiments.program.output_folder`` runs.

``RobustExperiment`` builds the process of a run's ``RobustSettings``, feeds it one batch per
honest machine per step and evaluates every honest machine's model on held-out data.
``run_robust_experiment(settings)`` runs it into ``settings.out`` (layout of
``tff_experiments.program.run_dir``)::

    metrics.csv, tensorboard/   per evaluation: mean and worst honest accuracy, mean honest
                                test loss, spread (max distance between honest models),
                                training loss, learning rate, attack factor, distance of the
                                Byzantine vector to the honest mean, gradients computed per
                                honest machine per step, wall seconds per step
    checkpoints/                the whole state (server state, every honest machine's model and
                                momentum) for exact resume
    model/                      one honest machine's final model (model.keras, saved_model/)
    summary.json                the final metrics and the settings

Batches are a stateless function of ``(seed, step, machine)`` and the receptions of
``(seed, step)``, so the state in a checkpoint is all a resumed run needs to repeat the
uninterrupted one bit for bit.
"""
import collections
import functools
import json
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tff_experiments import models
from tff_experiments.data import partitions
from tff_experiments.data.digits import load_digits_split
from tff_experiments.data.mnist import IMAGE_SHAPE as MNIST_SHAPE, load_mnist_split
from tff_experiments.program.export import export_keras_and_savedmodel
from tff_experiments.program.metrics import read_metrics
from tff_experiments.program.output_folder import train_in_folder
from tff_experiments.program.run_dir import json_safe, run_paths
from tff_experiments.program.sync import run_sync
from tff_experiments.robust.process import FlatModel, initial_client_states, monna_computations


# --dataset -> --model -> tff_experiments.models builder. MNIST's cnn is the authors' own
# (simples-conv), its logistic the multinomial regression on the pixels.
BUILDERS = {
    "digits": {"logistic": models.digits_logistic, "cnn": models.digits_cnn},
    "mnist": {"logistic": functools.partial(models.image_logistic, input_shape=MNIST_SHAPE, num_classes=10),
              "cnn": models.lenet_cnn},
}


def keras_builder(name, dataset="digits"):
    """The ``tff_experiments.models`` builder of a ``--model`` name (``logistic`` or ``cnn``).

    Args:
      name: the model's name.
      dataset: the data set it is for (``digits`` or ``mnist``).
    """
    builders = BUILDERS.get(dataset)
    if builders is None:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(BUILDERS)}")
    if name not in builders:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(builders)}")
    return builders[name]


class HonestData:
    """The honest machines' local data and the batch each one draws at each step.

    Machine ``j``'s batch at step ``t`` is ``batch_size`` of its examples drawn without
    replacement (with replacement if it has fewer) by a generator seeded with ``(seed, t, j)``.
    """

    def __init__(self, client_arrays, batch_size, seed):
        self.arrays = client_arrays
        self.batch_size = int(batch_size)
        self.seed = int(seed)

    @property
    def num_machines(self):
        return len(self.arrays)

    def batch_spec(self):
        first = self.arrays[0]
        return collections.OrderedDict(
            x=tf.TensorSpec([self.batch_size] + list(first["x"].shape[1:]), tf.as_dtype(first["x"].dtype)),
            y=tf.TensorSpec([self.batch_size], tf.as_dtype(first["y"].dtype)),
        )

    def batches(self, step):
        out = []
        for j, arrays in enumerate(self.arrays):
            rng = np.random.default_rng([self.seed, int(step), j])
            size = len(arrays["y"])
            chosen = rng.choice(size, self.batch_size, replace=size < self.batch_size)
            out.append(collections.OrderedDict(x=arrays["x"][chosen], y=arrays["y"][chosen]))
        return out


def honest_setup(settings):
    """``(HonestData, (x_test, y_test))``: ``settings.dataset``'s training split across the honest
    machines by ``settings.partition`` (``tff_experiments.data.partitions``; on digits with the
    default partition, ``digits_client_data``'s split), and its held-out split.

    Args:
      settings: the run's ``RobustSettings``.
    """
    load = load_mnist_split if settings.dataset == "mnist" else load_digits_split
    x_train, y_train, x_test, y_test = load(seed=settings.seed)
    parts = partitions.partition(settings.partition, y_train, settings.num_honest, settings.alpha, settings.seed)
    arrays = [{"x": x_train[idx], "y": y_train[idx]} for idx in parts]
    return HonestData(arrays, settings.batch_size, settings.seed), (x_test, y_test)


digits_setup = honest_setup  # its former name


def evaluate_honest(builder, flat_model, thetas, x_test, y_test):
    """Test accuracy and loss of every honest machine's model: ``(accuracies, losses)``."""
    results = [models.evaluate_weights(builder, flat_model.unflatten_numpy(theta), x_test, y_test) for theta in thetas]
    return [r["accuracy"] for r in results], [r["loss"] for r in results]


def max_pairwise_distance(thetas):
    r""":math:`\max_{i,j} \lVert\theta_i - \theta_j\rVert_2` over the honest models (float64, exact 0 if equal)."""
    stacked = np.stack([np.asarray(t, np.float64) for t in thetas])
    return float(max(np.max(np.linalg.norm(stacked - row, axis=1)) for row in stacked))




class RobustExperiment:
    """The run of ``settings``: its process, data and evaluation, and what its output folder
    records (``metrics.csv``, ``model/``); the track that ``train_in_folder`` runs.

    Args:
      settings: the run's ``RobustSettings``.
      data: the honest machines' ``HonestData`` (default: ``honest_setup(settings)``).
      test: ``(x_test, y_test)``, given with ``data``.
    """

    progress_unit = "steps"
    event_fields = None
    update_fields = None

    def __init__(self, settings, data=None, test=None):
        self.settings = settings
        self.run_config = settings.as_dict()
        if data is None:
            data, test = honest_setup(settings)
        self.data, (self.x_test, self.y_test) = data, test
        if data.num_machines != settings.num_honest:
            raise ValueError(f"the data has {data.num_machines} machines, the run {settings.num_honest} honest ones")
        self.builder = keras_builder(settings.model, settings.dataset)
        batch_spec = data.batch_spec()
        self.flat_model = FlatModel(self.builder, batch_spec, seed=settings.seed)
        computations = monna_computations(self.flat_model, settings, batch_spec)
        self.process = tff.templates.IterativeProcess(computations.initialize, computations.next)
        self.mix = computations.mix  # the server's mixing alone (for timing it)
        self.num_steps = self.horizon = settings.steps
        self._evaluation = (None, None)  # (steps done, the evaluation of that step's models)
        self.final_thetas = None  # the honest models, once the run is done

    # -- the program logic's hooks (tff_experiments.program.training); the state is its own
    # program state: NumPy arrays in a fixed structure.
    def initial_state(self):
        server = self.process.initialize()
        return collections.OrderedDict(
            server=collections.OrderedDict(step=np.int64(server["step"]), seed=np.int64(server["seed"])),
            clients=initial_client_states(self.flat_model, self.settings.num_honest),
        )

    def program_state_template(self):
        return self.initial_state()

    def to_program_state(self, state):
        return state

    def from_program_state(self, saved):
        return saved

    def steps_done(self, state):
        return int(state["server"]["step"])

    def next(self, state):
        """One training step of every machine; returns ``(new_state, train_metrics)``, the metrics
        with the step's wall time (``step_seconds``)."""
        start = time.perf_counter()
        server, clients, metrics = self.process.next(
            state["server"], state["clients"], self.data.batches(self.steps_done(state)))
        new_state = collections.OrderedDict(
            server=collections.OrderedDict(step=np.int64(server["step"]), seed=np.int64(server["seed"])),
            clients=[
                collections.OrderedDict(
                    index=np.int32(c["index"]), theta=np.asarray(c["theta"]), momentum=np.asarray(c["momentum"])
                )
                # Remote workers return their shares of the machines in the order they finish.
                for c in sorted(clients, key=lambda c: int(c["index"]))
            ],
        )
        train_metrics = {k: float(v) for k, v in metrics.items()}
        train_metrics["step_seconds"] = time.perf_counter() - start
        return new_state, train_metrics

    def step(self, state):
        """``next`` without the wall time: ``(new_state, train_metrics)``."""
        state, train_metrics = self.next(state)
        train_metrics.pop("step_seconds")
        return state, train_metrics

    def thetas(self, state):
        """The honest machines' models (flat vectors), in machine order."""
        return [c["theta"] for c in state["clients"]]

    def model_release(self, state):
        return self.thetas(state)

    def final_model(self, state):
        return self.thetas(state)

    # -- evaluation
    def evaluate(self, state, per_machine=False):
        """Mean and worst honest test accuracy, mean test loss, spread (and the accuracies)."""
        return self.evaluate_models(self.thetas(state), per_machine=per_machine)

    def evaluate_models(self, thetas, per_machine=False):
        """``evaluate`` of the honest models ``thetas``."""
        accuracies, losses = evaluate_honest(self.builder, self.flat_model, thetas, self.x_test, self.y_test)
        result = {
            "mean_accuracy": float(np.mean(accuracies)),
            "worst_accuracy": float(np.min(accuracies)),
            "mean_test_loss": float(np.mean(losses)),
            "spread": max_pairwise_distance(thetas),
        }
        if per_machine:
            result["accuracies"] = [float(a) for a in accuracies]
        return result

    def final_evaluation(self):
        """``evaluate(..., per_machine=True)`` of the final models (evaluated once)."""
        steps, evaluation = self._evaluation
        if steps != self.num_steps:
            evaluation = self.evaluate_models(self.final_thetas, per_machine=True)
            self._evaluation = (self.num_steps, evaluation)
        return dict(evaluation)

    # -- what the output folder records (tff_experiments.program.output_folder)
    def clock(self, steps_done):
        return steps_done

    def evaluation_due(self, steps_done):
        return steps_done % self.settings.eval_every == 0 or steps_done == self.num_steps

    def metrics(self, steps_done, thetas, train_metrics):
        """The ``metrics.csv`` row after ``steps_done`` steps: the honest models' evaluation, the
        last step's training metrics and the mean wall time of the steps since the last row."""
        evaluation = self.evaluate_models(thetas, per_machine=True)
        self._evaluation = (steps_done, evaluation)
        row = {k: v for k, v in evaluation.items() if k != "accuracies"}
        if not train_metrics:  # step 0
            return dict(row, step_seconds=0.0)
        last = train_metrics[-1]
        return dict(
            row,
            train_loss=last["train_loss"],
            learning_rate=last["learning_rate"],
            attack_factor=last["attack_factor"],
            byzantine_distance=last["byzantine_distance"],
            honest_gradients_per_step=last["honest_gradients"],
            attack_gradients_per_step=last["attack_gradients"],
            step_seconds=float(np.mean([t["step_seconds"] for t in train_metrics])),
        )

    def progress_fields(self, row):
        if "mean_accuracy" not in row:
            return {}
        return {"acc": f"{row['mean_accuracy']:.3f}", "worst": f"{row['worst_accuracy']:.3f}"}

    def export(self, thetas, model_dir):
        self.final_thetas = thetas
        machine = self.settings.export_machine
        return export_keras_and_savedmodel(self.builder, self.flat_model.unflatten_numpy(thetas[machine]),
                                           model_dir, seed=self.settings.seed)


def run_robust_experiment(settings, out_dir=None, data=None, test=None):
    """Runs (or resumes) ``settings`` into ``out_dir`` (default ``settings.out``); writes and
    returns the summary (``summary.json``).

    Args:
      settings: the run's ``RobustSettings``.
      out_dir: the output folder (default ``settings.out``).
      data: the honest machines' ``HonestData`` (default: ``honest_setup(settings)``).
      test: ``(x_test, y_test)``, given with ``data``.
    """
    out = Path(settings.out if out_dir is None else out_dir)
    out.mkdir(parents=True, exist_ok=True)
    experiment = RobustExperiment(settings, data=data, test=test)
    steps = run_sync(train_in_folder(experiment, out, checkpoint_every=settings.checkpoint_every,
                                     progress=settings.progress))
    rows = read_metrics(run_paths(out)["metrics"])
    final = experiment.final_evaluation()
    accuracies = final.pop("accuracies")
    timed = [r["step_seconds"] for r in rows if r["step"] > 0]
    summary = {
        "settings": settings.as_dict(),
        "steps": steps,
        "final": final,
        "final_accuracies": accuracies,
        "mean_step_seconds": float(np.mean(timed)) if timed else None,
        "honest_gradients_per_step": rows[-1].get("honest_gradients_per_step"),
        "attack_gradients_per_step": rows[-1].get("attack_gradients_per_step"),
        "exported_machine": settings.export_machine,
    }
    summary = json_safe(summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, allow_nan=False))
    return summary
