"""Data sets: digits split by Dirichlet(alpha), Shakespeare roles, real loaders on generated data."""
import collections

import numpy as np
import pytest

tff = pytest.importorskip("tensorflow_federated")
import tensorflow as tf  # noqa: E402

from tff_experiments.data import digits  # noqa: E402

# ---------------------------------------------------------------------------------------------
# digits


def test_load_digits_split_is_sklearn_digits_scaled_and_stratified():
    from sklearn.datasets import load_digits

    x_train, y_train, x_test, y_test = digits.load_digits_split(test_fraction=0.2, seed=0)
    assert x_train.shape[1:] == (8, 8, 1) and x_test.shape[1:] == (8, 8, 1)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int32 and y_test.dtype == np.int32
    assert len(x_train) + len(x_test) == 1797 and len(x_test) == 360
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    # The same examples as scikit-learn's, pixel for pixel (0..16 scaled to 0..1).
    raw = load_digits()
    want = sorted(map(bytes, np.column_stack([raw.images.reshape(-1, 64) / 16.0, raw.target]).astype(np.float32)))
    got = np.column_stack(
        [np.concatenate([x_train, x_test]).reshape(-1, 64), np.concatenate([y_train, y_test])]
    ).astype(np.float32)
    assert sorted(map(bytes, got)) == want
    # Stratified: each class's share of the test set within one example of 20%.
    for k in range(10):
        total = np.sum(raw.target == k)
        assert abs(np.sum(y_test == k) - 0.2 * total) <= 1
    again = digits.load_digits_split(test_fraction=0.2, seed=0)
    np.testing.assert_array_equal(again[0], x_train)
    other = digits.load_digits_split(test_fraction=0.2, seed=1)
    assert not np.array_equal(other[1], y_train)


def test_dirichlet_alpha_zero_gives_one_class_per_client_round_robin():
    labels = np.repeat(np.arange(10), 100)
    parts = digits.dirichlet_partition(labels, num_clients=25, alpha=0, seed=3)
    assert len(parts) == 25
    for i, idx in enumerate(parts):
        assert set(labels[idx]) == {i % 10}
        assert len(idx) == 1000 // 25 and len(np.unique(idx)) == len(idx)


def test_dirichlet_sizes_and_no_duplicates_within_a_client():
    labels = np.random.default_rng(0).integers(0, 10, size=1437)
    for alpha in (0.05, 1.0, 100.0):
        parts = digits.dirichlet_partition(labels, num_clients=20, alpha=alpha, seed=0)
        for idx in parts:
            assert 1 <= len(idx) <= 1437 // 20
            assert len(np.unique(idx)) == len(idx)
            assert idx.min() >= 0 and idx.max() < 1437
        if alpha >= 1.0:  # no class runs short, so every client gets exactly floor(N/M)
            assert all(len(idx) == 1437 // 20 for idx in parts)


@pytest.mark.parametrize("alpha", [0.3, 1.0, 10.0])
def test_dirichlet_class_proportions_follow_the_dirichlet_moments(alpha):
    # Var[p_k] = (1/K)(1-1/K)/(K alpha + 1) for p ~ Dir(alpha 1_K); mean 1/K.
    num_classes, num_clients = 10, 400
    labels = np.repeat(np.arange(num_classes), 40_000)
    parts = digits.dirichlet_partition(labels, num_clients=num_clients, alpha=alpha, seed=1)
    shares = np.array([np.bincount(labels[idx], minlength=num_classes) / len(idx) for idx in parts])
    want_var = (1 / num_classes) * (1 - 1 / num_classes) / (num_classes * alpha + 1)
    np.testing.assert_allclose(shares.mean(), 1 / num_classes, rtol=1e-6)
    np.testing.assert_allclose(shares.mean(axis=0), np.full(num_classes, 1 / num_classes), atol=4 * np.sqrt(want_var / num_clients))
    np.testing.assert_allclose(shares.var(axis=0).mean(), want_var, rtol=0.15)


def test_dirichlet_is_reproducible_and_seeded():
    labels = np.repeat(np.arange(10), 50)
    a = digits.dirichlet_partition(labels, 7, 0.5, seed=4)
    b = digits.dirichlet_partition(labels, 7, 0.5, seed=4)
    c = digits.dirichlet_partition(labels, 7, 0.5, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(num_clients=5, alpha=-0.1), "alpha"),
        (dict(num_clients=5, alpha=float("nan")), "alpha"),
        (dict(num_clients=0, alpha=1.0), "clients"),
        (dict(num_clients=2.5, alpha=1.0), "clients"),
        (dict(num_clients=101, alpha=1.0), "only 100"),
    ],
)
def test_dirichlet_bad_input_is_a_one_line_value_error(kwargs, fragment):
    with pytest.raises(ValueError) as info:
        digits.dirichlet_partition(np.repeat(np.arange(10), 10), seed=0, **kwargs)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_every_client_gets_an_example_even_at_one_example_each():
    labels = np.repeat(np.arange(10), 3)
    parts = digits.dirichlet_partition(labels, num_clients=30, alpha=0.1, seed=0)
    assert sorted(len(p) for p in parts) == [1] * 30


def test_digits_client_data_is_a_client_data_over_the_training_split():
    client_data, (x_test, y_test) = digits.digits_client_data(num_clients=6, alpha=0.5, seed=2)
    assert isinstance(client_data, tff.simulation.datasets.ClientData)
    assert client_data.client_ids == [str(i) for i in range(6)]
    spec = client_data.element_type_structure
    assert spec["x"] == tf.TensorSpec((8, 8, 1), tf.float32) and spec["y"] == tf.TensorSpec((), tf.int32)
    x_train, y_train, x_test2, _ = digits.load_digits_split(seed=2)
    np.testing.assert_array_equal(x_test, x_test2)
    train_rows = {bytes(x) + bytes(y) for x, y in zip(x_train, y_train)}
    for cid in client_data.client_ids:
        examples = list(client_data.create_tf_dataset_for_client(cid).as_numpy_iterator())
        assert 1 <= len(examples) == client_data.client_sizes[cid] <= len(x_train) // 6
        assert all(bytes(e["x"]) + bytes(e["y"]) in train_rows for e in examples)
    # The serializable path (inside tf.function / TFF computations) gives the same data.
    via_fn = list(tf.function(client_data.serializable_dataset_fn)(tf.constant("4")).as_numpy_iterator())
    direct = list(client_data.create_tf_dataset_for_client("4").as_numpy_iterator())
    assert len(via_fn) == len(direct)
    assert all(np.array_equal(a["x"], b["x"]) and a["y"] == b["y"] for a, b in zip(via_fn, direct))
    with pytest.raises(ValueError):
        client_data.create_tf_dataset_for_client("6")
    pooled = client_data.create_tf_dataset_from_all_clients()
    assert sum(1 for _ in pooled) == sum(client_data.client_sizes.values())


# ---------------------------------------------------------------------------------------------
# Shakespeare

from tff_experiments.data import shakespeare  # noqa: E402

FAKE_PLAY = """THE TRAGEDY OF FAKE

by Nobody


Persons Represented.

Lear, King of Nowhere.
Fool.



ACT I.

Scene I. A Room.

[Enter Lear and the Fool.]

Lear.
Nothing will come of nothing:
speak again.

FOOL.
Prithee, nuncle, [Aside.] keep
a fool.

[Exit Lear, attended by
Knights.]

Lear.
Farewell.

SCENE II. Elsewhere.

CHORUS.

O for a Muse of fire,
that would ascend.

Lear
Not a speaker tag: no period, not in capitals.

ACT II.

Fool.
Have more than thou showest.
"""

FAKE_ROLES = {
    "Lear": "Nothing will come of nothing:\nspeak again.\nFarewell.",
    "FOOL": "Prithee, nuncle, keep\na fool.",
    "CHORUS": "O for a Muse of fire,\nthat would ascend.\nLear\nNot a speaker tag: no period, not in capitals.",
    "Fool": "Have more than thou showest.",
}


def write_fake_corpus(root, plays):
    folder = root / "shakespeare"
    folder.mkdir(parents=True)
    meta = []
    for stem, (title, text) in plays.items():
        (folder / f"{stem}_gut.txt").write_text(text)
        (folder / f"{stem}_gut_f.txt").write_text("  Lear. A First Folio duplicate, skipped.\n")
        meta.append(f"[{stem}_gut]\ntitle = {title}\n")
    (folder / "metadata.txt").write_text("\n".join(meta))
    return folder


def test_speaking_roles_parses_speaker_tags_and_drops_directions():
    assert shakespeare.speaking_roles(FAKE_PLAY) == FAKE_ROLES


def test_read_plays_uses_the_data_dir_and_metadata_titles(tmp_path, monkeypatch):
    folder = write_fake_corpus(tmp_path, {"fake": ("The Tragedy of Fake", FAKE_PLAY)})
    (folder / "poem_gut.txt").write_text("SONNET\n\nShall I compare thee\nto a summer's day?\r\n")
    monkeypatch.setenv("KERAS_OPTIM_DATA", str(tmp_path))
    assert shakespeare.plays_dir() == folder
    plays = shakespeare.read_plays()
    assert sorted(plays) == ["Poem", "The Tragedy of Fake"]
    assert plays["The Tragedy of Fake"] == FAKE_PLAY and "\r" not in plays["Poem"]


def test_missing_texts_are_a_one_line_file_not_found_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_OPTIM_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError) as info:
        shakespeare.read_plays()
    message = str(info.value)
    assert "scripts/fetch_data.sh" in message and "\n" not in message


def test_char_vocab_is_tffs():
    from tensorflow_federated.python.simulation.baselines.shakespeare import char_prediction_preprocessing as ref

    assert shakespeare.char_vocab() == ref.CHAR_VOCAB
    assert shakespeare.VOCAB_SIZE == len(ref.CHAR_VOCAB) + 4
    assert tuple(shakespeare.SPECIAL_TOKENS) == ref.get_special_tokens()


@pytest.mark.parametrize("seq_len", [80, 7])
def test_char_sequences_equal_tffs_shakespeare_preprocessing(seq_len):
    from tensorflow_federated.python.simulation.baselines import client_spec
    from tensorflow_federated.python.simulation.baselines.shakespeare import char_prediction_preprocessing as ref

    text = FAKE_ROLES["Lear"] + "\n{unknown} \u00e9 chars" + FAKE_ROLES["CHORUS"]
    x, y = shakespeare.to_char_sequences(text, seq_len=seq_len)
    preprocess = ref.create_preprocess_fn(
        client_spec.ClientSpec(num_epochs=1, batch_size=1000, shuffle_buffer_size=1), sequence_length=seq_len
    )
    ((want_x, want_y),) = list(preprocess(tf.data.Dataset.from_tensor_slices({"snippets": [text]})).as_numpy_iterator())
    assert x.dtype == np.int32 and x.shape == (len(want_x), seq_len)
    np.testing.assert_array_equal(x, want_x)
    np.testing.assert_array_equal(y, want_y)
    assert shakespeare.decode(np.concatenate([x[:, :1], y], axis=1)).startswith(FAKE_ROLES["Lear"])


def fake_plays():
    second = FAKE_PLAY.replace("Lear", "Regan").replace("FOOL", "EDGAR") + "\nRegan.\n" + "A much longer speech. " * 40
    return {"The Tragedy of Fake": FAKE_PLAY, "Second Fake": second}


def test_shakespeare_client_data_one_client_per_role_with_held_out_tail():
    client_data, (x_test, y_test) = shakespeare.shakespeare_client_data(min_chars=20, seq_len=10, plays=fake_plays())
    assert client_data.client_ids == [
        "SECOND_FAKE_CHORUS", "SECOND_FAKE_EDGAR", "SECOND_FAKE_FOOL", "SECOND_FAKE_REGAN",
        "THE_TRAGEDY_OF_FAKE_CHORUS", "THE_TRAGEDY_OF_FAKE_FOOL", "THE_TRAGEDY_OF_FAKE_LEAR",
    ]  # every role has >= 20 characters ("Fool" has 28); FOOL and Fool are two roles
    spec = client_data.element_type_structure
    assert spec["x"] == tf.TensorSpec((10,), tf.int32) and spec["y"] == tf.TensorSpec((10,), tf.int32)
    roles = shakespeare.speaking_roles(fake_plays()["Second Fake"])
    # Training windows then held-out windows give back the role's whole text, in order.
    regan = client_data.client_arrays("SECOND_FAKE_REGAN")
    x_all, _ = shakespeare.to_char_sequences(roles["Regan"], 10)
    n_test = int(np.floor(0.2 * len(x_all)))
    assert n_test >= 1 and len(regan["x"]) == len(x_all) - n_test
    np.testing.assert_array_equal(regan["x"], x_all[: len(x_all) - n_test])
    # Held-out windows are pooled in client-id order; REGAN's come after CHORUS, EDGAR, FOOL's.
    before = sum(
        int(np.floor(0.2 * len(shakespeare.to_char_sequences(roles[r], 10)[0]))) for r in ("CHORUS", "EDGAR", "Fool")
    )
    np.testing.assert_array_equal(x_test[before:before + n_test], x_all[len(x_all) - n_test:])
    assert len(x_test) == len(y_test) and x_test.dtype == np.int32
    first = next(iter(client_data.create_tf_dataset_for_client("SECOND_FAKE_REGAN")))
    np.testing.assert_array_equal(first["x"].numpy(), x_all[0])


def test_shakespeare_client_data_filters_and_samples_roles():
    plays = fake_plays()
    big, _ = shakespeare.shakespeare_client_data(min_chars=200, seq_len=10, plays=plays)
    assert big.client_ids == ["SECOND_FAKE_REGAN"]
    some, _ = shakespeare.shakespeare_client_data(min_chars=1, max_clients=3, seq_len=10, seed=1, plays=plays)
    again, _ = shakespeare.shakespeare_client_data(min_chars=1, max_clients=3, seq_len=10, seed=1, plays=plays)
    assert len(some.client_ids) == 3 and some.client_ids == again.client_ids == sorted(some.client_ids)
    with pytest.raises(ValueError, match="at least 10000 characters"):
        shakespeare.shakespeare_client_data(min_chars=10_000, plays=plays)
    with pytest.raises(ValueError, match="max_clients"):
        shakespeare.shakespeare_client_data(max_clients=0, plays=plays)


def test_corpus_reader_imports_neither_tensorflow_nor_tff():
    import subprocess
    import sys

    code = (
        "import sys, tff_experiments.data.shakespeare, tff_experiments.data.digits;"
        "bad = [m for m in ('tensorflow', 'tensorflow_federated') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.skipif(not (shakespeare.plays_dir() / ".complete").exists(), reason="run scripts/fetch_data.sh")
def test_real_plays_parse_into_hundreds_of_roles():
    plays = shakespeare.read_plays()
    assert len(plays) >= 37 and "King Lear" in plays
    lear = shakespeare.speaking_roles(plays["King Lear"])
    assert {"Lear", "Kent", "Glou", "Edg", "Fool", "Cor"} <= set(lear)
    assert lear["Kent"].startswith("I thought the King had more affected the Duke of Albany than\nCornwall.")
    tempest = shakespeare.speaking_roles(plays["The Tempest"])
    assert {"PROSPERO", "MIRANDA", "ARIEL", "CALIBAN"} <= set(tempest)
    counts = [len(shakespeare.speaking_roles(t)) for t in plays.values()]
    assert sum(counts) > 1000  # LEAF has 1129 roles over the complete works


# ---------------------------------------------------------------------------------------------
# Real loaders, on small generated data in their download formats

from tff_experiments.data import real  # noqa: E402


def raw_emnist(num_clients, rng):
    return tff.simulation.datasets.TestClientData(
        {
            f"f{i:04d}_{i}": collections.OrderedDict(
                label=rng.integers(0, 10, size=3).astype(np.int32),
                pixels=rng.random((3, 28, 28)).astype(np.float32),
            )
            for i in range(num_clients)
        }
    )


def test_emnist_loader_preprocesses_tffs_format(monkeypatch):
    rng = np.random.default_rng(0)
    raw_train, raw_test = raw_emnist(4, rng), raw_emnist(4, rng)
    calls = []

    def fake_load_data(only_digits=True, cache_dir=None):
        calls.append((only_digits, cache_dir))
        return raw_train, raw_test

    monkeypatch.setattr(tff.simulation.datasets.emnist, "load_data", fake_load_data)
    train, test = real.emnist_client_data(only_digits=False, cache_dir="/somewhere")
    assert calls == [(False, "/somewhere")]
    assert train.client_ids == raw_train.client_ids
    spec = train.element_type_structure
    assert spec["x"] == tf.TensorSpec((28, 28, 1), tf.float32) and spec["y"] == tf.TensorSpec((), tf.int32)
    cid = train.client_ids[2]
    got = list(train.create_tf_dataset_for_client(cid).as_numpy_iterator())
    want = list(raw_train.create_tf_dataset_for_client(cid).as_numpy_iterator())
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g["x"][..., 0], w["pixels"])
        assert g["y"] == w["label"]
    x, y = real.client_data_to_arrays(test)
    assert x.shape == (12, 28, 28, 1) and y.dtype == np.int32
    assert real.client_data_to_arrays(test, max_examples=5)[0].shape[0] == 5


def test_cifar100_loader_preprocesses_tffs_format(monkeypatch):
    rng = np.random.default_rng(1)
    raw = tff.simulation.datasets.TestClientData(
        {
            str(i): collections.OrderedDict(
                coarse_label=rng.integers(0, 20, size=2).astype(np.int64),
                image=rng.integers(0, 256, size=(2, 32, 32, 3)).astype(np.uint8),
                label=rng.integers(0, 100, size=2).astype(np.int64),
            )
            for i in range(3)
        }
    )
    monkeypatch.setattr(tff.simulation.datasets.cifar100, "load_data", lambda cache_dir=None: (raw, raw))
    for label, key in (("fine", "label"), ("coarse", "coarse_label")):
        train, _ = real.cifar100_client_data(label=label)
        assert train.element_type_structure["x"] == tf.TensorSpec((32, 32, 3), tf.float32)
        got = list(train.create_tf_dataset_for_client("1").as_numpy_iterator())
        want = list(raw.create_tf_dataset_for_client("1").as_numpy_iterator())
        for g, w in zip(got, want):
            np.testing.assert_allclose(g["x"], w["image"] / 255.0, rtol=1e-6)
            assert g["y"] == w[key] and g["y"].dtype == np.int32
    with pytest.raises(ValueError, match="fine"):
        real.cifar100_client_data(label="medium")


def test_cifar10_loader_splits_tfds_arrays_by_dirichlet(monkeypatch):
    rng = np.random.default_rng(2)
    x_train = rng.integers(0, 256, size=(200, 32, 32, 3)).astype(np.uint8)
    y_train = np.repeat(np.arange(10), 20).astype(np.int64)
    x_test, y_test = x_train[:30], y_train[:30]
    monkeypatch.setattr(real, "_load_cifar10_arrays", lambda data_dir=None: (x_train, y_train, x_test, y_test))
    client_data, (xt, yt) = real.cifar10_client_data(num_clients=10, alpha=0, seed=0)
    assert client_data.client_ids == [str(i) for i in range(10)]
    assert xt.dtype == np.float32 and xt.max() <= 1.0 and yt.dtype == np.int32 and len(yt) == 30
    for i, cid in enumerate(client_data.client_ids):
        arrays = client_data.client_arrays(cid)
        assert set(arrays["y"].tolist()) == {i} and len(arrays["y"]) == 20
        np.testing.assert_allclose(arrays["x"], x_train[y_train == i] / 255.0, rtol=1e-6)
    with pytest.raises(ValueError, match="alpha"):
        real.cifar10_client_data(num_clients=10, alpha=-1)


def one_line_unavailable(call):
    with pytest.raises(FileNotFoundError) as info:
        call()
    assert isinstance(info.value, real.DataUnavailableError)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_failed_downloads_are_one_line_errors(monkeypatch, tmp_path):
    import sys
    import types
    import urllib.error

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known\nsecond line")

    monkeypatch.setattr(tff.simulation.datasets.emnist, "load_data", offline)
    monkeypatch.setattr(tff.simulation.datasets.cifar100, "load_data", offline)
    assert "EMNIST" in one_line_unavailable(real.emnist_client_data)
    assert "CIFAR-100" in one_line_unavailable(real.cifar100_client_data)
    # TFDS absent, then TFDS present but CIFAR-10 not prepared in the data folder: the loader
    # names the folder and the command that prepares it, and never asks TFDS to download.
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    assert "tensorflow-datasets" in one_line_unavailable(lambda: real.cifar10_client_data(4, 1.0))
    fake_tfds = types.SimpleNamespace(builder_cls=lambda name: types.SimpleNamespace(VERSION="3.0.2"),
                                      builder=offline, load=offline, as_numpy=None)
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake_tfds)
    message = one_line_unavailable(lambda: real.cifar10_client_data(4, 1.0, data_dir=str(tmp_path)))
    assert str(tmp_path) in message and "tfds build cifar10" in message and "cifar10/3.0.2" in message
