"""Presets: defaults, strict loading, overrides, round trip, sweep expansion."""

from pathlib import Path

import pytest

from fcn_tui.config import Config, ConfigError, config_to_toml, load_preset, parse_overrides, preset_from_text

PRESETS = Path(__file__).parent.parent / "presets"


def test_baseline_preset_matches_the_study_protocol():
    config = load_preset(PRESETS / "baseline.toml").config
    assert config.model.hidden == (400, 400)
    assert config.model.activation == "relu"
    assert (config.optim.name, config.optim.lr, config.optim.momentum) == ("sgd", 0.05, 0.0)
    assert (config.train.batch_size, config.train.epochs, config.train.seed) == (256, 15, 0)
    assert config.train.val_fraction == 0.1
    assert config.model.init == "default"


def test_a_preset_lists_only_what_differs():
    preset = preset_from_text('name = "x"\n[optim]\nname = "adam"\nlr = 0.001\n', "x.toml")
    assert preset.config.optim.name == "adam"
    assert preset.config.model.hidden == Config().model.hidden
    assert not preset.is_sweep


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[model]\nhiden = [10]\n", "x.toml: model.hiden: unknown key (did you mean 'hidden'?)"),
        ("[optim]\nlr = -1\n", "x.toml: optim.lr: must be > 0.0"),
        ("[optim]\nname = 'adamm'\n", "valid: sgd, adam, adamw, rmsprop"),
        ("[model]\ndropout = 1.0\n", "x.toml: model.dropout: must be < 1.0"),
        ("[train]\nepochs = 'ten'\n", "x.toml: train.epochs: expected an integer"),
        ("[model]\nhidden = []\n", "x.toml: model.hidden: expected 1 to 10 layers"),
        ("[model]\nhidden = [10, 0]\n", "x.toml: model.hidden[1]: width must be between 1"),
        ("[train]\nbatch_size = 0\n", "x.toml: train.batch_size: must be >= 1"),
        ("[train]\ndevice = 'gpu'\n", "valid: auto, cpu, cuda, cuda:N, mps"),
        ("[model\n", "x.toml: invalid TOML"),
        ("[sweep]\n'optim.lr' = []\n", "sweep.optim.lr: empty list"),
    ],
)
def test_bad_presets_name_the_file_and_key(text, expected):
    with pytest.raises(ConfigError) as err:
        preset_from_text(text, "x.toml")
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_preset(tmp_path / "nope.toml")


def test_set_values_are_parsed_as_toml_or_bare_strings():
    values = parse_overrides(["model.hidden=[512,256]", "model.batchnorm=true", "optim.name=adam", "optim.lr=1e-3"])
    config = Config().with_values(values)
    assert config.model.hidden == (512, 256)
    assert config.model.batchnorm is True
    assert config.optim.name == "adam"
    assert config.optim.lr == 0.001


def test_set_rejects_unknown_keys_and_bad_shapes():
    with pytest.raises(ConfigError, match="unknown key 'optim.lrr'.*'optim.lr'"):
        Config().with_values(parse_overrides(["optim.lrr=0.1"]))
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_overrides(["optim.lr"])
    with pytest.raises(ConfigError, match=r"model\.hidden: invalid TOML value '\[400,400': Unclosed array"):
        parse_overrides(["model.hidden=[400,400"])  # a typo in a list is a TOML error, not a string
    with pytest.raises(ConfigError, match=r"expected a list of integers such as \[400, 400\]"):
        Config().with_values(parse_overrides(["model.hidden=400,400"]))


def test_resolved_config_round_trips_through_toml(tmp_path):
    config = Config(name="rt").with_values({"model.hidden": [7, 5], "optim.lr": 0.123, "data.augment": "flip"})
    path = tmp_path / "config.toml"
    path.write_text(config_to_toml(config))
    assert load_preset(path).config == config


def test_sweep_is_the_cartesian_product_with_stable_names():
    text = "[sweep]\n'optim.name' = ['adam', 'sgd']\n'optim.lr' = [0.001, 0.1]\n"
    runs = preset_from_text(text, "s.toml").runs()
    assert [r.name for r in runs] == [
        "optim.name=adam,optim.lr=0.001",
        "optim.name=adam,optim.lr=0.1",
        "optim.name=sgd,optim.lr=0.001",
        "optim.name=sgd,optim.lr=0.1",
    ]
    assert [(r.optim.name, r.optim.lr) for r in runs][1] == ("adam", 0.1)


def test_sweep_values_are_validated():
    with pytest.raises(ConfigError, match=r"sweep.optim.lr: must be > 0.0"):
        preset_from_text("[sweep]\n'optim.lr' = [0.1, 0]\n", "s.toml")


def test_set_changes_a_search_s_trials_sampler_and_pruner_and_nothing_else_of_it():
    repo_search = Path(__file__).resolve().parent.parent / "presets" / "search.toml"
    preset = load_preset(repo_search, parse_overrides(["search.trials=3", "search.pruner=none", "train.epochs=2"]))
    assert (preset.search.trials, preset.search.pruner) == (3, "none")
    assert preset.config.train.epochs == 2
    assert preset.search.params == load_preset(repo_search).search.params
    for item, message in [
        ("search.trials=0", "--set: search.trials: expected an integer from 1"),
        ("search.sampler=grid", "--set: search.sampler: unknown choice 'grid'; valid: tpe, random"),
        ("search.optim.lr=0.1", "--set: search.optim.lr: only search.trials, search.sampler, search.pruner can be set"),
    ]:
        with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
            load_preset(repo_search, parse_overrides([item]))
    with pytest.raises(ConfigError, match=r"search\.trials: .*baseline\.toml has no \[search\] table"):
        load_preset(repo_search.parent / "baseline.toml", parse_overrides(["search.trials=3"]))
