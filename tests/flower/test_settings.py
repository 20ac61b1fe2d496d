"""The Flower app's run configuration: the app's pyproject.toml declares exactly the settings'
keys and defaults, and a wrong setting is refused once, with a one-line message."""
import pathlib
import tomllib

import pytest

from flower_async.settings import Settings, run_config_defaults

APP = pathlib.Path(__file__).resolve().parents[2] / "flower_async" / "app" / "pyproject.toml"


def test_the_app_declares_every_setting_with_its_default():
    declared = tomllib.loads(APP.read_text())["tool"]["flwr"]["app"]["config"]
    assert declared == run_config_defaults()
    assert Settings.from_run_config(declared) == Settings()


@pytest.mark.parametrize("config, message", [
    ({"algorithm": "fedprox"}, "algorithm must be one of"),
    ({"buffer-size": 0}, "buffer-size must be a positive integer"),
    ({"algorithm": "fedbuff", "buffer-size": 3, "min-nodes": 2}, "larger than the number of nodes"),
    ({"delta-t": 0.0}, "delta-t must be > 0"),
    ({"max-consecutive-failures": 0}, "max-consecutive-failures must be a positive integer"),
    ({"model": "cnn", "dataset": "synthetic"}, "the cnn model is for the digits images"),
    ({"learning-rate": 0.1}, "unknown run-config key 'learning-rate'"),
])
def test_a_wrong_setting_is_refused(config, message):
    with pytest.raises(ValueError, match=message):
        Settings.from_run_config(config)


def test_integers_are_accepted_for_float_settings():
    assert Settings.from_run_config({"delta-t": 5}).delta_t == 5.0


def test_the_local_command_passes_its_failure_limit_to_the_run_config(tmp_path):
    pytest.importorskip("cryptography", reason="the local command makes certificates with cryptography")
    from flower_async.local import parse_args, run_config

    config = run_config(parse_args(["local", "--max-consecutive-failures", "5"]), tmp_path)
    assert config["max-consecutive-failures"] == "5"  # a TOML value, as flwr run's --run-config file has it
    with pytest.raises(ValueError, match="max-consecutive-failures must be a positive integer"):
        run_config(parse_args(["local", "--max-consecutive-failures", "0"]), tmp_path)
