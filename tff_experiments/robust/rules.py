r"""The per-machine mixing rules by name, with one calling convention.

A honest machine receives ``k`` vectors, its own first, and replaces its model by
``MixingRule(...)(received)``. ``f`` is the number of Byzantine vectors the rule is told to
tolerate (the authors' ``--nb-decl-byz``).

=====================  =======================================================  ==============
name                   result for ``received = [x_0 (own), x_1, ..., x_{k-1}]``  paper's name
=====================  =======================================================  ==============
``nna``                mean of the ``k - f`` nearest to ``x_0`` (``nna.py``)     MoNNA / NNA
``average``            mean of all ``k``                                         D-SGD
``trimmed_mean``       coordinate-wise trimmed mean (``coordinatewise.py``)      MoCWTM / BRIDGE
``median``             coordinate-wise median (``coordinatewise.py``)            (Mo)CWMed
``geometric_median``   smoothed Weiszfeld from 0 (``geometric_median.py``)       MoGM / GM
``centered_clipping``  clipping centered on ``x_0`` (``centered_clipping.py``)   SCC
``krum``               Krum (``krum.py``)                                        Krum
=====================  =======================================================  ==============

"Mo" is the same rule run with worker momentum :math:`\beta = 0.99`.
"""
import dataclasses

import tensorflow as tf

from tff_experiments.robust.centered_clipping import centered_clipping
from tff_experiments.robust.coordinatewise import coordinate_median, trimmed_mean
from tff_experiments.robust.geometric_median import geometric_median
from tff_experiments.robust.krum import krum
from tff_experiments.robust.nna import nearest_neighbor_average
from tff_experiments.robust.choices import RULE_NAMES, check_rule_input

# Rules whose result depends on which received vector is the machine's own.
OWN_DEPENDENT_RULES = frozenset({"nna", "centered_clipping"})


@dataclasses.dataclass(frozen=True)
class MixingRule:
    """A named mixing rule with its parameters; call it on ``received`` ``[k, d]`` (own first).

    Attributes:
      name: one of ``RULE_NAMES``.
      f: number of Byzantine vectors tolerated (used by nna, trimmed_mean, krum).
      clip_threshold: :math:`\\tau` of centered clipping.
      clip_iterations: :math:`L` of centered clipping.
      smoothing: :math:`\\nu` of the geometric median.
      weiszfeld_iterations: :math:`T` of the geometric median.
      krum_squared: Krum scores with squared distances (paper, byzfl) or plain ones (MoNNA code).
    """

    name: str
    f: int = 0
    clip_threshold: float = 2.0
    clip_iterations: int = 3
    smoothing: float = 0.1
    weiszfeld_iterations: int = 3
    krum_squared: bool = True

    def __post_init__(self):
        if self.name not in RULE_NAMES:
            raise ValueError(f"unknown mixing rule {self.name!r}; choose one of {', '.join(RULE_NAMES)}")
        if isinstance(self.f, bool) or int(self.f) != self.f or self.f < 0:
            raise ValueError(f"f must be an integer >= 0, got {self.f!r}")
        if self.clip_threshold < 0 or self.clip_iterations < 0:
            raise ValueError("centered clipping needs clip_threshold >= 0 and clip_iterations >= 0")
        if self.smoothing <= 0 or self.weiszfeld_iterations < 1:
            raise ValueError("the geometric median needs smoothing > 0 and weiszfeld_iterations >= 1")

    @property
    def depends_on_own(self):
        return self.name in OWN_DEPENDENT_RULES

    def check(self, num_received):
        """Raises ``ValueError`` when the rule cannot mix ``num_received`` vectors with this f."""
        check_rule_input(self.name, num_received, self.f)

    def __call__(self, received):
        """The mixing result ``[..., d]`` of ``received`` ``[..., k, d]``, own vector first.

        Leading dimensions are independent machines (see ``mix_each``).
        """
        received = tf.convert_to_tensor(received)
        own = received[..., 0, :]
        if self.name == "nna":
            return nearest_neighbor_average(received, own, tf.shape(received)[-2] - self.f)
        if self.name == "average":
            return tf.reduce_mean(received, axis=-2)
        if self.name == "trimmed_mean":
            return trimmed_mean(received, self.f)
        if self.name == "median":
            return coordinate_median(received)
        if self.name == "geometric_median":
            return geometric_median(received, self.smoothing, self.weiszfeld_iterations)
        if self.name == "centered_clipping":
            return centered_clipping(received, own, self.clip_threshold, self.clip_iterations)
        return krum(received, self.f, squared=self.krum_squared)

    def mix_each(self, received):
        """Applies the rule to every machine at once: ``received`` ``[h, k, d]`` -> ``[h, d]``."""
        received = tf.convert_to_tensor(received)
        if received.shape.rank != 3:
            raise ValueError(f"mix_each takes [machines, received, dimension], got shape {received.shape}")
        return self(received)
