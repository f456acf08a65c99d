"""The Setup form: every setting of a run, validated by the real config code as you type.

Every key of a preset has a field (`FIELDS` covers `config.all_keys()`): the everyday ones in two
columns, the rest (schedule, label smoothing, augmentation, ...) in an "advanced" section that is
collapsed by default and names, in its title, the advanced settings that differ from the
defaults, so nothing the run will use is hidden; its fields are mounted just after the first
paint, and until then `base` holds their values. Each field's text is parsed like a `--set` value and
checked with `Config.with_values`; a `ConfigError` (or any value that cannot be read, such as a
pasted 5,000-digit number) is shown under the field as plain text, and `config` is None until
every field is valid, so invalid input never reaches the engine and never crashes the app.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.css.query import NoMatches
from textual.message import Message
from textual.widgets import Collapsible, Input, Label, Select, Static, Switch

from fcn_tui.config import (
    ACTIVATIONS,
    AUGMENTS,
    INITS,
    OPTIMIZERS,
    SCHEDULES,
    Config,
    format_value,
    parse_set_value,
)
from fcn_tui.errors import ConfigError

MOMENTUM_OPTIMIZERS = ("sgd", "rmsprop")  # the optimizers that take a momentum

# (dotted key, label, kind): kind is "text", "hidden", "number", "switch", "device" or a tuple of choices
LEFT = (
    ("name", "run name", "text"),
    ("model.hidden", "hidden", "hidden"),
    ("model.activation", "activation", ACTIVATIONS),
    ("model.dropout", "dropout", "number"),
    ("model.batchnorm", "batch norm", "switch"),
    ("model.init", "init", INITS),
    ("train.seed", "seed", "number"),
)
RIGHT = (
    ("optim.name", "optimizer", OPTIMIZERS),
    ("optim.lr", "learning rate", "number"),
    ("optim.momentum", "momentum", "number"),
    ("optim.weight_decay", "weight decay", "number"),
    ("train.epochs", "epochs", "number"),
    ("train.batch_size", "batch size", "number"),
    ("train.device", "device", "device"),
)
# the advanced section: settings most runs leave at their defaults
ADVANCED_LEFT = (
    ("optim.schedule", "schedule", SCHEDULES),
    ("train.label_smoothing", "label smoothing", "number"),
    ("data.augment", "augmentation", AUGMENTS),
    ("data.normalize", "normalise", "switch"),
    ("model.init_std", "init std", "number"),
)
ADVANCED_RIGHT = (
    ("train.val_fraction", "val fraction", "number"),
    ("data.subset", "subset", "number"),
    ("train.amp", "amp (bf16)", "switch"),
    ("train.compile", "compile", "switch"),
)
ADVANCED = {key: label for key, label, _ in ADVANCED_LEFT + ADVANCED_RIGHT}
FIELDS = {key: kind for key, _, kind in LEFT + RIGHT + ADVANCED_LEFT + ADVANCED_RIGHT}
BASE_DEVICES = [("auto (best)", "auto"), ("cpu", "cpu")]  # short labels: the select shows them whole at 80x24


def field_id(key: str) -> str:
    return "f-" + key.replace(".", "-").replace("_", "-")


def error_text(err: ConfigError) -> str:
    """`form: optim.lr: must be > 0.0, got 0.0` -> `must be > 0.0, got 0.0`."""
    return str(err).split(": ", 2)[-1]


def parse_field(kind: Any, text: str) -> Any:
    """The text of a field as the value a preset would hold."""
    if kind == "text":
        return text
    if kind == "hidden":
        inner = text.strip()
        if inner.startswith("[") and inner.endswith("]"):  # `[512, 256]`, as a preset writes it
            inner = inner[1:-1]
        try:
            value = parse_set_value("[" + inner + "]")
        except ConfigError:
            value = None
        if not isinstance(value, list):
            raise ConfigError("form: model.hidden: expected widths such as 400,400")
        return value
    if not text.strip():
        raise ConfigError("form: key: required")
    return parse_set_value(text)


def show_value(value: Any) -> str:
    """A config value as the text of its field."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, str):
        return value
    return format_value(value)


class SetupForm(Vertical):
    """Two columns of labelled fields, each with its error line, over the advanced section."""

    class Changed(Message):
        """The form changed; `config` is the validated Config, or None while a field is invalid."""

        def __init__(self, config: Config | None) -> None:
            super().__init__()
            self.config = config

    def __init__(self, config: Config, id: str | None = None) -> None:
        super().__init__(id=id)
        self.base = config
        self.config: Config | None = config
        self.errors: dict[str, str] = {}
        self.hints: dict[str, str] = {}  # dotted key -> a note under a valid field (swept values)
        self._shown: dict[str, tuple[str, str]] = {}  # dotted key -> (error, hint) on the screen
        self._ready = {key for key, _, _ in LEFT + RIGHT}  # keys whose field is mounted
        self._valid: dict[str, Any] = {}  # dotted key -> value of each valid field (see validate)
        self._devices = list(BASE_DEVICES)
        if config.train.device not in {v for _, v in self._devices}:
            self._devices.append((config.train.device, config.train.device))

    def compose(self) -> ComposeResult:
        yield self._columns(LEFT, RIGHT, "form-columns")
        # collapsed by default: at 80x24 the everyday fields and the buttons stay on one screen.
        # Its fields are mounted just after the first paint (`_mount_advanced`), which they would slow.
        yield Collapsible(title=self._advanced_title(), collapsed=True, id="advanced")

    def _columns(self, left: tuple, right: tuple, id: str) -> Horizontal:
        """Two columns of rows: label, field (and a switch's on/off), the error line under them."""

        def row(key: str, label: str, kind: Any) -> Vertical:
            parts = [Label(label, classes="field-label"), self._widget(key, kind)]
            if kind == "switch":
                parts.append(Label("", classes="switch-state", id="s-" + field_id(key)[2:]))
            return Vertical(Horizontal(*parts, classes="field-row"),
                            Static("", classes="field-error", id="e-" + field_id(key)[2:]),
                            classes="field", id="row-" + field_id(key)[2:])

        columns = [Vertical(*(row(*spec) for spec in column), classes="form-column") for column in (left, right)]
        return Horizontal(*columns, id=id, classes="form-columns")

    async def _mount_advanced(self) -> None:
        """Mount the advanced fields, filled from `base` (which holds their values until then)."""
        try:
            contents = self.query_one("#advanced", Collapsible).query_one(Collapsible.Contents)
            await contents.mount(self._columns(ADVANCED_LEFT, ADVANCED_RIGHT, "advanced-columns"))
            self._ready.update(ADVANCED)
            self._changed()
        except NoMatches:  # the app closed meanwhile
            self._ready.difference_update(ADVANCED)

    def _advanced_title(self) -> Content:
        """`advanced settings`, then what differs from the defaults, or how many are invalid."""
        invalid = sum(key in self.errors for key in ADVANCED)
        default = Config()
        # each valid field's own value: an invalid field elsewhere hides none of them
        value = {key: self._valid.get(key, self.base.get(key)) for key in ADVANCED if key not in self.errors}
        changed = [f"{ADVANCED[key]} {show_value(v)}" for key, v in value.items() if v != default.get(key)]
        if invalid:
            changed.append(f"{invalid} invalid")
        if changed:
            return Content("advanced settings · " + ", ".join(changed))
        return Content("advanced settings (schedule, smoothing, augmentation, …)")  # Content: never markup

    def _widget(self, key: str, kind: Any):
        value = self.base.get(key)
        wid = field_id(key)
        if kind == "switch":
            return Switch(value=value, id=wid)
        if kind == "device":
            return Select(self._devices, value=value, allow_blank=False, compact=True, id=wid)
        if isinstance(kind, tuple):
            return Select([(c, c) for c in kind], value=value, allow_blank=False, compact=True, id=wid)
        # Tabbing into a field selects its text, so typing replaces it (as in a browser form)
        return Input(show_value(value), compact=True, id=wid)

    def on_mount(self) -> None:
        self._changed()
        self.call_after_refresh(self._mount_advanced)

    def _show_momentum(self) -> None:
        optimizer = self.query_one("#" + field_id("optim.name"), Select).value
        self.query_one("#row-optim-momentum").display = optimizer in MOMENTUM_OPTIMIZERS

    def raw_values(self) -> dict[str, Any]:
        """{dotted key: widget value}, text fields still as text."""
        out = {}
        for key in FIELDS:
            if key not in self._ready:  # not mounted yet: `base` holds its value
                continue
            widget = self.query_one("#" + field_id(key))
            out[key] = widget.value
        return out

    def validate(self) -> Config | None:
        """Check every field, mark the invalid ones, and return the config (or None)."""
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}
        valid: dict[str, Any] = {}  # dotted key -> the value of a valid field, as the config holds it
        for key, raw in self.raw_values().items():
            try:
                value = parse_field(FIELDS[key], raw) if isinstance(raw, str) and FIELDS[key] in (
                    "text", "hidden", "number") else raw
                valid[key] = Config().with_values({key: value}, "form").get(key)
                values[key] = value
            except ConfigError as err:
                errors[key] = error_text(err)
            except (ValueError, OverflowError, RecursionError):  # a pasted 5,000-digit number, ...
                errors[key] = "too large or malformed to read"
        config = None
        if not errors:
            try:
                config = self.base.with_values(values, "form")
            except ConfigError as err:  # pragma: no cover - every field passed on its own
                errors["name"] = error_text(err)
        self.errors = errors
        self._valid = valid
        for key in FIELDS:
            if key not in self._ready:
                continue
            message = errors.get(key, "")
            hint = "" if message else self.hints.get(key, "")
            if self._shown.get(key) == (message, hint):
                continue  # an update costs a layout of the screen: a keystroke changes one field
            self._shown[key] = (message, hint)
            error = self.query_one("#e-" + field_id(key)[2:], Static)
            error.update(Text(message or hint))  # it quotes what was typed: never markup
            error.set_class(bool(message or hint), "-shown")
            error.set_class(bool(hint), "-hint")
            self.query_one("#" + field_id(key)).set_class(bool(message), "-invalid")
        self.config = config
        return config

    def focus_first_error(self) -> None:
        """Focus the first invalid field, in the order the form shows them (left column first),
        opening the advanced section when that is where it is."""
        for key in FIELDS:
            if key in self.errors:
                if key in ADVANCED:
                    self.query_one("#advanced", Collapsible).collapsed = False
                self.query_one("#" + field_id(key)).focus()
                return

    def _changed(self) -> None:
        self._show_momentum()
        for key, kind in FIELDS.items():
            if kind == "switch" and key in self._ready:
                state = "on" if self.query_one("#" + field_id(key), Switch).value else "off"
                label = self.query_one("#s-" + field_id(key)[2:], Label)
                if str(label.content) != state:  # as for the errors: no layout for nothing
                    label.update(state)
        config = self.validate()
        self.query_one("#advanced", Collapsible).title = self._advanced_title()
        self.post_message(self.Changed(config))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._changed()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._changed()

    def on_switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        self._changed()

    def set_config(self, config: Config) -> None:
        """Fill every field from `config` (which becomes the base) and validate."""
        self.base = config
        if config.train.device not in {v for _, v in self._devices}:
            self.set_devices(self._devices + [(config.train.device, config.train.device)])
        with self.prevent(Input.Changed, Select.Changed, Switch.Changed):
            for key, kind in FIELDS.items():
                if key not in self._ready:  # mounted later, from `base`
                    continue
                widget = self.query_one("#" + field_id(key))
                value = config.get(key)
                if kind == "switch" or kind == "device" or isinstance(kind, tuple):
                    widget.value = value
                else:
                    widget.value = show_value(value)
                    widget.cursor_position = len(widget.value)  # else typing lands mid-text
        self._changed()

    def set_hints(self, hints: dict[str, str]) -> None:
        """Show a note under each field of `hints` (e.g. the values a sweep gives it)."""
        self.hints = {key: text for key, text in hints.items() if key in FIELDS}
        self.validate()

    def set_devices(self, devices: list[tuple[str, str]]) -> str | None:
        """Offer only `devices`; returns the old choice if it had to be replaced (not available)."""
        select = self.query_one("#" + field_id("train.device"), Select)
        current = select.value
        self._devices = list(devices)
        values = {v for _, v in devices}
        replaced = None
        with self.prevent(Select.Changed):
            select.set_options(devices)
            if current in values:
                select.value = current
            else:
                replaced = str(current)
                select.value = "auto"
        self._changed()
        return replaced
