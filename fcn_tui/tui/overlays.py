"""Earlier runs drawn over the Train view's charts (picked with space in Runs).

`Overlay` holds one run's per-epoch validation curves; `overlay_labels` names each picked run by
the settings in which the picked runs differ (`adam lr=1e-3` beside `sgd lr=0.1`, numbers written
as the Runs table writes them), so two runs named alike are still told apart. Each overlay gets a colour of `OVERLAY_COLORS` and its number as
the marker on its points, so the curves stay apart on a 16-colour terminal and under NO_COLOR.
"""

from __future__ import annotations

from fcn_tui.formatting import short_setting
from fcn_tui.runs import RunRecord

# plotext colour names (the 16 ANSI colours), none of them the current run's cyan, yellow or gray;
# the number of picks the Runs view allows
OVERLAY_COLORS = ("magenta", "green", "red", "blue+", "magenta+", "green+", "red+", "white")
# a setting's short name in a label; "" shows the value alone (`adam`, `tanh`)
SHORT_KEYS = {
    "optim.name": "", "optim.lr": "lr", "optim.momentum": "mom", "optim.weight_decay": "wd",
    "optim.schedule": "sched", "model.hidden": "h", "model.activation": "", "model.dropout": "drop",
    "model.batchnorm": "bn", "model.init": "init", "model.init_std": "std", "train.batch_size": "bs",
    "train.epochs": "ep", "train.label_smoothing": "ls", "train.val_fraction": "val", "data.augment": "aug",
    "data.subset": "n", "data.normalize": "norm",
}
ZERO_MEANS = {"data.subset": "all"}  # settings whose 0 is not a number of things: `n=all`, never `n=0`
MAX_LABEL = 30  # a label longer than this is cut with `…`: two must fit an 80-column legend line


class Overlay:
    """Per-epoch curves of one earlier run (from `RunRecord.metrics`)."""

    def __init__(self, label: str, metrics: list[dict[str, float]]) -> None:
        self.label = label
        self.epochs = [m["epoch"] for m in metrics]
        self.val_loss = [m["val_loss"] for m in metrics]
        self.val_acc = [100 * m["val_acc"] for m in metrics]


def _cut(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def differing_keys(records: list[RunRecord]) -> list[str]:
    """The settings (dotted keys, in config order) whose values are not the same in every run."""
    flats = [r.config.flat() if r.config is not None else {} for r in records]
    keys = list(dict.fromkeys(k for flat in flats for k in flat))
    keys.sort(key=lambda k: k != "optim.name")  # the optimizer first: `adam lr=1e-3`
    return [k for k in keys if len({repr(flat.get(k)) for flat in flats}) > 1]


def setting_label(record: RunRecord, keys: list[str]) -> str:
    flat = record.config.flat() if record.config is not None else {}
    parts = []
    for key in keys:
        short = SHORT_KEYS.get(key, key.rsplit(".", 1)[-1])
        raw = flat.get(key, "-")
        value = ZERO_MEANS[key] if key in ZERO_MEANS and raw == 0 else short_setting(raw)  # as the Runs table writes it
        parts.append(f"{short}={value}" if short else value)
    return " ".join(parts)


def overlay_labels(records: list[RunRecord]) -> list[str]:
    """Short legend labels, one per record: the settings in which the runs differ; the run's name
    when only one is picked or their settings are the same, with its start time when names clash."""
    keys = differing_keys(records) if len(records) > 1 else []
    if keys:
        labels = [setting_label(r, keys) for r in records]
        # alike in the settings that differ elsewhere (`h=400` twice beside `h=64`): add the names
        labels = [_cut(f"{label} {r.name}" if labels.count(label) > 1 else label) for label, r in zip(labels, records)]
    else:
        names = [_cut(r.name) for r in records]
        labels = []
        for name, record in zip(names, records):
            started = str(record.get("started_at") or "")[11:19]
            labels.append(f"{name[:14]} {started}" if names.count(name) > 1 and started else name)
    # still alike (runs started in the same second, labels cut short): numbered in picking order
    return [f"{label} #{i + 1}" if labels.count(label) > 1 else label for i, label in enumerate(labels)]
