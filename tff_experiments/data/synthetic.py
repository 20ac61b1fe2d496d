r"""Synthetic(:math:`\alpha`, :math:`\beta`) of Li et al., "Federated Optimization in Heterogeneous
Networks" (FedProx, MLSys 2020), generated per client, lazily, for any number of clients.

The recipe is the authors' generator (litian96/FedProx, ``data/synthetic_1_1/generate_synthetic.py``
and ``data/synthetic_iid/generate_iid.py``; LEAF's ``data/synthetic`` is another, clustered,
generator). For client k, with D = 60 features and C = 10 classes:

.. math::

    u_k \sim \mathcal N(0, \alpha^2), \quad W_k \in \mathbb R^{D\times C},\ b_k \in \mathbb R^C
        \text{ with entries} \sim \mathcal N(u_k, 1);
    \qquad B_k \sim \mathcal N(0, \beta^2), \quad v_k \in \mathbb R^D \text{ with entries}
        \sim \mathcal N(B_k, 1);

    x \sim \mathcal N(v_k, \Sigma), \ \Sigma = \mathrm{diag}(j^{-1.2})_{j=1..D}; \qquad
    y = \arg\max_c \mathrm{softmax}(x W_k + b_k)_c.

The paper writes :math:`\mathcal N(0, \alpha)`; the code draws ``np.random.normal(0, alpha)``,
whose second argument is the *standard deviation*: here too (the two agree at the usual
:math:`\alpha, \beta \in \{0, 0.5, 1\}` only for 0 and 1). :math:`\alpha` sets how different the
clients' labelling models are, :math:`\beta` how different their feature distributions are.
The IID variant (``iid=True``, the authors' ``synthetic_iid``) shares one
:math:`W, b \sim \mathcal N(0, 1)` between all clients and has :math:`v_k = 0`.

Client sizes, as in the code (the paper says "power law"): :math:`n_k = \lfloor e^{Z}\rfloor + 50`,
:math:`Z \sim \mathcal N(4, 2^2)` (``np.random.lognormal(4, 2).astype(int) + 50``), no cap. As
the authors do, each client's first :math:`\lfloor 0.9\, n_k \rfloor` examples are its training data
and the rest its test data (they shuffle before splitting; the examples are i.i.d., so that
changes nothing in distribution).

Differences from the authors' script, by design: every random draw of client k comes from its
own generator, seeded by ``(seed, k)`` (the script runs one global stream over all clients), so a
client's data does not depend on how many clients there are nor on the order they are asked
for, and nothing is generated before it is needed. A client's examples come from a
counter-based (Philox) stream, example r from its own block of draws, so that a local work
generates only its B examples (``client_rows``), not the whole client. The label is the argmax of the logits, the
same as the argmax of their softmax (whose ``exp`` overflows for logits above ~709, where the
script's argmax then picks the first overflowing class).

Nothing here imports TensorFlow or TFF: the data set as TFF ``ClientData`` is in
``tff_experiments.data.synthetic_federated``.
"""
import collections
import functools

import numpy as np

NUM_FEATURES = 60
NUM_CLASSES = 10
TRAIN_FRACTION = 0.9
# Client sizes: floor(lognormal(mean=4, sigma=2)) + 50, as the authors' generator.
SIZE_LOG_MEAN, SIZE_LOG_SIGMA, MIN_SIZE = 4.0, 2.0, 50
# Streams of the per-client generators: (seed, stream, client).
SIZE_STREAM, CLIENT_STREAM, SHARED_STREAM = 0, 1, 2


def feature_variances(num_features=NUM_FEATURES):
    r""":math:`\Sigma_{jj} = j^{-1.2}`, j = 1..D, for D = ``num_features``."""
    return np.arange(1, num_features + 1, dtype=np.float64) ** -1.2


def client_id(k):
    """The authors' user name of client ``k`` (``f_00000``, ``f_00001``, ...)."""
    return f"f_{k:05d}"


ClientParameters = collections.namedtuple("ClientParameters", ["u", "W", "b", "B", "v"])


class SyntheticGenerator:
    r"""Synthetic(:math:`\alpha`, :math:`\beta`) for clients 0, 1, ...: every method is a pure
    function of ``(alpha, beta, iid, seed, client)``.

    Args:
      alpha: the standard deviation of the clients' model means :math:`u_k`, >= 0.
      beta: the standard deviation of the clients' feature means :math:`B_k`, >= 0.
      iid: the authors' IID variant (one shared model, :math:`v_k = 0`; alpha, beta unused).
      seed: the seed of every draw.
      max_examples: optional cap on :math:`n_k` (the authors have none; the lognormal tail
        gives a few clients tens of thousands of examples).
    """

    def __init__(self, alpha=1.0, beta=1.0, iid=False, seed=0, max_examples=None):
        for name, value in (("alpha", alpha), ("beta", beta)):
            if not (isinstance(value, (int, float, np.floating, np.integer)) and np.isfinite(value)
                    and value >= 0):
                raise ValueError(f"Synthetic {name} must be a finite number >= 0, got {value!r}")
        if max_examples is not None and (int(max_examples) != max_examples or max_examples < 2):
            raise ValueError(f"max_examples must be an integer >= 2, got {max_examples!r}")
        self.alpha, self.beta, self.iid = float(alpha), float(beta), bool(iid)
        self.seed = int(seed)
        self.max_examples = None if max_examples is None else int(max_examples)
        self._scales = np.sqrt(feature_variances())
        self._sizes = {}

    def _rng(self, stream, client=0):
        return np.random.default_rng([self.seed, stream, int(client)])

    def num_examples(self, k):
        """:math:`n_k`, train and test together."""
        if k not in self._sizes:  # an int per client asked for (a generator costs ~0.1 ms)
            n = int(self._rng(SIZE_STREAM, k).lognormal(SIZE_LOG_MEAN, SIZE_LOG_SIGMA)) + MIN_SIZE
            self._sizes[k] = n if self.max_examples is None else min(n, self.max_examples)
        return self._sizes[k]

    def num_train_examples(self, k):
        return int(TRAIN_FRACTION * self.num_examples(k))

    @functools.cached_property
    def _shared_model(self):
        rng = self._rng(SHARED_STREAM)
        return rng.normal(0.0, 1.0, (NUM_FEATURES, NUM_CLASSES)), rng.normal(0.0, 1.0, NUM_CLASSES)

    def parameters(self, k):
        """Client k's :math:`u_k, W_k, b_k, B_k, v_k` (float64); and the RNG, positioned after
        them (the examples come from their own stream: ``feature_noise``)."""
        rng = self._rng(CLIENT_STREAM, k)
        if self.iid:
            W, b = self._shared_model
            return ClientParameters(0.0, W, b, 0.0, np.zeros(NUM_FEATURES)), rng
        u = rng.normal(0.0, self.alpha)
        B = rng.normal(0.0, self.beta)
        v = rng.normal(B, 1.0, NUM_FEATURES)
        W = rng.normal(u, 1.0, (NUM_FEATURES, NUM_CLASSES))
        b = rng.normal(u, 1.0, NUM_CLASSES)
        return ClientParameters(u, W, b, B, v), rng

    def feature_noise(self, k, rows):
        r"""Standard normal draws ``(len(rows), D)`` of client k's examples ``rows``: example r is
        the Box-Muller transform of the outputs :math:`rD .. rD + D - 1` of a counter-based
        Philox stream keyed by (seed, k). Any example is generated alone, at the cost of its own
        draws: a local work of B examples costs the same whatever :math:`n_k` (a client of the
        lognormal tail has 10^5 examples)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        bit_generator = np.random.Philox(key=np.array([self.seed, k], dtype=np.uint64))
        if len(rows) and np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows))):
            raw = self._draws(bit_generator, rows[0], len(rows)).reshape(len(rows), NUM_FEATURES)
        else:
            raw = np.empty((len(rows), NUM_FEATURES), dtype=np.uint64)
            for j, r in enumerate(rows):
                raw[j] = self._draws(bit_generator, r, 1)
        u = ((raw >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53  # uniform in (0, 1)
        radius, angle = np.sqrt(-2.0 * np.log(u[:, 0::2])), 2.0 * np.pi * u[:, 1::2]
        z = np.empty_like(u)
        z[:, 0::2], z[:, 1::2] = radius * np.cos(angle), radius * np.sin(angle)
        return z

    @staticmethod
    def _draws(bit_generator, row, count):
        """``count`` examples' raw outputs from example ``row`` on (4 outputs per counter step)."""
        state = bit_generator.state
        state["state"]["counter"][:] = (int(row) * (NUM_FEATURES // 4), 0, 0, 0)
        state["buffer_pos"] = 4  # no buffered outputs: start at the counter
        bit_generator.state = state
        return bit_generator.random_raw(count * NUM_FEATURES)

    def examples_at(self, k, rows):
        """Client k's examples ``rows`` (indices in ``0 .. n_k - 1``): ``x`` float32 ``(len(rows),
        60)``, ``y`` int32 (labels computed in float64, as the authors)."""
        params, _ = self.parameters(k)
        x = params.v + self.feature_noise(k, rows) * self._scales
        y = np.argmax(x @ params.W + params.b, axis=1)
        return x.astype(np.float32), y.astype(np.int32)

    def client_examples(self, k):
        """All :math:`n_k` examples of client k (``examples_at`` every row)."""
        return self.examples_at(k, np.arange(self.num_examples(k)))

    def client_split(self, k, split):
        """Client k's ``"train"`` (first 90%) or ``"test"`` (the rest) examples as
        ``{'x': ..., 'y': ...}`` (only that split's examples are generated)."""
        n, cut = self.num_examples(k), self.num_train_examples(k)
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        x, y = self.examples_at(k, np.arange(0, cut) if split == "train" else np.arange(cut, n))
        return {"x": x, "y": y}
