r"""The server's update from the weighted sum of the clients' updates, in NumPy.

The schemes' server update (``tff_experiments.asynchronous.schedule``) is
:math:`\theta^{n+1} = \theta^n + \eta_g \sum_{i \in S_n} d_i \Delta_i`, each :math:`\Delta_i`
a client's local weights minus the (possibly stale) weights it was sent. As in TFF's
``build_weighted_fed_avg``, a server optimizer takes :math:`g = -\sum_i d_i \Delta_i` as its
gradient: ``sgd`` is the update above, ``sgdm`` adds heavy-ball momentum
(:math:`v \leftarrow \mu v + g`, :math:`\theta \leftarrow \theta - \eta_g v`, TFF's
``build_sgdm``), ``adam`` is Adam (Reddi et al.'s FedAdam, with bias correction as TFF's
``build_adam``, :math:`\epsilon = 10^{-7}`). The steps are ``keras_optim.math``'s, the Keras
optimizers' own (``sgdm``'s velocity kept in Keras' form, :math:`-\eta_g v`).
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
        # The math is keras_optim's (the Keras optimizers' own steps), on float64 copies.
        from keras_optim.backend import ops
        from keras_optim.math import adam, sgd
        from keras_optim.math.slots import StateSlots

        self.steps += 1
        names = {"sgd": (), "sgdm": sgd.SLOTS, "adam": adam.SLOTS}[self.name]
        step = ops.convert_to_tensor(self.steps, dtype="float64")
        for n in names:
            self.slots.setdefault(n, [np.zeros(np.shape(u)) for u in update])
        new_weights = []
        for k, (w, u) in enumerate(zip(weights, update)):
            gradient = -np.asarray(u, dtype=np.float64)
            slots = StateSlots({n: self.slots[n][k] for n in names})
            if self.name == "adam":
                delta = self.learning_rate * adam.adam_step(gradient, slots, step, beta_1=0.9, beta_2=0.999,
                                                            epsilon=1e-7)
            else:
                delta = sgd.sgd_delta(gradient, slots, self.learning_rate,
                                      momentum=self.momentum if self.name == "sgdm" else 0.0)
            for n in names:
                self.slots[n][k] = np.asarray(slots[n])
            new_weights.append((np.asarray(w, dtype=np.float64) - np.asarray(delta)).astype(np.asarray(w).dtype))
        return new_weights

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
