"""Property: whatever TOML-shaped data or text reaches the preset loader, the answer is a valid
Preset or a one-line ConfigError, never any other exception.

In CI (`CI` set) the examples are derandomized by the "ci" profile of tests/conftest.py, so the
suite is red or green for the code alone; locally they are random and keep searching."""

from __future__ import annotations

import dataclasses
import os
import string
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fcn_tui.config import SECTIONS as CONFIG_SECTIONS
from fcn_tui.config import (
    Config,
    ConfigError,
    Preset,
    all_keys,
    config_to_toml,
    parse_overrides,
    preset_from_dict,
    preset_from_text,
)

KEYS = all_keys()
SECTIONS = ["model", "optim", "train", "data"]
FIELD_NAMES = sorted({k.split(".", 1)[1] for k in KEYS if "." in k})

scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 2, 32, 0.5, 0.01, 1e-3, 100.0, 101.0, "relu", "adam", "sgd", "cpu", "cuda:0", "mps",
                     "auto", "default", "onecycle", "flip+shift", ""]),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
section_tables = st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), values, max_size=4)
sweep_tables = st.dictionaries(
    st.sampled_from(KEYS) | st.text(max_size=10), st.lists(values, max_size=3) | values, max_size=3
)


def plausible(f: dataclasses.Field) -> st.SearchStrategy:
    """Values of the field's own type, in and around its valid range (so many presets are valid)."""
    default = f.default
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return st.integers(min_value=-1, max_value=100) | st.integers(min_value=-2, max_value=70_000)
    if isinstance(default, float):
        return st.floats(min_value=-1.0, max_value=101.0) | st.sampled_from([0.0, 0.1, 0.5, 1.0])
    if isinstance(default, str):
        return st.sampled_from(f.metadata.get("choices") or ("auto", "cpu", "cuda:1", "gpu")) | st.text(max_size=4)
    return st.lists(st.integers(min_value=0, max_value=2000), max_size=11) | st.integers(min_value=-1, max_value=9)


FIELDS = {s: {f.name: f for f in dataclasses.fields(cls)} for s, cls in CONFIG_SECTIONS.items()}
plausible_presets = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["baseline", "a/b: c", " x ", ""]) | st.text(max_size=6),
        **{
            section: st.fixed_dictionaries({}, optional={name: plausible(f) for name, f in fields.items()})
            for section, fields in FIELDS.items()
        },
        "sweep": st.lists(
            st.sampled_from(KEYS[1:]).flatmap(
                lambda key: st.tuples(st.just(key), st.lists(plausible(FIELDS[key.split(".")[0]][key.split(".")[1]]), max_size=3))
            ),
            max_size=3,
        ).map(dict),
    },
)

presets = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=10) | values,
        **{section: section_tables | values for section in SECTIONS},
        "sweep": sweep_tables | values,
    },
) | st.dictionaries(st.text(max_size=8), values, max_size=3) | plausible_presets


def check_preset(preset: Preset) -> None:
    """A returned preset is fully valid: its runs load back unchanged from their own TOML."""
    assert isinstance(preset, Preset) and isinstance(preset.config, Config)
    count = 1
    for _, swept in preset.sweep:
        count *= len(swept)
    if count <= 50:
        for config in preset.runs():
            assert preset_from_text(config_to_toml(config), "round-trip").config == config


def check_error(err: ConfigError) -> None:
    message = str(err)
    assert message and "\n" not in message
    assert message.startswith(("p.toml", "--set")), message


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(presets)
def test_any_toml_shaped_data_gives_a_preset_or_a_config_error(data):
    try:
        preset = preset_from_dict(data, "p.toml")
    except ConfigError as err:
        check_error(err)
    else:
        check_preset(preset)


toml_lines = st.one_of(
    st.sampled_from(["[model]", "[optim]", "[train]", "[data]", "[sweep]", "[model", "name = 'x'", "[[model]]"]),
    st.builds(lambda k, v: f"{k} = {v}", st.sampled_from(FIELD_NAMES + ["'optim.lr'", "name"]) | st.text(max_size=6),
              st.sampled_from(["1", "0", "-1", "0.5", "1e400", "nan", "inf", "true", "'relu'", "[1, 2]", "[]", "[0.1,",
                               "{a = 1}", '"unterminated', "2024-01-01"]) | st.text(max_size=8)),
    st.text(alphabet=string.printable, max_size=20),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(toml_lines, max_size=8).map("\n".join))
def test_any_text_gives_a_preset_or_a_config_error(text):
    try:
        preset = preset_from_text(text, "p.toml")
    except ConfigError as err:
        check_error(err)
    else:
        check_preset(preset)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.builds(lambda k, sep, v: k + sep + v, st.sampled_from(KEYS) | st.text(max_size=8),
                          st.sampled_from(["=", "", "=="]), st.text(max_size=10)), max_size=3))
def test_any_set_items_give_a_config_or_a_config_error(items):
    try:
        config = Config().with_values(parse_overrides(items))
    except ConfigError as err:
        check_error(err)
    else:
        assert preset_from_text(config_to_toml(config), "round-trip").config == config


@pytest.mark.parametrize("env, derandomized", [({"CI": "true"}, True), ({}, False)], ids=["ci", "local"])
def test_ci_gets_the_same_examples_every_run_and_local_runs_keep_searching(env, derandomized):
    child = "import tests.conftest; from hypothesis import settings; print(settings.default.derandomize)"
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    proc = subprocess.run([sys.executable, "-c", child], cwd=Path(__file__).parents[1], env={**clean, **env},
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(derandomized)]
