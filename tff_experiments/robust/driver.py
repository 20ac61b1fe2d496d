r"""The plain-Python driver of a MoNNA / robust peer-to-peer run: data, steps, evaluation, files.

``RunSettings`` holds every setting of a run, validated once, when it is built (errors name the
flag of ``python -m tff_experiments.robust``). ``MonnaRun`` is the run's track for the shared
loop (``tff_experiments.program.loop``): it builds the process for the settings, feeds it one
batch per honest machine per step and evaluates every honest machine's model on held-out data.
``run_monna(settings)`` runs it into ``settings.out`` (layout of
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
import json
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tff_experiments.program.cli import json_safe
from tff_experiments.robust.settings import RunSettings  # noqa: F401  (the settings of a run)

def keras_builder(name):
    from tff_experiments import models

    builders = {"logistic": models.digits_logistic, "cnn": models.digits_cnn}
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


def digits_setup(settings):
    """``(HonestData, (x_test, y_test))``: digits split by Dirichlet(alpha) over the honest machines."""
    from tff_experiments.data.digits import digits_client_data

    honest = settings.num_machines - settings.num_byzantine
    client_data, test = digits_client_data(honest, settings.alpha, seed=settings.seed)
    arrays = [client_data.client_arrays(str(j)) for j in range(honest)]
    return HonestData(arrays, settings.batch_size, settings.seed), test


def evaluate_honest(builder, flat_model, thetas, x_test, y_test):
    """Test accuracy and loss of every honest machine's model: ``(accuracies, losses)``."""
    from tff_experiments.models import evaluate_weights

    results = [evaluate_weights(builder, flat_model.unflatten_numpy(theta), x_test, y_test) for theta in thetas]
    return [r["accuracy"] for r in results], [r["loss"] for r in results]


def max_pairwise_distance(thetas):
    """:math:`\max_{i,j} \lVert\theta_i - \theta_j\rVert_2` over the honest models (float64, exact 0 if equal)."""
    stacked = np.stack([np.asarray(t, np.float64) for t in thetas])
    return float(max(np.max(np.linalg.norm(stacked - row, axis=1)) for row in stacked))


class MonnaRun:
    """One configured run: the process, the data, the initial state, ``step`` and ``evaluate``;
    the track that ``tff_experiments.program.loop.run_loop`` runs."""

    progress_unit = "steps"
    event_fields = None

    def __init__(self, settings, data=None, test=None):
        from tff_experiments.robust.process import FlatModel, monna_computations

        self.settings = settings
        self.config = settings.config()
        self.run_config = settings.as_dict()
        if data is None:
            data, test = digits_setup(settings)
        self.data, (self.x_test, self.y_test) = data, test
        if data.num_machines != self.config.num_honest:
            raise ValueError(f"the data has {data.num_machines} machines, the run {self.config.num_honest} honest ones")
        self.builder = keras_builder(settings.model)
        batch_spec = data.batch_spec()
        self.flat_model = FlatModel(self.builder, batch_spec, seed=settings.seed)
        computations = monna_computations(self.flat_model, self.config, batch_spec)
        self.process = tff.templates.IterativeProcess(computations.initialize, computations.next)
        self.mix = computations.mix  # the server's mixing alone (for timing it)
        self.num_steps = self.horizon = settings.steps

    def initial_state(self):
        from tff_experiments.robust.process import initial_client_states

        server = self.process.initialize()
        return collections.OrderedDict(
            server=collections.OrderedDict(step=np.int64(server["step"]), seed=np.int64(server["seed"])),
            clients=initial_client_states(self.flat_model, self.config.num_honest),
        )

    # The state is its own checkpoint: NumPy arrays in a fixed structure.
    def checkpoint_template(self):
        return self.initial_state()

    def to_checkpoint(self, state):
        return state

    def from_checkpoint(self, saved):
        return saved

    def step(self, state):
        """One training step of every machine; returns ``(new_state, train_metrics)``."""
        step = int(state["server"]["step"])
        server, clients, metrics = self.process.next(state["server"], state["clients"], self.data.batches(step))
        new_state = collections.OrderedDict(
            server=collections.OrderedDict(step=np.int64(server["step"]), seed=np.int64(server["seed"])),
            clients=[
                collections.OrderedDict(
                    index=np.int32(c["index"]), theta=np.asarray(c["theta"]), momentum=np.asarray(c["momentum"])
                )
                for c in clients
            ],
        )
        return new_state, {k: float(v) for k, v in metrics.items()}

    def thetas(self, state):
        return [c["theta"] for c in state["clients"]]

    def evaluate(self, state, per_machine=False):
        """Mean and worst honest test accuracy, mean test loss, spread (and the accuracies)."""
        accuracies, losses = evaluate_honest(self.builder, self.flat_model, self.thetas(state), self.x_test, self.y_test)
        result = {
            "mean_accuracy": float(np.mean(accuracies)),
            "worst_accuracy": float(np.min(accuracies)),
            "mean_test_loss": float(np.mean(losses)),
            "spread": max_pairwise_distance(self.thetas(state)),
        }
        if per_machine:
            result["accuracies"] = [float(a) for a in accuracies]
        return result

    # -- the loop's hooks
    def clock(self, steps_done):
        return steps_done

    def evaluation_due(self, steps_done):
        return steps_done % self.settings.eval_every == 0 or steps_done == self.num_steps

    def metrics(self, steps_done, state, train, step_seconds):
        if train is None:  # step 0
            return dict(self.evaluate(state), step_seconds=0.0)
        return dict(
            self.evaluate(state),
            train_loss=train["train_loss"],
            learning_rate=train["learning_rate"],
            attack_factor=train["attack_factor"],
            byzantine_distance=train["byzantine_distance"],
            honest_gradients_per_step=train["honest_gradients"],
            attack_gradients_per_step=train["attack_gradients"],
            step_seconds=step_seconds,
        )

    def progress_fields(self, row):
        if "mean_accuracy" not in row:
            return {}
        return {"acc": f"{row['mean_accuracy']:.3f}", "worst": f"{row['worst_accuracy']:.3f}"}

    def export(self, state, model_dir):
        from tff_experiments.program.export import export_keras_and_savedmodel

        machine = self.settings.export_machine
        return export_keras_and_savedmodel(self.builder, self.flat_model.unflatten_numpy(self.thetas(state)[machine]),
                                           model_dir, seed=self.settings.seed)


def run_monna(settings, out_dir=None, data=None, test=None):
    """Runs (or resumes) ``settings`` into ``out_dir`` (default ``settings.out``); writes and
    returns the summary (``summary.json``)."""
    from tff_experiments.program.loop import run_loop

    out = Path(settings.out if out_dir is None else out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = MonnaRun(settings, data=data, test=test)
    state, rows = run_loop(run, out, checkpoint_every=settings.checkpoint_every, progress=settings.progress)
    final = run.evaluate(state, per_machine=True)
    accuracies = final.pop("accuracies")
    timed = [r["step_seconds"] for r in rows if r["step"] > 0]
    summary = {
        "settings": settings.as_dict(),
        "steps": int(state["server"]["step"]),
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
