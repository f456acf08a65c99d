"""Typed presets: load strictly from TOML, apply `--set` overrides, expand sweeps.

Contract:
- `Config` is a frozen dataclass tree (`model`, `optim`, `train`, `data` plus `name`);
  every key has a default, so a preset lists only what differs from the baseline.
- `load_preset(path)` returns a `Preset` (base config plus an optional `[sweep]` table) or
  raises `ConfigError`, whose message names the file and the dotted key. Nothing else escapes:
  unknown keys (with the closest valid one suggested), wrong types, values out of range,
  unknown choices (with the valid ones listed), malformed TOML (with line and column), and
  hostile text: values nested 1,000 deep, numbers of thousands of digits, a `--set` value that
  runs on into further lines or tables.
- Overrides (`--set`) that change settings rename the config after them, unless they set `name`:
  `baseline,optim.name=adam`, the style of sweep run names.
- `Preset.runs()` expands the sweep into the cartesian product of named configs.
- `config_to_toml(config)` writes a config that `load_preset` reads back unchanged.

This module imports only the standard library, so the CLI can validate presets instantly.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import reprlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcn_tui.errors import ConfigError
from fcn_tui.formatting import name_value as _name_value

ACTIVATIONS = ("relu", "tanh", "gelu", "sigmoid")
INITS = (
    "default",
    "random_normal",
    "xavier_normal",
    "xavier_uniform",
    "kaiming_normal",
    "kaiming_uniform",
)
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("none", "cosine", "onecycle")
AUGMENTS = ("none", "shift", "flip", "flip+shift")
MAX_HIDDEN_LAYERS = 10
MAX_SWEEP_RUNS = 10_000  # a typo such as 100 values per key must not plan (or hang on) millions of runs
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "none")
MAX_SEARCH_TRIALS = 10_000  # like MAX_SWEEP_RUNS: a typo must not queue a million trials
MAX_SEARCH_CHOICES = 10_000  # like MAX_SWEEP_RUNS: more choices than trials could ever try is a typo
MAX_PRESET_BYTES = 4 << 20  # a sweep of MAX_SWEEP_RUNS ten-layer `model.hidden` values is under 1 MiB
SEARCH_SETTINGS = ("trials", "sampler", "pruner")


def _spec(default: Any, help: str, **rules: Any) -> Any:
    """A dataclass field with its validation rules and a one-line help text as metadata."""
    if isinstance(default, (list, tuple)):
        return field(default=tuple(default), metadata={"help": help, **rules})
    return field(default=default, metadata={"help": help, **rules})


@dataclass(frozen=True)
class ModelConfig:
    hidden: tuple[int, ...] = _spec(
        (400, 400), "hidden layer widths, input to output", min_len=1,
        max_len=MAX_HIDDEN_LAYERS, item_min=1, item_max=65536,
    )  # the study's two layers of 400
    activation: str = _spec("relu", "activation after each hidden layer", choices=ACTIVATIONS)
    dropout: float = _spec(0.0, "dropout probability after each hidden layer", min=0.0, lt=1.0)
    batchnorm: bool = _spec(False, "BatchNorm1d between each Linear and its activation")
    init: str = _spec("default", "weight initialisation of the Linear layers", choices=INITS)
    init_std: float = _spec(1.0, "std of the random_normal init", gt=0.0, max=100.0)  # the study's N(0, 1)


@dataclass(frozen=True)
class OptimConfig:
    name: str = _spec("sgd", "optimizer", choices=OPTIMIZERS)  # plain SGD is the study's baseline
    lr: float = _spec(0.05, "learning rate", gt=0.0, max=100.0)
    momentum: float = _spec(0.0, "momentum (sgd and rmsprop)", min=0.0, lt=1.0)  # PyTorch's default
    weight_decay: float = _spec(0.0, "L2 weight decay (decoupled for adamw)", min=0.0, max=1.0)
    schedule: str = _spec("none", "learning-rate schedule over all steps", choices=SCHEDULES)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = _spec(15, "passes over the training split", min=1, max=10000)  # the study's 15
    batch_size: int = _spec(256, "samples per optimizer step", min=1, max=1_000_000)
    seed: int = _spec(0, "seeds torch, the split and the shuffles", min=0, max=2**63 - 1)
    val_fraction: float = _spec(0.1, "share of the training images held out", gt=0.0, lt=1.0)  # 6,000 of 60,000
    device: str = _spec("auto", "auto, cpu, cuda, cuda:N or mps")
    label_smoothing: float = _spec(0.0, "label smoothing of the cross-entropy", min=0.0, lt=1.0)
    amp: bool = _spec(False, "bf16 autocast on CUDA and on CPUs with AVX512-BF16 or AMX (elsewhere fp32)")
    compile: bool = _spec(False, "torch.compile the model (CUDA only)")


@dataclass(frozen=True)
class DataConfig:
    normalize: bool = _spec(False, "standardise pixels with mean 0.2860, std 0.3530")  # the study uses raw [0, 1]
    subset: int = _spec(0, "use only the first N training images (0 = all)", min=0, max=60000)
    augment: str = _spec("none", "random training augmentation", choices=AUGMENTS)


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "optim": OptimConfig,
    "train": TrainConfig,
    "data": DataConfig,
}


@dataclass(frozen=True)
class Config:
    name: str = "baseline"
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def get(self, key: str) -> Any:
        """Value of a dotted key such as `optim.lr`."""
        section, _, name = key.partition(".")
        if not name:
            return getattr(self, section)
        return getattr(getattr(self, section), name)

    def flat(self) -> dict[str, Any]:
        """Every setting as `{dotted key: value}`, lists as lists (for tables and CSV)."""
        out: dict[str, Any] = {}
        for section in SECTIONS:
            for f in dataclasses.fields(getattr(self, section)):
                value = getattr(getattr(self, section), f.name)
                out[f"{section}.{f.name}"] = list(value) if isinstance(value, tuple) else value
        return out

    def with_values(self, values: dict[str, Any], source: str = "--set") -> Config:
        """A copy with dotted keys replaced, each value validated like a preset's."""
        data = config_to_dict(self)
        for key, value in values.items():
            _assign(data, key, value, source)
        return config_from_dict(data, source)

    def with_overrides(self, values: dict[str, Any], source: str = "--set") -> Config:
        """`with_values`, renamed after what it changed unless `name` is among the values:
        `baseline` with Adam becomes `baseline,optim.name=adam` (as sweep runs are named), so a
        run with overrides is told apart from the preset's own in folder names and tables."""
        config = self.with_values(values, source)
        if "name" in values:
            return config
        changed = [  # the device changes where a run trains, not what it is
            f"{key}={_name_value(config.get(key))}" for key in values
            if key != "train.device" and config.get(key) != self.get(key)
        ]
        return dataclasses.replace(config, name=",".join([config.name, *changed])) if changed else config


def all_keys() -> list[str]:
    """Every valid dotted key, `name` included."""
    keys = ["name"]
    for section, cls in SECTIONS.items():
        keys += [f"{section}.{f.name}" for f in dataclasses.fields(cls)]
    return keys


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "table"}.get(type(value), type(value).__name__)


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = _SHORT.maxlong = 60  # a 400-digit number stays a one-line message
_SHORT.maxlevel = 3  # a list nested 1,000 deep is shown as [[[...]]]


def _show(value: Any) -> str:
    """A value, shortened, for an error message."""
    try:
        return _SHORT.repr(value)
    except (ValueError, RecursionError):  # an int past Python's digit limit has no repr
        return f"<{_type_name(value)}>"


def _check_value(f: dataclasses.Field, value: Any, where: str) -> Any:
    """Coerce one TOML value to the field's type and check its rules; return it."""
    rules = f.metadata
    default = f.default
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {_type_name(value)} {_show(value)}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ConfigError(f"{where}: expected an integer, got {_type_name(value)} {_show(value)}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {_type_name(value)} {_show(value)}")
        try:
            value = float(value)
        except OverflowError:  # an integer of hundreds of digits
            raise ConfigError(f"{where}: number too large, got {_show(value)}") from None
        if not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, got {_show(value)}")
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {_type_name(value)} {_show(value)}")
        choices = rules.get("choices")
        if choices and value not in choices:
            raise ConfigError(
                f"{where}: unknown choice {_show(value)}{_suggest(value, list(choices))}; "
                f"valid: {', '.join(choices)}"
            )
        return value
    elif isinstance(default, tuple):
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]  # `hidden = 512` means one layer
        if not isinstance(value, (list, tuple)):  # a tuple: a value taken from another Config (sweeps)
            raise ConfigError(f"{where}: expected a list of integers such as [400, 400], "
                              f"got {_type_name(value)} {_show(value)}")
        if not rules.get("min_len", 0) <= len(value) <= rules.get("max_len", 10**9):
            raise ConfigError(
                f"{where}: expected {rules['min_len']} to {rules['max_len']} layers, got {len(value)}"
            )
        items = []
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, int):
                raise ConfigError(f"{where}[{i}]: expected an integer width, got {_show(item)}")
            if not rules["item_min"] <= item <= rules["item_max"]:
                raise ConfigError(
                    f"{where}[{i}]: width must be between {rules['item_min']} and "
                    f"{rules['item_max']}, got {_show(item)}"
                )
            items.append(item)
        return tuple(items)
    if "min" in rules and value < rules["min"]:
        raise ConfigError(f"{where}: must be >= {rules['min']}, got {_show(value)}")
    if "gt" in rules and value <= rules["gt"]:
        raise ConfigError(f"{where}: must be > {rules['gt']}, got {_show(value)}")
    if "max" in rules and value > rules["max"]:
        raise ConfigError(f"{where}: must be <= {rules['max']}, got {_show(value)}")
    if "lt" in rules and value >= rules["lt"]:
        raise ConfigError(f"{where}: must be < {rules['lt']}, got {_show(value)}")
    return value


def _check_device(value: str, where: str) -> str:
    if value in ("auto", "cpu", "cuda", "mps"):
        return value
    if value.startswith("cuda:") and value[5:].isdigit():
        return value
    raise ConfigError(f"{where}: unknown device {_show(value)}; valid: auto, cpu, cuda, cuda:N, mps")


def config_from_dict(data: dict[str, Any], source: str) -> Config:
    """Build a validated Config from a TOML-shaped dict (without `sweep`)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a table of settings")
    top_level = ["name", *SECTIONS]
    for key in data:
        if key not in top_level:
            raise ConfigError(
                f"{source}: unknown key '{key}'{_suggest(str(key), top_level + all_keys())}; "
                f"valid top-level keys: {', '.join(top_level)}"
            )
    name = data.get("name", Config.name)
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{source}: name: expected a non-empty string, got {_show(name)}")
    if not name.isprintable():
        raise ConfigError(f"{source}: name: expected printable text, got {_show(name)}")
    sections: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: {section}: expected a table, got {_type_name(table)}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values = {}
        for key, value in table.items():
            where = f"{source}: {section}.{key}"
            if key not in fields:
                raise ConfigError(
                    f"{where}: unknown key{_suggest(str(key), list(fields))}; "
                    f"valid: {', '.join(fields)}"
                )
            values[key] = _check_value(fields[key], value, where)
            if section == "train" and key == "device":
                values[key] = _check_device(values[key], where)
        sections[section] = cls(**values)
    config = Config(name=name.strip(), **sections)
    if config.model.batchnorm and config.train.batch_size == 1:
        raise ConfigError(f"{source}: {BATCH_OF_ONE.format(bn='model.batchnorm = true', bs='train.batch_size = 1')}")
    return config


BATCH_OF_ONE = "{bn} with {bs}: BatchNorm cannot train on batches of one sample; give train.batch_size >= 2 " \
    "or model.batchnorm = false"


def config_to_dict(config: Config) -> dict[str, Any]:
    out: dict[str, Any] = {"name": config.name}
    for section, cls in SECTIONS.items():
        out[section] = {
            f.name: list(v) if isinstance(v := getattr(getattr(config, section), f.name), tuple) else v
            for f in dataclasses.fields(cls)
        }
    return out


def _assign(data: dict[str, Any], key: str, value: Any, source: str) -> None:
    """Set a dotted key in a TOML-shaped dict, rejecting keys that do not exist."""
    valid = all_keys()
    if key not in valid:
        raise ConfigError(f"{source}: unknown key '{key}'{_suggest(key, valid)}")
    section, _, name = key.partition(".")
    if not name:
        data[section] = value
    else:
        data.setdefault(section, {})[name] = value


def parse_set_value(text: str, where: str = "--set", strict: bool = False) -> Any:
    """A `--set` value as TOML (`[512,256]`, `true`, `0.1`), else as a bare string (`adam`).

    One value only: text that goes on past it (`0.1\n[train]\nepochs=1`) is an error, as are
    values TOML cannot hold (nested 1,000 deep, integers of thousands of digits)."""
    try:
        parsed = parse_toml(f"v = {text}", where)
    except tomllib.TOMLDecodeError as err:
        if strict and text.strip()[:1] in ("[", "{", '"', "'"):  # meant as TOML: say what is wrong with it
            raise ConfigError(f"{where}: invalid TOML value {_show(text.strip())}: {err}") from None
        return text.strip()
    if list(parsed) != ["v"]:
        raise ConfigError(f"{where}: expected one value, got more settings after it on other lines")
    return parsed["v"]


def _holds_text(key: str) -> bool:
    """Whether setting `key` is text (a name, a choice), where `[bold]` is a value, not broken TOML."""
    section, _, name = key.partition(".")
    if key == "name" or section not in SECTIONS:
        return True
    fields = {f.name: f for f in dataclasses.fields(SECTIONS[section])}
    return name not in fields or isinstance(fields[name].default, str)


def parse_toml(text: str, where: str) -> dict[str, Any]:
    """`tomllib.loads`, with the other ways it fails on hostile text turned into ConfigError."""
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise ConfigError(f"{where}: invalid TOML: arrays or tables nested too deeply") from None
    except tomllib.TOMLDecodeError:
        raise
    except ValueError:  # Python's limit on the digits of an integer (4,300)
        raise ConfigError(f"{where}: invalid TOML: a number with too many digits") from None


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`["optim.lr=0.01", ...]` to `{"optim.lr": 0.01}`, checking the shape of each item."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {_show(item)}: expected KEY=VALUE, e.g. optim.lr=0.01")
        key = key.strip()
        out[key] = parse_set_value(value, f"--set: {key}", strict=not _holds_text(key))
    return out


_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def format_value(value: Any) -> str:
    """A value in TOML syntax."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, str):  # control characters escaped too: TOML forbids them raw
        return '"' + "".join(
            _TOML_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c) for c in value
        ) + '"'
    if isinstance(value, float):
        return repr(value)
    return str(value)


def config_to_toml(config: Config) -> str:
    """The fully resolved configuration as TOML, loadable as a preset."""
    data = config_to_dict(config)
    lines = [f"name = {format_value(data['name'])}"]
    for section in SECTIONS:
        lines += ["", f"[{section}]"]
        lines += [f"{k} = {format_value(v)}" for k, v in data[section].items()]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SearchParam:
    """One searched setting: a range (`low`..`high`, `log` scale) or a list of `choices`."""

    key: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def kind(self) -> str:
        """`choice`, `int` or `float`."""
        if self.choices:
            return "choice"
        return "int" if isinstance(self.low, int) else "float"


@dataclass(frozen=True)
class Search:
    """A preset's `[search]` table: what to search, how many trials, how to sample and prune."""

    params: tuple[SearchParam, ...]
    trials: int = 20  # TPE samples at random for its first 10 trials: 20 leaves it 10 guided ones
    sampler: str = "tpe"  # Optuna's default, and better than random within a few dozen trials
    pruner: str = "median"  # stops a trial whose validation accuracy is below the median at that epoch


@dataclass(frozen=True)
class Preset:
    """A base config plus the sweep over it (`{dotted key: [values]}`, in file order) and/or a
    search (`Search`). A preset with either is a study; without both it is one run."""

    config: Config
    sweep: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    source: str = "<preset>"
    search: Search | None = None

    @property
    def is_sweep(self) -> bool:
        return bool(self.sweep)

    @property
    def is_study(self) -> bool:
        return bool(self.sweep) or self.search is not None

    def runs(self) -> list[Config]:
        """The cartesian product of the sweep, each config named by the values it sets."""
        if not self.sweep:
            return [self.config]
        keys = [k for k, _ in self.sweep]
        runs = []
        for combo in itertools.product(*(values for _, values in self.sweep)):
            values = dict(zip(keys, combo))
            name = ",".join(f"{k}={_name_value(v)}" for k, v in values.items())
            runs.append(self.config.with_values({**values, "name": name}, self.source))
        return runs


def preset_from_dict(data: dict[str, Any], source: str) -> Preset:
    """Validate a TOML-shaped dict (which may hold a `[sweep]` table) as a Preset."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a table of settings")
    data = dict(data)
    sweep_table = data.pop("sweep", {})
    search_table = data.pop("search", None)
    config = config_from_dict(data, source)
    if not isinstance(sweep_table, dict):
        raise ConfigError(f"{source}: sweep: expected a table of KEY = [values]")
    valid = [k for k in all_keys() if k != "name"]
    for key, values in sweep_table.items():  # the shape and the size first: a million values is refused at once
        where = f"{source}: sweep.{key}"
        if key not in valid:
            raise ConfigError(f"{where}: unknown key{_suggest(str(key), valid)}")
        if not isinstance(values, list):
            raise ConfigError(f"{where}: expected a list of values, got {_type_name(values)}")
        if not values:
            raise ConfigError(f"{where}: empty list; give at least one value")
    total = math.prod(len(values) for values in sweep_table.values())
    if total > MAX_SWEEP_RUNS:
        sizes = " x ".join(str(len(values)) for values in sweep_table.values())
        raise ConfigError(f"{source}: sweep: {sizes} = {total:,} runs, more than {MAX_SWEEP_RUNS:,}")
    alone = _alone(config)
    sweep = [(key, _checked_values(alone, key, values, f"{source}: sweep.{key}")) for key, values in sweep_table.items()]
    search = None if search_table is None else parse_search(search_table, config, source)
    if search is not None:
        both = [p.key for p in search.params if p.key in dict(sweep)]
        if both:
            raise ConfigError(f"{source}: search.{both[0]}: also in [sweep]; give each key in one table")
    return check_preset(Preset(config=config, sweep=tuple(sweep), source=source, search=search))


def _alone(config: Config) -> Config:
    """`config` with BatchNorm off and batches of at least two: a swept or searched value is checked
    alone against it, and the combinations of values afterwards, by `check_preset`."""
    return dataclasses.replace(
        config, model=dataclasses.replace(config.model, batchnorm=False),
        train=dataclasses.replace(config.train, batch_size=max(2, config.train.batch_size)),
    )


def _checked_values(config: Config, key: str, values: list[Any], where: str) -> tuple[Any, ...]:
    """Each value of a sweep or a search's choices validated as `key`; one listed twice is refused
    (two identical runs or choices: a study tells its runs apart by their settings)."""
    checked: list[Any] = []
    seen: set[Any] = set()
    for value in values:
        try:
            checked.append(config.with_values({key: value}, where).get(key))
        except ConfigError as err:
            # re-word "where: key: problem" to point at the sweep or search entry
            raise ConfigError(f"{where}: {str(err).rsplit(f'{key}: ', 1)[-1]}") from None
        if checked[-1] in seen:
            raise ConfigError(f"{where}: {_show(value)} is listed twice")
        seen.add(checked[-1])
    return tuple(checked)


def with_seeds(preset: Preset, seeds: list[int], source: str = "--seeds") -> Preset:
    """`preset` with `train.seed` swept over `seeds` (after its own sweep), so that every run is
    trained once per seed and the study's tables show mean ± std over them."""
    keys = {key for key, _ in preset.sweep} | {p.key for p in (preset.search.params if preset.search else ())}
    if "train.seed" in keys:
        raise ConfigError(f"{source}: {preset.source} already varies train.seed")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{source}: a seed is listed twice")
    for seed in seeds:
        preset.config.with_values({"train.seed": seed}, source)  # an error names the seed
    total = math.prod(len(values) for _, values in preset.sweep) * len(seeds)
    if total > MAX_SWEEP_RUNS:
        raise ConfigError(f"{source}: {total:,} runs, more than {MAX_SWEEP_RUNS:,}")
    return check_preset(dataclasses.replace(preset, sweep=(*preset.sweep, ("train.seed", tuple(seeds)))))


def check_preset(preset: Preset) -> Preset:
    """Refuse what no run of the preset could train: BatchNorm on with batches of one sample in
    any combination of the base settings, the sweep and the search; and a search with nothing to
    search (one choice per setting and no range: it would train one configuration again and again)."""
    places = {key: f"sweep.{key}" for key, _ in preset.sweep}
    values: dict[str, tuple[Any, ...]] = dict(preset.sweep)
    search = preset.search
    for p in search.params if search is not None else ():
        places[p.key] = f"search.{p.key}"
        values[p.key] = p.choices or ((1,) if p.kind == "int" and p.low <= 1 else ())
    batchnorm = values.get("model.batchnorm", (preset.config.model.batchnorm,))
    batch_size = values.get("train.batch_size", (preset.config.train.batch_size,))
    if True in batchnorm and 1 in batch_size:
        bn = places.get("model.batchnorm", "model.batchnorm") + " = true"
        bs = places.get("train.batch_size", "train.batch_size") + " = 1"
        raise ConfigError(f"{preset.source}: {BATCH_OF_ONE.format(bn=bn, bs=bs)}")
    if search is not None and all(len(p.choices) == 1 for p in search.params):
        raise ConfigError(
            f"{preset.source}: search: one choice for every setting and no range: nothing to search; "
            "give a setting two or more choices or a range, or set the values in the preset without [search]"
        )
    return preset


def _field(key: str) -> dataclasses.Field:
    section, _, name = key.partition(".")
    return next(f for f in dataclasses.fields(SECTIONS[section]) if f.name == name)


def parse_search(table: Any, config: Config, source: str) -> Search:
    """Validate a `[search]` table: `trials`, `sampler`, `pruner`, and per setting either a range
    `{ low = .., high = .., log = true }` (numeric settings) or a list of choices."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: search: expected a table of KEY = {{ low = .., high = .. }} or [choices]")
    valid = [k for k in all_keys() if k != "name"]
    settings: dict[str, Any] = {}
    params = []
    for key, spec in table.items():
        where = f"{source}: search.{key}"
        if key in SEARCH_SETTINGS:
            settings[key] = _search_setting(key, spec, where)
        elif key not in valid:
            raise ConfigError(f"{where}: unknown key{_suggest(str(key), valid + list(SEARCH_SETTINGS))}")
        elif isinstance(spec, list):
            if not spec:
                raise ConfigError(f"{where}: empty list; give at least one choice")
            if len(spec) > MAX_SEARCH_CHOICES:
                raise ConfigError(f"{where}: {len(spec):,} choices, more than {MAX_SEARCH_CHOICES:,}")
            params.append(SearchParam(key=key, choices=_checked_values(_alone(config), key, spec, where)))
        elif isinstance(spec, dict):
            params.append(_search_range(key, spec, _alone(config), where))
        else:
            raise ConfigError(f"{where}: expected {{ low = .., high = .. }} or a list of choices, got {_type_name(spec)}")
    if not params:
        raise ConfigError(f"{source}: search: no setting to search; add e.g. \"optim.lr\" = {{ low = 1e-4, high = 0.1, log = true }}")
    return Search(params=tuple(params), **settings)


def _search_setting(key: str, spec: Any, where: str) -> Any:
    """`trials`, `sampler` or `pruner` of a `[search]` table, checked."""
    if key == "trials":
        if isinstance(spec, bool) or not isinstance(spec, int) or not 1 <= spec <= MAX_SEARCH_TRIALS:
            raise ConfigError(f"{where}: expected an integer from 1 to {MAX_SEARCH_TRIALS:,}, got {_show(spec)}")
        return spec
    choices = SAMPLERS if key == "sampler" else PRUNERS
    if spec not in choices:
        raise ConfigError(f"{where}: unknown choice {_show(spec)}; valid: {', '.join(choices)}")
    return spec


def _with_search_overrides(preset: Preset, overrides: dict[str, Any]) -> Preset:
    """`--set search.trials=6` (and `search.sampler`, `search.pruner`) applied to the preset's search."""
    settings = {}
    for dotted, value in overrides.items():
        key = dotted.partition(".")[2]
        where = f"--set: {dotted}"
        if key not in SEARCH_SETTINGS:
            raise ConfigError(f"{where}: only {', '.join('search.' + k for k in SEARCH_SETTINGS)} can be set; "
                              "ranges and choices are given in the preset")
        if preset.search is None:
            raise ConfigError(f"{where}: {preset.source} has no [search] table")
        settings[key] = _search_setting(key, value, where)
    return dataclasses.replace(preset, search=dataclasses.replace(preset.search, **settings)) if settings else preset


def _search_range(key: str, spec: dict[str, Any], config: Config, where: str) -> SearchParam:
    default = _field(key).default
    if isinstance(default, bool) or not isinstance(default, (int, float)):
        raise ConfigError(f"{where}: a range needs a numeric setting; give a list of choices instead")
    unknown = [k for k in spec if k not in ("low", "high", "log")]
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}'; valid: low, high, log")
    for bound in ("low", "high"):
        if bound not in spec:
            raise ConfigError(f"{where}: missing '{bound}'")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log: expected true or false, got {_show(log)}")
    bounds = []
    for bound in ("low", "high"):
        try:
            bounds.append(config.with_values({key: spec[bound]}, f"{where}.{bound}").get(key))
        except ConfigError as err:
            raise ConfigError(f"{where}.{bound}: {str(err).rsplit(f'{key}: ', 1)[-1]}") from None
    low, high = bounds
    if not low < high:
        raise ConfigError(f"{where}: low must be below high, got {_show(low)} and {_show(high)}")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {_show(low)}")
    return SearchParam(key=key, low=low, high=high, log=log)


def preset_to_toml(preset: Preset) -> str:
    """A preset as TOML: its base config, then its `[sweep]` and `[search]` tables (a study's
    `sweep.toml`, and what the app saves)."""
    text = config_to_toml(preset.config)
    if preset.sweep:
        text += "\n[sweep]\n" + "".join(f'"{key}" = {format_value(list(values))}\n' for key, values in preset.sweep)
    if preset.search is not None:
        text += "\n" + search_toml(preset.search)
    return text


def search_toml(search: Search) -> str:
    """The `[search]` table as TOML (the study's manifest holds it)."""
    lines = ["[search]", f"trials = {search.trials}", f'sampler = "{search.sampler}"', f'pruner = "{search.pruner}"']
    for p in search.params:
        if p.kind == "choice":
            lines.append(f'"{p.key}" = {format_value(list(p.choices))}')
        else:
            log = ", log = true" if p.log else ""
            lines.append(f'"{p.key}" = {{ low = {format_value(p.low)}, high = {format_value(p.high)}{log} }}')
    return "\n".join(lines) + "\n"


def load_preset(path: str | Path, overrides: dict[str, Any] | None = None) -> Preset:
    """Read and validate a preset file; `overrides` (dotted keys) apply to its base config."""
    from fcn_tui.errors import UnreadableFile
    from fcn_tui.fileio import read_file_text  # the one bounded reader

    path = Path(path)
    source = str(path)
    if path.is_dir():
        raise ConfigError(f"{source}: is a directory, expected a .toml preset")
    try:  # a FIFO would block for ever and /dev/zero never end: a regular file of bounded size only
        text = read_file_text(path, MAX_PRESET_BYTES)
    except UnreadableFile as err:  # "NAME is not a regular file": said of the path as given
        reason = str(err).removeprefix(path.name).lstrip(": ").removeprefix("is ")
        raise ConfigError(f"{source}: {reason if reason.startswith('cannot read') else 'cannot read: ' + reason}") from None
    if text is None:
        raise ConfigError(f"{source}: no such file")
    return preset_from_text(text, source, overrides)


def preset_from_text(text: str, source: str, overrides: dict[str, Any] | None = None) -> Preset:
    try:
        data = parse_toml(text, source)
    except tomllib.TOMLDecodeError as err:
        message = str(err)
        if message.endswith("(at end of document)"):  # give a line and column here too
            line, column = text.count("\n") + 1, len(text) - text.rfind("\n")
            message = message.replace("end of document", f"end of document, line {line}, column {column}")
        raise ConfigError(f"{source}: invalid TOML: {message}") from None
    preset = preset_from_dict(data, source)
    if overrides:
        searched = {k: v for k, v in overrides.items() if k.startswith("search.")}
        preset = _with_search_overrides(preset, searched)
        overrides = {k: v for k, v in overrides.items() if k not in searched}
    if overrides:
        swept = {k for k, _ in preset.sweep}
        clash = swept & set(overrides)
        sweep = tuple((k, v) for k, v in preset.sweep if k not in clash)
        config = preset.config.with_overrides(overrides)
        search = preset.search
        if search is not None and any(p.key in overrides for p in search.params):
            kept = tuple(p for p in search.params if p.key not in overrides)  # a --set value is fixed
            search = dataclasses.replace(search, params=kept) if kept else None
        preset = check_preset(Preset(config=config, sweep=sweep, source=source, search=search))
    return preset
