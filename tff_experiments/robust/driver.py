r"""The plain-Python driver of a MoNNA / robust peer-to-peer run: data, steps, evaluation, files.

``run_monna(settings, out_dir)`` builds the process for ``settings`` (a ``RunSettings``), feeds
it one batch per honest machine per step, evaluates every honest machine's model on held-out
data, and writes (layout of ``tff_experiments.program.run_dir``)::

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
import dataclasses
import json
import time
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from tff_experiments.robust.process import FlatModel, MonnaConfig, MonnaProcess
from tff_experiments.robust.rules import MixingRule


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Everything that determines a run's result (a resume must use the same)."""

    num_machines: int = 26
    num_byzantine: int = 5
    rule: str = "nna"
    attack: str = "alie"
    momentum: float = 0.99
    reception: str = "authors"
    attack_factor: Optional[float] = None
    learning_rate: float = 0.75
    decay: float = 50.0
    decay_delta: int = 50
    l2_regularization: float = 1e-4
    batch_size: int = 25
    steps: int = 600
    alpha: float = 1.0
    model: str = "logistic"
    seed: int = 0
    clip_threshold: float = 2.0
    clip_iterations: int = 3
    krum_squared: bool = True
    mimic_target: int = 0

    def config(self):
        rule = MixingRule(
            self.rule,
            f=self.num_byzantine,
            clip_threshold=self.clip_threshold,
            clip_iterations=self.clip_iterations,
            krum_squared=self.krum_squared,
        )
        return MonnaConfig(
            num_machines=self.num_machines,
            num_byzantine=self.num_byzantine,
            rule=rule,
            attack=self.attack,
            momentum=self.momentum,
            learning_rate=self.learning_rate,
            decay=self.decay,
            decay_delta=self.decay_delta,
            l2_regularization=self.l2_regularization,
            reception=self.reception,
            attack_factor=self.attack_factor,
            mimic_target=self.mimic_target,
            seed=self.seed,
        )

    def as_dict(self):
        return dataclasses.asdict(self)


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
    """One configured run: the process, the data, the initial state, and ``step``/``evaluate``."""

    def __init__(self, settings, data=None, test=None):
        self.settings = settings
        self.config = settings.config()
        if data is None:
            data, test = digits_setup(settings)
        self.data, (self.x_test, self.y_test) = data, test
        if data.num_machines != self.config.num_honest:
            raise ValueError(f"the data has {data.num_machines} machines, the run {self.config.num_honest} honest ones")
        self.builder = keras_builder(settings.model)
        batch_spec = data.batch_spec()
        self.flat_model = FlatModel(self.builder, batch_spec, seed=settings.seed)
        self.process = MonnaProcess(self.flat_model, self.config, batch_spec)

    def initial_state(self):
        return collections.OrderedDict(
            server=self.process.initial_server_state(), clients=self.process.initial_client_states()
        )

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


def run_monna(settings, out_dir, eval_every=10, checkpoint_every=50, export_machine=0, progress=None, data=None, test=None):
    """Runs (or resumes) ``settings`` into ``out_dir``; returns the summary dict."""
    from tff_experiments.program.checkpoints import Checkpointer
    from tff_experiments.program.export import export_keras_and_savedmodel
    from tff_experiments.program.metrics import MetricsLogger
    from tff_experiments.program.progress import VirtualTimeProgress
    from tff_experiments.program.run_dir import run_paths

    for name, value in (("eval_every", eval_every), ("checkpoint_every", checkpoint_every)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value}")
    if not 0 <= export_machine < settings.num_machines - settings.num_byzantine:
        raise ValueError(
            f"the exported machine must be honest: 0 <= machine < {settings.num_machines - settings.num_byzantine}"
        )
    if settings.steps < 1:
        raise ValueError(f"the number of steps must be >= 1, got {settings.steps}")
    run = MonnaRun(settings, data=data, test=test)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    checkpointer = Checkpointer(out, every=checkpoint_every, config=settings.as_dict())
    state, step = checkpointer.load_latest(run.initial_state())
    resumed = state is not None
    if not resumed:
        state, step = run.initial_state(), 0
    metrics = MetricsLogger(out, resume_step=step if resumed else None)
    if not resumed:
        metrics.log(0, dict(run.evaluate(state), step_seconds=0.0))
        checkpointer.save(state, 0)
    last = {}
    seconds, timed_steps = 0.0, 0
    with metrics, VirtualTimeProgress(horizon=settings.steps, initial=step, desc="steps", force=progress) as bar:
        while step < settings.steps:
            start = time.perf_counter()
            state, train = run.step(state)
            seconds += time.perf_counter() - start
            timed_steps += 1
            step += 1
            if step % eval_every == 0 or step == settings.steps:
                evaluation = run.evaluate(state)
                last = dict(
                    evaluation,
                    train_loss=train["train_loss"],
                    learning_rate=train["learning_rate"],
                    attack_factor=train["attack_factor"],
                    byzantine_distance=train["byzantine_distance"],
                    honest_gradients_per_step=train["honest_gradients"],
                    attack_gradients_per_step=train["attack_gradients"],
                    step_seconds=seconds / timed_steps,
                )
                metrics.log(step, last)
                seconds, timed_steps = 0.0, 0
                bar.advance_to(step, acc=f"{evaluation['mean_accuracy']:.3f}", worst=f"{evaluation['worst_accuracy']:.3f}")
            else:
                bar.advance_to(step)
            if step % checkpoint_every == 0 or step == settings.steps:
                checkpointer.save(state, step)
    final = run.evaluate(state, per_machine=True)
    accuracies = final.pop("accuracies")
    rows = metrics.rows()
    timed = [r["step_seconds"] for r in rows if r["step"] > 0]
    summary = {
        "settings": settings.as_dict(),
        "steps": step,
        "final": final,
        "final_accuracies": accuracies,
        "mean_step_seconds": float(np.mean(timed)) if timed else None,
        "honest_gradients_per_step": last.get("honest_gradients_per_step", rows[-1].get("honest_gradients_per_step")),
        "attack_gradients_per_step": last.get("attack_gradients_per_step", rows[-1].get("attack_gradients_per_step")),
        "exported_machine": export_machine,
    }
    export_keras_and_savedmodel(
        run.builder,
        run.flat_model.unflatten_numpy(state["clients"][export_machine]["theta"]),
        run_paths(out)["model"],
        seed=settings.seed,
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
