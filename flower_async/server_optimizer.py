r"""The server's update from the weighted sum of the clients' updates, in NumPy.

The schemes' server update (``tff_experiments.asynchronous.schedule``) is
:math:`\theta^{n+1} = \theta^n + \eta_g \sum_{i \in S_n} d_i \Delta_i`, each :math:`\Delta_i`
a client's local weights minus the (possibly stale) weights it was sent. As in TFF's
``build_weighted_fed_avg``, a server optimizer takes :math:`g = -\sum_i d_i \Delta_i` as its
gradient: ``sgd`` is the update above, ``sgdm`` adds heavy-ball momentum
(:math:`v \leftarrow \mu v + g`, :math:`\theta \leftarrow \theta - \eta_g v`, TFF's
``build_sgdm``), ``adam`` is Adam (Reddi et al.'s FedAdam, with bias correction as TFF's
``build_adam``, :math:`\epsilon = 10^{-7}`).
"""
import numpy as np


class ServerOptimizer:
    """A server optimizer and its state (``slots``), saved in the checkpoint.

    Args:
      name: ``sgd``, ``sgdm`` or ``adam``.
      learning_rate: :math:`\\eta_g`.
      momentum: :math:`\\mu` of ``sgdm``.
    """

    def __init__(self, name, learning_rate, momentum=0.9):
        if name not in ("sgd", "sgdm", "adam"):
            raise ValueError(f"unknown server optimizer {name!r}")
        self.name, self.learning_rate, self.momentum = name, float(learning_rate), float(momentum)
        self.slots = {}
        self.steps = 0

    def apply(self, weights, update):
        """The new weights, from ``update`` :math:`= \\sum_i d_i \\Delta_i`.

        Args:
          weights: the current global weights (a list of arrays).
          update: the weighted sum of the updates, the same shapes.
        """
        grads = [-np.asarray(u, dtype=np.float64) for u in update]
        self.steps += 1
        if self.name == "sgd":
            steps = grads
        elif self.name == "sgdm":
            velocity = self.slots.get("velocity", [np.zeros_like(g) for g in grads])
            velocity = [self.momentum * v + g for v, g in zip(velocity, grads)]
            self.slots["velocity"] = velocity
            steps = velocity
        else:
            b1, b2, t = 0.9, 0.999, self.steps
            m = [b1 * a + (1 - b1) * g for a, g in zip(self.slots.get("m", [0.0] * len(grads)), grads)]
            v = [b2 * a + (1 - b2) * g * g for a, g in zip(self.slots.get("v", [0.0] * len(grads)), grads)]
            self.slots["m"], self.slots["v"] = m, v
            scale = np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            steps = [scale * a / (np.sqrt(b) + 1e-7) for a, b in zip(m, v)]
        return [(np.asarray(w, dtype=np.float64) - self.learning_rate * s).astype(np.asarray(w).dtype)
                for w, s in zip(weights, steps)]

    def state(self):
        """``{name: array}`` of the slots and the step count, for ``numpy.savez``."""
        state = {"optimizer_steps": np.asarray(self.steps)}
        for slot, arrays in self.slots.items():
            for k, a in enumerate(arrays):
                state[f"optimizer_{slot}_{k}"] = np.asarray(a)
        return state

    def load(self, state):
        """Restores ``state()``.

        Args:
          state: a mapping as ``state()`` returns.
        """
        self.steps = int(state["optimizer_steps"])
        self.slots = {}
        for key in sorted(k for k in state if k.startswith("optimizer_") and k != "optimizer_steps"):
            slot, _, k = key[len("optimizer_"):].rpartition("_")
            self.slots.setdefault(slot, []).append((int(k), np.asarray(state[key])))
        self.slots = {slot: [a for _, a in sorted(arrays)] for slot, arrays in self.slots.items()}
