"""Checkpoints of a run's whole state, for exact resume, on ``tff.program.FileProgramStateManager``.

The contract: a driver that saves everything its future depends on (model weights, optimizer
states, the virtual clock and schedule, every random generator) can be killed at any moment,
restarted with the same command, and end bit-identical to an uninterrupted run.

A state is any nesting (``tf.nest``: dicts, lists, tuples, namedtuples, attrs classes such as
``tff.learning.models.ModelWeights``) of

- NumPy arrays and scalars (any dtype but object; exact bits are kept), TF tensors (come back
  as NumPy arrays);
- Python ``bool``, ``int``, ``float`` (kept as float64, so exactly), ``str``, ``None``;
- ``numpy.random.Generator`` (its bit generator's full state; a new Generator in that state
  comes back).

Each checkpoint is two values for ``FileProgramStateManager``: a JSON header describing the
leaves (shape, dtype, offset; Python ints, strings and generator states inline) and one uint8
buffer with the raw bytes of every array and float, so saving costs the same whatever the number
of leaves. The manager writes each version to a temporary folder and renames it, so a kill
during a save leaves the previous checkpoint intact. The header also holds the run's
configuration (optional), so a restart with a different command (or a different state layout)
is refused with a one-line ``ValueError`` instead of resuming the wrong run.
"""
import json
import shutil
import sys

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tff_experiments.program import run_dir
from tff_experiments.program.sync import run_sync

FORMAT_VERSION = 1
PREFIX = "step_"
DAMAGED_DIR = "checkpoints_damaged"


def _json_array(value):
    """JSON for the NumPy arrays inside some bit generators' states (MT19937's key)."""
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store a {type(value).__name__} in a checkpoint")


def _json_array_hook(obj):
    return np.array(obj["__ndarray__"], dtype=obj["dtype"]) if "__ndarray__" in obj else obj


def encode_leaves(leaves):
    """``(leaf headers, one uint8 buffer)``: arrays and floats as raw bytes, the rest as JSON.

    Packing every array into one buffer keeps a save to two SavedModel variables, whatever the
    number of leaves (each variable costs ~10 ms to save).
    """
    headers, chunks, offset = [], [], 0

    def put(array, header):
        nonlocal offset
        raw = np.ascontiguousarray(array).tobytes()
        header.update(dtype=array.dtype.str, shape=list(array.shape), offset=offset, nbytes=len(raw))
        chunks.append(raw)
        offset += len(raw)
        return header

    for leaf in leaves:
        if isinstance(leaf, np.random.Generator):
            headers.append({"kind": "generator", "state": leaf.bit_generator.state})
        elif leaf is None:
            headers.append({"kind": "none"})
        elif isinstance(leaf, (bool, int, str)):
            headers.append({"kind": type(leaf).__name__, "value": leaf})
        elif isinstance(leaf, float):
            headers.append(put(np.array(leaf, dtype=np.float64), {"kind": "float"}))
        else:
            if isinstance(leaf, (tf.Tensor, tf.Variable)):
                leaf = leaf.numpy()
            if not isinstance(leaf, (np.ndarray, np.generic)):
                raise TypeError(f"checkpoints cannot hold a {type(leaf).__name__}")
            array = np.asarray(leaf)
            if array.dtype.hasobject:
                raise TypeError("checkpoints cannot hold object arrays")
            kind = "ndarray" if isinstance(leaf, np.ndarray) else "npscalar"
            headers.append(put(array, {"kind": kind}))
    return headers, np.frombuffer(b"".join(chunks), dtype=np.uint8)


def decode_leaves(headers, buffer):
    buffer = np.asarray(buffer, dtype=np.uint8)
    leaves = []
    for header in headers:
        kind = header["kind"]
        if kind == "generator":
            bit_generator = getattr(np.random, header["state"]["bit_generator"])()
            bit_generator.state = header["state"]
            leaves.append(np.random.Generator(bit_generator))
        elif kind == "none":
            leaves.append(None)
        elif kind in ("bool", "int", "str"):
            leaves.append(header["value"])
        else:
            raw = buffer[header["offset"]:header["offset"] + header["nbytes"]].tobytes()
            array = np.frombuffer(raw, dtype=np.dtype(header["dtype"])).reshape(header["shape"]).copy()
            leaves.append(float(array) if kind == "float" else array[()] if kind == "npscalar" else array)
    return leaves


def _as_bytes(value):
    value = np.asarray(value).reshape(-1)[0] if isinstance(value, np.ndarray) else value
    return value if isinstance(value, bytes) else bytes(value)


def _kind_of(leaf):
    """The header kind a template leaf expects (``None``: unknown, matches anything)."""
    if isinstance(leaf, np.random.Generator):
        return "generator"
    if leaf is None:
        return "none"
    if isinstance(leaf, (bool, int, str, float)):
        return type(leaf).__name__
    if isinstance(leaf, (np.ndarray, tf.Tensor, tf.Variable)):
        return "ndarray"
    if isinstance(leaf, np.generic):
        return "npscalar"
    return None


class Checkpointer:
    """Saves a run's state every ``every`` server steps (and at the end), and loads the latest.

    Checkpoints live in ``out_dir/checkpoints/step_<n>``; the ``keep`` latest are kept.

    Args:
      out_dir: the run's output folder.
      every: save when ``step % every == 0`` (``maybe_save``); ``every >= 1``.
      keep: how many checkpoints to keep (older ones are removed).
      config: optional JSON-serialisable dict of the run's settings; a checkpoint written with
        another config is refused by ``load_latest``.
    """

    def __init__(self, out_dir, every, keep=3, config=None):
        import tensorflow_federated as tff

        if isinstance(every, bool) or int(every) != every or every < 1:
            raise ValueError(f"the checkpoint interval must be an integer >= 1, got {every}")
        self.every = int(every)
        self.directory = run_dir.run_paths(out_dir)["checkpoints"]
        self.config = None if config is None else json.loads(json.dumps(config))
        self.directory.mkdir(parents=True, exist_ok=True)
        for leftover in self.directory.glob(f"{PREFIX}*_temp*"):  # a save killed half-way
            shutil.rmtree(leftover, ignore_errors=True)
        self._manager = tff.program.FileProgramStateManager(
            str(self.directory), prefix=PREFIX, keep_total=int(keep), keep_first=False
        )

    def versions(self):
        """The steps that have a checkpoint, ascending."""
        return run_sync(self._manager.get_versions()) or []

    def save(self, state, step):
        """Saves ``state`` as the checkpoint of server step ``step``; returns False if one exists."""
        step = int(step)
        if step in self.versions():
            return False
        headers, buffer = encode_leaves(tf.nest.flatten(state))
        header = {"format": FORMAT_VERSION, "step": step, "config": self.config, "leaves": headers}
        header_json = json.dumps(header, default=_json_array)
        payload = [np.array(header_json.encode("utf-8"), dtype=object), buffer]
        run_sync(self._manager.save(payload, step))
        return True

    def maybe_save(self, state, step):
        """``save`` if ``step`` is a multiple of ``every``; returns whether it saved."""
        return int(step) % self.every == 0 and self.save(state, step)

    def load(self, step, structure_template):
        """The state of the checkpoint of server step ``step`` (see ``load_latest``)."""
        header_bytes, buffer = run_sync(self._manager.load(int(step), [None, None]))
        header = json.loads(_as_bytes(header_bytes).decode("utf-8"), object_hook=_json_array_hook)
        self._check(header, tf.nest.flatten(structure_template))
        return tf.nest.pack_sequence_as(structure_template, decode_leaves(header["leaves"], buffer))

    def load_latest(self, structure_template):
        """``(state, step)`` of the latest readable checkpoint, or ``(None, 0)`` if there is none.

        ``structure_template`` is a state of the same structure (e.g. the freshly initialised
        state): its nesting is used to rebuild the loaded leaves. A checkpoint that cannot be
        read (a damaged file) is moved to ``checkpoints_damaged/`` with a one-line warning, and the
        previous kept one is loaded instead.

        Raises:
          ValueError (one line): the checkpoint belongs to a run with another config or state
            layout, or no kept checkpoint can be read.
        """
        template_leaves = tf.nest.flatten(structure_template)
        damaged = []
        for step in reversed(self.versions()):
            try:
                header_bytes, buffer = run_sync(self._manager.load(step, [None, None]))
                header = json.loads(_as_bytes(header_bytes).decode("utf-8"), object_hook=_json_array_hook)
            except Exception as error:  # noqa: BLE001 - a damaged or half-deleted checkpoint
                damaged.append((step, f"{type(error).__name__}: {' '.join(str(error).split())[:160]}"))
                self._set_aside(step)
                continue
            self._check(header, template_leaves)
            if damaged:
                print(f"warning: {self._damage_note(damaged)}; resuming from {PREFIX}{step}", file=sys.stderr, flush=True)
            return tf.nest.pack_sequence_as(structure_template, decode_leaves(header["leaves"], buffer)), step
        if damaged:
            raise ValueError(f"{self._damage_note(damaged)} and no older checkpoint is kept: start again in another "
                             "output folder")
        return None, 0

    def _damage_note(self, damaged):
        names = ", ".join(f"{PREFIX}{step}" for step, _ in damaged)
        return (f"cannot read {names} in {self.directory} ({damaged[0][1]}); moved to "
                f"{self.directory.with_name(DAMAGED_DIR)}")

    def _set_aside(self, step):
        """Moves a damaged checkpoint out of the way, so that the step can be saved again."""
        target = self.directory.with_name(DAMAGED_DIR) / f"{PREFIX}{step}"
        target.parent.mkdir(exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(str(self.directory / f"{PREFIX}{step}"), str(target))

    def _check(self, header, template_leaves):
        where = f"the checkpoint in {self.directory}"
        if header.get("config") != self.config:
            old, new = header.get("config") or {}, self.config or {}
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ValueError(
                f"{where} is from a run with other settings ({', '.join(changed) or 'config'}): "
                "use the same command to resume, or another output folder"
            )
        kinds = [h["kind"] for h in header["leaves"]]
        expected = [_kind_of(leaf) for leaf in template_leaves]
        mismatch = len(kinds) != len(expected) or any(
            e is not None and e != k for e, k in zip(expected, kinds)
        )
        if not mismatch:
            mismatch = any(
                h["kind"] == "ndarray" and isinstance(t, np.ndarray) and list(t.shape) != h["shape"]
                for h, t in zip(header["leaves"], template_leaves)
            )
        if mismatch:
            raise ValueError(f"{where} holds a state of another layout: use another output folder")


class CheckpointStateManager(tff.program.ProgramStateManager):
    """A ``Checkpointer`` as a ``tff.program.ProgramStateManager`` (the output folder's
    ``checkpoints/``: the settings checked on resume, a damaged checkpoint set aside for the
    previous one).

    Args:
      checkpointer: the ``Checkpointer`` of the run's output folder.

    ``resumed_from``: the step of the state ``load_latest`` found (``None``: a fresh run).
    """

    def __init__(self, checkpointer):
        self.checkpointer = checkpointer
        self.resumed_from = None

    async def get_versions(self):
        return self.checkpointer.versions() or None

    async def load(self, version, structure):
        if version not in self.checkpointer.versions():
            raise tff.program.ProgramStateNotFoundError(version)
        return self.checkpointer.load(version, structure)

    async def load_latest(self, structure):
        state, step = self.checkpointer.load_latest(structure)
        self.resumed_from = step if state is not None else None
        return state, step

    async def save(self, program_state, version):
        self.checkpointer.save(program_state, version)
