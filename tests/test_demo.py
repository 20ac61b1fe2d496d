"""The README's main job, at its quick size: every optimizer learns the digits."""
import os

import examples.digits_demo as demo


def test_demo_trains_every_optimizer_and_saves_the_plot(tmp_path):
    results = demo.main(["--quick", "--out", str(tmp_path)])
    assert set(results) == set(demo.OPTIMIZERS)
    for name, history in results.items():
        assert history["loss"][-1] < history["loss"][0], name
        assert history["val_accuracy"][-1] > 0.5, name  # chance is 0.1
    assert os.path.getsize(tmp_path / "digits_demo_loss.png") > 10_000
