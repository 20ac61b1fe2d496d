"""The Shakespeare transformer example in its tiny configuration, on a generated play (the
tests do not need the fetched corpus)."""
import json
import os

import numpy as np
import pytest

from keras_optim.backend import KERAS3

pytestmark = pytest.mark.skipif(not KERAS3, reason="the examples' results are Keras 3 runs")


def generated_play(seed=0, speeches=400):
    rng = np.random.default_rng(seed)
    words = ["thou", "art", "the", "king", "my", "lord", "good", "night", "sweet", "prince",
             "what", "is", "love", "fair", "and", "foul", "to", "be", "or", "not"]
    speakers = ["HAMLET.", "OPHELIA.", "KING.", "QUEEN."]
    lines = []
    for _ in range(speeches):
        lines.append(rng.choice(speakers))
        for _ in range(rng.integers(1, 3)):
            line = " ".join(rng.choice(words, size=rng.integers(3, 8)))
            lines.append(line.capitalize() + rng.choice([".", ",", "!", "?"]))
        lines.append("")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    from examples import shakespeare_transformer

    out = tmp_path_factory.mktemp("shakespeare")
    text_file = out / "play.txt"
    text_file.write_text(generated_play())
    results = shakespeare_transformer.main(["--quick", "--text-file", str(text_file),
                                            "--out", str(out)])
    return results, out


def test_every_optimizer_lowers_the_validation_loss(quick_run):
    results, _ = quick_run
    assert list(results) == ["SGD", "SGD + clip", "Adam", "Adam + clip", "AdaBelief"]
    for name, run in results.items():
        losses = run["validation_loss"]
        assert run["steps"] == [0, 10, 20, 30, 40]
        assert np.all(np.isfinite(losses)), name
        assert losses[-1] < losses[0], name
        # at initialisation, near the uniform guess over the 90 character ids (ln 90 = 4.50)
        assert abs(losses[0] - np.log(90)) < 1.5, name
    # the same initialisation for every optimizer
    assert len({run["validation_loss"][0] for run in results.values()}) == 1


def test_clipped_optimizers_use_pan_and_lis_fractions():
    import keras_optim
    from examples import shakespeare_transformer as st

    args = st.build_parser().parse_args([])
    sgd_clip = st.OPTIMIZERS["SGD + clip"][0](1.0, args)
    adam_clip = st.OPTIMIZERS["Adam + clip"][0](1e-3, args)
    assert isinstance(sgd_clip, keras_optim.SGD) and sgd_clip.coordinate_clip == 0.1
    assert sgd_clip.momentum == args.momentum
    assert isinstance(adam_clip, keras_optim.Adam) and adam_clip.coordinate_clip == 0.5
    assert st.OPTIMIZERS["SGD"][0](1.0, args).coordinate_clip == 0.0
    assert st.OPTIMIZERS["Adam"][0](1e-3, args).coordinate_clip == 0.0


def test_windows_hold_out_whole_texts_and_shift_by_one():
    from examples import shakespeare_transformer as st

    corpus = {f"play {i:02d}": f"Text {i}. " * (50 + i) for i in range(20)}
    windows = st.make_windows(corpus, seq_len=16)
    x_train, y_train = windows["train"]
    x_val, y_val = windows["validation"]
    assert x_train.shape[1] == x_val.shape[1] == 16
    for x, y in ((x_train, y_train), (x_val, y_val)):
        np.testing.assert_array_equal(x[:, 1:], y[:, :-1])  # targets: the next character
    # two of twenty texts (every tenth) are held out: their characters are only in validation
    held = sum(len(corpus[t]) for i, t in enumerate(sorted(corpus)) if i % 10 == 5)
    # each window of T+1 ids is x's first id then y: count the ids, less BOS and EOS per text
    ids_in_validation = (x_val[:, 0] != 0).sum() + (y_val != 0).sum()
    assert ids_in_validation - 2 * 2 == held


def test_gap_closed_is_the_share_of_sgds_gap_to_adam():
    from examples import shakespeare_transformer as st

    runs = {k: {"validation_loss": [5.0, v]} for k, v in
            (("SGD", 2.0), ("SGD + clip", 1.7), ("Adam", 1.6))}
    assert st.gap_closed(runs) == pytest.approx(0.75)
    runs["SGD"]["validation_loss"][-1] = 1.5  # SGD ahead of Adam: nothing to close
    assert st.gap_closed(runs) is None


def test_outputs_are_written(quick_run):
    _, out = quick_run
    assert os.path.getsize(out / "shakespeare_transformer.png") > 0
    table = (out / "shakespeare_transformer.md").read_text()
    assert "SGD + clip" in table and "gap" in table
    with open(out / "shakespeare_transformer.json") as f:
        assert set(json.load(f)["runs"]) == {"SGD", "SGD + clip", "Adam", "Adam + clip",
                                             "AdaBelief"}


def test_missing_corpus_is_a_one_line_error(tmp_path, monkeypatch):
    from examples import shakespeare_transformer as st

    monkeypatch.setenv("KERAS_OPTIM_DATA", str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        st.load_corpus()
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and "fetch_data.sh" in message and "\n" not in message
