"""One formatting module: each place's way of writing a value is a named style of one function,
and every view colours a run's status alike."""

from rich.text import Text

from fcn_tui import events as ev
from fcn_tui.formatting import (
    STATUS_COLOURS,
    duration,
    loss_text,
    memory_size,
    name_value,
    percent,
    seconds,
    setting_label,
    short_setting,
    short_value,
    speed,
)
from fcn_tui.tui.status import RunState, status_text


def test_each_place_writes_a_setting_its_own_way():
    searched = 0.0011187343350529033
    assert [name_value(v) for v in (searched, [400, 400], True, None)] == [
        "0.0011187343350529033", "[400,400]", "true", "None"]  # run names of a sweep
    assert [setting_label(v) for v in (searched, 0.001, [400, 400], None)] == ["0.001119", "0.001", "[400,400]", "?"]
    assert [short_value(v) for v in (searched, 0.001, "adam")] == ["0.00112", "0.001", "adam"]  # a trial's name
    assert [short_setting(v) for v in (searched, [400, 400], False, None)] == ["1.12e-3", "400,400", "no", "-"]


def test_numbers_read_the_same_everywhere():
    assert (percent(0.87654), percent(0.87654, "%"), percent(None), percent(float("nan"))) == ("87.65", "87.65%", "-", "-")
    assert (seconds(4.24), seconds(65), seconds(None)) == ("4.2s", "1m05s", "-")
    assert (duration(75), duration(3725), duration(-3)) == ("1:15", "1:02:05", "0:00")
    assert (percent(0.87654, "%", 1), percent(0.876, "%", 0)) == ("87.7%", "88%")  # a confusion cell, a figure's title
    assert (seconds(65.04, minutes=False), seconds(4.24, minutes=False)) == ("65.0s", "4.2s")  # the CLI's lines
    assert [loss_text(v) for v in (0.34123, float("nan"), float("inf"), None)] == ["0.3412", "nan", "inf", "-"]
    assert speed(12345.6) == "12,346 samples/s"
    assert (memory_size(3 << 29), memory_size(612 << 20), memory_size(612 << 20, mib=True)) == (
        "1.5 GiB", "0.6 GiB", "612 MiB")  # the memory check's messages; the app's readout


def test_the_train_tab_colours_a_finished_run_as_the_tables_do():
    run = RunState()
    run.name, run.epochs = "tiny", 2
    for status in (ev.COMPLETED, ev.STOPPED, ev.PRUNED, ev.FAILED):
        run.finished = ev.RunFinished(status, 1, 0.4, 0.5, 0.5, 0.5, None, None, None, wall_s=3.0, samples_per_s=100.0)
        line = status_text(run).split()[1]
        assert isinstance(line, Text) and line.spans[0].style == f"bold {STATUS_COLOURS[status]}"
