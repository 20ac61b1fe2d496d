r"""Byzantine-robust collaborative learning in TFF: MoNNA, its baselines, attacks and aggregators.

Farhadkhani, Guerraoui, Gupta, Hoang, Pinot, Stephan, "Robust Collaborative Learning with Linear
Gradient Overhead", ICML 2023 (arXiv:2209.10931); the authors' code is
LPD-EPFL/robust-collaborative-learning (``peerToPeer.py``).

- the mixing rules, plain TensorFlow functions of a ``[k, d]`` tensor of vectors:
  ``nna.py`` (NNA, NNM), ``coordinatewise.py`` (trimmed mean, median), ``geometric_median.py``,
  ``centered_clipping.py``, ``krum.py``; ``rules.py`` names them and gives them one calling
  convention (the machine's own vector first);
- ``attacks.py``: what the Byzantine machines send (sign flipping, ALIE, FOE, label flipping,
  mimic), with the authors' line search of the attack factor;
- ``aggregators.py``: the same rules as unweighted ``tff.aggregators`` factories for
  server-based federated learning (``tff.learning.algorithms.build_weighted_fed_avg``);
- ``process.py``: the peer-to-peer training step as TFF computations (stateful honest clients);
- ``driver.py``: runs it (data, evaluation, metrics, checkpoints); ``tff_experiments.monna`` is
  the command line.

Importing this package imports TensorFlow but not TFF (``aggregators``, ``process`` and
``driver`` do).
"""
from tff_experiments.robust.attacks import ATTACK_NAMES
from tff_experiments.robust.centered_clipping import centered_clipping
from tff_experiments.robust.coordinatewise import coordinate_median, trimmed_mean
from tff_experiments.robust.geometric_median import geometric_median
from tff_experiments.robust.krum import krum
from tff_experiments.robust.nna import nearest_neighbor_average, nearest_neighbor_mixing
from tff_experiments.robust.rules import RULE_NAMES, MixingRule

__all__ = [
    "ATTACK_NAMES",
    "RULE_NAMES",
    "MixingRule",
    "centered_clipping",
    "coordinate_median",
    "geometric_median",
    "krum",
    "nearest_neighbor_average",
    "nearest_neighbor_mixing",
    "trimmed_mean",
]
