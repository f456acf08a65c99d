"""How values read as text, in one light module that the CLI, the app and the reports share.

- `setting_text(value, style)` writes a configuration value; each style is one place's way, kept
  as it is (a run's name, a table's label, a search trial's name, a narrow cell), and each has a
  named shortcut: `name_value`, `setting_label`, `short_value`, `short_setting`.
- `short_number(x)`: a number readable in a narrow column (`1e-3`, `2.5e-5`, `0.05`, `6000`).
- `percent(fraction)`: `87.65` (or `87.65%`, or `87.7` to 1 decimal); `seconds(s)`: `4.2s`,
  `1m05s` (the CLI's `65.0s`); `duration(s)`: `1:15`, `1:02:05`. What is not a finite number reads `-`.
- `loss_text(x)`: `0.3412` (`nan` as it is); `speed(x)`: `12,345 samples/s`; `memory_size(bytes)`:
  `5.3 GiB` (or `612 MiB`).
- `STATUS_COLOURS` / `status_style(status)`: one colour per run status, wherever a status is shown.

Imports nothing heavy (no torch, optuna, Rich or Textual).
"""

from __future__ import annotations

import math
from typing import Any

from fcn_tui import events as ev

SMALL = 1e-2  # below this a decimal needs 3+ zeros: written as mantissa and exponent
LARGE = 1e5  # from here on too: 100000 is harder to read than 1e5
LONG_FLOAT = 8  # a float whose repr is longer was searched, not typed (0.0011187343350529033)
QUEUED = "queued"  # a study's run while it waits for a worker (in the study store; never in a run folder)

# --- settings ------------------------------------------------------------------------------

SETTING_STYLES = ("name", "label", "trial", "cell")


def setting_text(value: Any, style: str = "name") -> str:
    """A configuration value as text, in one of `SETTING_STYLES`:

    - `name`:  in a sweep's run names: `0.001`, `true`, `[400,400]`, `adam` (`None` for None);
    - `label`: tables and figures: as `name`, but a long float (a searched value) to 4 significant
      digits (`0.001119`) and None as `?`;
    - `trial`: a search trial's name: every float to 3 significant digits (`0.00112`);
    - `cell`:  narrow table cells: `1e-3`, `yes` / `no`, `400,400`, `-` for None.
    """
    if style == "cell":
        if value is None:
            return "-"
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, (list, tuple)):
            return ",".join(setting_text(v, "cell") for v in value)
        return short_number(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(str(v) for v in value) + "]"
    if isinstance(value, float) and style == "trial":
        return f"{value:.3g}"
    if isinstance(value, float) and style == "label" and len(repr(value)) > LONG_FLOAT:
        return f"{value:.4g}"  # grid values stay as typed
    if value is None and style == "label":
        return "?"
    return str(value)


def name_value(value: Any) -> str:
    """A value in a sweep's run name (`optim.lr=0.001,model.hidden=[400,400]`)."""
    return setting_text(value, "name")


def setting_label(value: Any) -> str:
    """A config value as shown in tables and figures: `0.001`, `true`, `[400,400]`, `adam`."""
    return setting_text(value, "label")


def short_value(value: Any) -> str:
    """A value in a search trial's name: floats to 3 significant digits."""
    return setting_text(value, "trial")


def short_setting(value: Any) -> str:
    """A config value for a narrow table cell: `1e-3`, `yes` / `no`, `400,400`, `adam`, `-`."""
    return setting_text(value, "cell")


def short_number(value: Any) -> str:
    """`1e-3`, `3e-4`, `2.5e-5`, `0.05`, `0.1`, `15`, `1e6`: at most 3 significant digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) and abs(value) < LARGE:
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if SMALL <= abs(value) < LARGE:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.2e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


# --- numbers -------------------------------------------------------------------------------


def finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def percent(value: Any, suffix: str = "", digits: int = 2) -> str:
    """A fraction as a percentage with 2 decimals, or `digits` (`0.8765` -> `87.65`, then `suffix`,
    e.g. `%`); `-` for what is not a finite number (a run not tested, a missing value)."""
    return f"{100 * value:.{digits}f}{suffix}" if finite_number(value) else "-"


def loss_text(value: Any) -> str:
    """A loss to 4 decimals (`0.3412`); `nan` and `inf` as they are (a diverged run's honest loss),
    `-` for what is not a number."""
    if not isinstance(value, (int, float)):
        return "-"
    return f"{value:.4f}" if math.isfinite(value) else str(value)


def speed(samples_per_s: float) -> str:
    """Training throughput: `12,345 samples/s`."""
    return f"{samples_per_s:,.0f} samples/s"


def seconds(value: Any, minutes: bool = True) -> str:
    """A run's wall time: `4.2s` under a minute, else `1m05s` (or `65.0s` without `minutes`, as the
    CLI's lines and tables show it); `-` for what is not a finite number."""
    if not finite_number(value):
        return "-"
    whole, secs = divmod(round(value), 60)
    return f"{whole}m{secs:02d}s" if whole and minutes else f"{value:.1f}s"


GIB, MIB = 1 << 30, 1 << 20


def memory_size(n: int, mib: bool = False) -> str:
    """Bytes in GiB to one decimal (`5.3 GiB`); with `mib`, under a GiB in whole MiB (`612 MiB`)."""
    return f"{n / MIB:.0f} MiB" if mib and n < GIB else f"{n / GIB:.1f} GiB"


def duration(seconds: float) -> str:
    """An elapsed time or an ETA as a clock: `75` -> `1:15`, `3725` -> `1:02:05`."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


# --- statuses ------------------------------------------------------------------------------

STATUS_COLOURS = {
    ev.COMPLETED: "green",
    ev.RUNNING: "cyan",  # live, and apart from completed's green
    QUEUED: "dim",
    ev.STOPPED: "yellow", ev.PRUNED: "yellow", ev.INCOMPLETE: "yellow",  # kept epochs, ended early
    ev.DIVERGED: "red", ev.FAILED: "red", ev.UNREADABLE: "red",
}


def status_style(status: str, bold: bool = False, other: str = "") -> str:
    """The Rich style of a run status (`other` for a status not in `STATUS_COLOURS`)."""
    colour = STATUS_COLOURS.get(status, other)
    return f"bold {colour}" if bold and colour else colour
