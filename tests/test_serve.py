"""`fcn-tui serve` in a real browser: Debian's Chromium driven by Playwright, on tiny synthetic data.

Each test starts the server as a child process on a free loopback port and always kills it (and
every app it started, each in its own process group) at the end. The page draws the terminal on
a canvas, so what the app shows is read from the websocket frames the page receives, and what it
did from the run folders. A test run keeps its screenshots under the test's temporary folder; with
FCN_TUI_SCREENSHOT_TO=FILE the finished-run screenshot is also copied there (docs/browser.png).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fcn_tui.runs import read_metrics
from fcn_tui.serve import ServeError, app_argv, check_host, is_loopback, refusal
from tests.helpers import TINY_PRESET

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="POSIX signals and /proc")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # Chromium refuses to run as root with its sandbox
    "--disable-background-networking", "--disable-component-update", "--disable-sync",  # no internet here
]
WAIT_S = 180  # the app's first screen, torch's import and the data in each tab on a busy 2-core machine
SHORT = TINY_PRESET.replace("epochs = 2", "epochs = 5")
LONG = TINY_PRESET.replace("epochs = 2", "epochs = 10000").replace('name = "tiny"', 'name = "long"')
ANSI = re.compile(r"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, whatever session or group it moved to (from /proc)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":  # a zombie has exited already
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_until(condition: Callable[[], object], what: str, timeout: float = WAIT_S, poll: float = 0.1,
               sleep: Callable[[float], object] = time.sleep) -> object:
    """Poll `condition` until it is true (returned) or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        sleep(poll)
    pytest.fail(f"gave up after {timeout:.0f}s waiting for {what}")


def statuses(out: Path) -> dict[str, str]:
    """Run folder name -> status from its summary.json."""
    found = {}
    for summary in out.glob("*/summary.json"):
        try:
            found[summary.parent.name] = json.loads(summary.read_text())["status"]
        except (OSError, ValueError, KeyError):
            pass  # being written
    return found


class Served:
    """`fcn-tui serve PRESET --data-dir DATA --out OUT --port P` in a child process (own group)."""

    def __init__(self, tmp_path: Path, data_dir: Path, preset_text: str, *extra: str) -> None:
        self.out = tmp_path / "out"
        self.port = free_port()
        preset = tmp_path / "served.toml"
        preset.write_text(preset_text)
        self.log = tmp_path / "serve.log"
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        argv = [sys.executable, "-m", "fcn_tui", "serve", str(preset), "--data-dir", str(data_dir),
                "--out", str(self.out), "--port", str(self.port), *extra]
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.apps: set[int] = set()  # every app process seen, for the check that none is left

    @property
    def output(self) -> str:
        return self.log.read_text()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_listening(self) -> None:
        wait_until(lambda: "serving the app at" in self.output or self.proc.poll() is not None, "the URL line")
        assert self.proc.poll() is None, self.output
        assert f"serving the app at {self.url} " in self.output

    def track_apps(self) -> set[int]:
        now = descendants(self.proc.pid)
        self.apps |= now
        return now

    def kill(self) -> None:
        """Last resort: SIGKILL the server's group and every app's group (one the server left is no
        longer below it: every app seen is tried)."""
        self.track_apps()
        for pid in self.apps | {self.proc.pid}:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.proc.wait(timeout=30)


@contextmanager
def serving(tmp_path: Path, data_dir: Path, preset_text: str) -> Iterator[Served]:
    served = Served(tmp_path, data_dir, preset_text)
    try:
        served.wait_listening()
        yield served
    finally:
        served.kill()


@contextmanager
def chromium() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is needed for the browser tests: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Tab:
    """A browser tab on the server's page; `text` is what the app has sent it, escape codes removed."""

    def __init__(self, browser, url: str, artifacts: Path) -> None:
        self.artifacts = artifacts
        self.frames: list[str] = []
        self.sent: list[str] = []  # what the page sent: keys, focus, resize
        self.page = browser.new_page(viewport={"width": 1000, "height": 640})
        self.page.set_default_timeout(WAIT_S * 1000)
        # a request to another host (the page once asked Google for its font) is recorded and refused
        self.outside: list[str] = []
        self.page.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/]).*"),
                        lambda route: (self.outside.append(route.request.url), route.abort()))
        self.page.on("websocket", self._connected)
        self.page.goto(url, wait_until="commit")

    def _connected(self, websocket) -> None:
        websocket.on("framereceived", self._received)
        websocket.on("framesent", lambda payload: self.sent.append(str(payload)))

    def _received(self, payload: str | bytes) -> None:
        if isinstance(payload, bytes):
            self.frames.append(payload.decode("utf-8", "replace"))

    @property
    def text(self) -> str:
        return self.text_since(0)

    def text_since(self, mark: int) -> str:
        return ANSI.sub("", "".join(self.frames[mark:]))

    def mark(self) -> int:
        """A point in the page's output: `wait_for_text(..., since=mark)` looks only after it."""
        return len(self.frames)

    def wait_for_text(self, pattern: str, what: str, since: int = 0) -> None:
        try:
            wait_until(lambda: re.search(pattern, self.text_since(since)), what, poll=0.2, sleep=self.sleep)
        except BaseException:  # keep what the page saw next to the test's other files
            self.artifacts.joinpath("page-text.txt").write_text(self.text)
            self.artifacts.joinpath("page-sent.txt").write_text("\n".join(self.sent))
            self.page.screenshot(path=str(self.artifacts / "page-failed.png"))
            raise

    def sleep(self, seconds: float) -> None:
        """Playwright's sync API delivers the page's events (the frames) only while it is called."""
        self.page.wait_for_timeout(seconds * 1000)

    def wait_ready(self) -> None:
        """The app has drawn its first screen and loaded torch and the data (Start is enabled then)."""
        self.page.wait_for_selector("body.-first-byte", timeout=WAIT_S * 1000)
        self.wait_for_text("F1 Setup", "the app's first screen")
        self.wait_for_text(r"data: (?!loading)", "the data to load")
        self.page.click("#terminal")  # focus xterm: keys go to the app

    def press(self, *keys: str) -> None:
        for key in keys:
            self.page.keyboard.press(key)

    def start_a_run(self, out: Path, before: set[str], tries: int = 3) -> str:
        """ctrl+r until a run folder not in `before` appears under `out`; its name. As in
        `open_preset`, a key sent while the app is between screens (a dialog just closed) can be
        lost, so a ctrl+r that starts nothing within a minute is sent again (one that arrives
        while the run goes does nothing)."""
        for _ in range(tries):
            self.press("Control+r")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if name := new_run(out, before):
                    return name
                self.sleep(0.2)
        self.artifacts.joinpath("page-text.txt").write_text(self.text)
        self.artifacts.joinpath("page-sent.txt").write_text("\n".join(self.sent))
        self.page.screenshot(path=str(self.artifacts / "page-failed.png"))
        pytest.fail(f"no run started after {tries} ctrl+r (page text in {self.artifacts})")

    def seen(self, pattern: str, since: int, timeout: float) -> bool:
        """Whether the page shows `pattern` (after `since`) within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text_since(since)):
            if time.monotonic() > deadline:
                return False
            self.sleep(0.2)
        return True

    def open_preset(self, path: str, expect: str) -> None:
        """ctrl+o, type `path`, enter; until the app answers `expect` (a pattern), three tries at most.

        Keys sent while the app is between screens can be lost (the dialog is drawn a moment
        before its field has the focus): a try whose keys were lost (no dialog, or a path missing
        a letter, which the app refuses) is tried again, after escape closes a dialog it may
        have left open. Only `expect` ends the wait: a toast of an earlier try (shown up to
        15 s) is never taken for this try's answer."""
        for attempt in range(3):
            if attempt:
                self.press("Escape")
                self.sleep(1.0)
            mark = self.mark()
            self.press("Control+o")
            if not self.seen("Open a preset", mark, timeout=30):
                continue
            self.sleep(0.5)
            mark = self.mark()
            self.press("Control+a", "Control+k")  # home, delete to the end: the field is empty
            self.page.keyboard.type(path)
            self.press("Enter")
            if self.seen(expect, mark, timeout=20):
                return
        self.artifacts.joinpath("page-text.txt").write_text(self.text)
        pytest.fail(f"opening {path} never answered {expect!r} (page text in {self.artifacts})")


def new_run(out: Path, before: set[str], status: str | None = None) -> str | None:
    """The run folder that appeared since `before` (with `status`, if given)."""
    runs = statuses(out)
    fresh = [name for name in runs if name not in before and (status is None or runs[name] == status)]
    return fresh[0] if fresh else None


# --- the host check and the app's command line (no browser) -----------------------------------


def test_loopback_addresses():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.1.1", "::1", "[::1]", "localhost", "LOCALHOST"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "example.org", ""))
    check_host("127.0.0.1", allow_remote=False)
    check_host("0.0.0.0", allow_remote=True)
    with pytest.raises(ServeError, match="--allow-remote"):
        check_host("0.0.0.0", allow_remote=False)


def test_each_tab_runs_the_app_with_the_servers_options_confined_to_out(tmp_path):
    argv = app_argv(Path("p.toml"), ["model.hidden=[8]", "name='a b'"], Path("o"), Path("d"))
    assert argv[1:4] == ["-m", "fcn_tui", "ui"]
    assert argv[4] == str(Path("p.toml").resolve())
    assert argv[5:9] == ["--set", "model.hidden=[8]", "--set", "name='a b'"]
    assert argv[argv.index("--out") + 1] == str(Path("o").resolve()) and "--confine" in argv
    assert argv[argv.index("--data-dir") + 1] == str(Path("d").resolve())


def test_a_non_loopback_host_is_refused_without_the_flag(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "fcn_tui", "serve", "--host", "0.0.0.0", "--port", str(free_port()),
         "--out", str(tmp_path / "out")],
        check=False, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fcn-tui: error: --host 0.0.0.0 is not a loopback address")
    assert "--allow-remote" in lines[0] and result.stdout == ""
    assert not (tmp_path / "out").exists()  # refused before anything was done


def test_a_non_loopback_host_with_the_flag_warns_and_serves(tmp_path):
    served = Served(tmp_path, tmp_path, "", "--host", "0.0.0.0", "--allow-remote")
    try:
        wait_until(lambda: "serving the app at" in served.output or served.proc.poll() is not None, "the URL line")
        assert served.proc.poll() is None, served.output
        assert re.search(r"fcn-tui: warning: listening on 0\.0\.0\.0.*anyone who can reach port \d+ can train on "
                         r"this machine and read the output folder", served.output)
        with urllib.request.urlopen(served.url, timeout=30) as page:  # reachable on loopback too
            assert page.status == 200 and b"data-session-websocket-url" in page.read()
        served.proc.send_signal(signal.SIGINT)
        assert served.proc.wait(timeout=60) == 130, served.output
    finally:
        served.kill()


def test_pages_of_other_sites_and_rebound_host_names_are_refused():
    assert refusal("127.0.0.1:8000", None, loopback_only=True) is None  # not from a browser page
    assert refusal("127.0.0.1:8000", "http://127.0.0.1:8000", loopback_only=True) is None
    assert refusal("localhost:9000", "http://localhost:9000", loopback_only=True) is None  # SSH forward
    assert refusal("[::1]:8000", "http://[::1]:8000", loopback_only=True) is None
    assert "not use this server" in refusal("127.0.0.1:8000", "http://evil.example", loopback_only=True)
    assert "not use this server" in refusal("127.0.0.1:8000", "http://127.0.0.1:8001", loopback_only=True)
    assert "not a loopback" in refusal("evil.example:8000", "http://evil.example:8000", loopback_only=True)
    assert refusal("gpu-box:8000", "http://gpu-box:8000", loopback_only=False) is None  # --allow-remote


def test_the_server_refuses_other_sites_and_rebound_host_names(tmp_path):
    served = Served(tmp_path, tmp_path, "")
    try:
        served.wait_listening()

        def status(path: str, **headers: str) -> int:
            request = urllib.request.Request(served.url + path, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return response.status
            except urllib.error.HTTPError as err:
                return err.code

        assert status("/") == 200
        assert status("/", Host=f"evil.example:{served.port}") == 403  # DNS rebinding
        assert status("/ws", Origin="http://evil.example") == 403  # another site's page
        assert status("/static/js/textual.js", Origin=served.url) == 200
        assert not served.track_apps()  # no app was started for any of them
    finally:
        served.kill()


def test_a_bad_setting_is_refused_before_listening(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "fcn_tui", "serve", "--set", "model.hidden=[0]", "--port", str(free_port()),
         "--out", str(tmp_path / "out")],
        check=False, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("fcn-tui: error: ") and "model.hidden" in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_busy_port_is_one_clear_error(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "fcn_tui", "serve", "--port", str(port), "--out", str(tmp_path / "out")],
            check=False, capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 2
    assert result.stderr.startswith(f"fcn-tui: error: cannot listen on 127.0.0.1:{port}: ") and result.stderr.count("\n") == 1


async def test_a_confined_app_opens_saves_and_exports_only_inside_out(tmp_path, tiny_preset):
    from fcn_tui.tui.app import FcnApp
    from tests.scripted import ScriptedBackend

    out = tmp_path / "out"
    (out / "presets").mkdir(parents=True)
    shutil.copyfile(tiny_preset, out / "presets" / "mine.toml")
    (out / "escape").symlink_to(tmp_path)  # a link out of OUT is outside OUT
    app = FcnApp(out=out, backend_factory=ScriptedBackend, confine=True)
    messages: list[str] = []  # every notification (a toast may have timed out by the end)
    notify = app.notify
    app.notify = lambda message, **kwargs: (messages.append(message), notify(message, **kwargs))[1]
    async with app.run_test(size=(100, 30)) as pilot:
        for text in (str(tiny_preset), "../tiny.toml", "escape/tiny.toml", "~/x.toml"):
            assert app.user_path(text) is None or text == "~/x.toml"
        assert app.user_path("~/x.toml") == out.resolve() / "~" / "x.toml"  # no home folder either
        assert app.user_path("presets/mine.toml") == out.resolve() / "presets" / "mine.toml"
        assert app.user_path(str(out / "runs.csv")) == out.resolve() / "runs.csv"

        async def dialog(key: str, path: str) -> None:
            await pilot.press(key)
            await pilot.pause()
            await pilot.press("ctrl+a", "ctrl+k", *path, "enter")
            await pilot.pause()

        await dialog("ctrl+s", str(tmp_path / "saved.toml"))
        await dialog("ctrl+e", str(tmp_path / "runs.csv"))
        await dialog("ctrl+o", "presets/mine.toml")
        await pilot.pause()
    assert not (tmp_path / "saved.toml").exists() and not (tmp_path / "runs.csv").exists()
    assert sum("only paths inside the output folder" in m for m in messages) == 3 + 2, messages
    assert any(m.startswith("opened") for m in messages), messages
    assert FcnApp(out=out).user_path("~/x.toml") == Path("~/x.toml").expanduser()  # `fcn-tui ui`: anywhere


# --- in the browser -------------------------------------------------------------------------------


def test_the_browser_trains_and_a_closed_tab_saves_its_run_as_stopped(synthetic_data_dir, tmp_path):
    with serving(tmp_path, synthetic_data_dir, SHORT) as served, chromium() as browser:
        (served.out / "long.toml").write_text(LONG)  # a preset inside OUT: the page may open it
        tab = Tab(browser, served.url, tmp_path)
        tab.wait_ready()
        assert tab.outside == []  # the page asked no other host for anything
        page_app = served.track_apps()
        assert len(page_app) == 1  # one app process for the tab

        # ctrl+r in the page trains the preset the server was given, to the end
        tab.press("Control+r")
        first = wait_until(lambda: new_run(served.out, set(), "completed"), "the first run to complete",
                           sleep=tab.sleep)
        assert len(read_metrics(served.out / first / "metrics.csv")) == 5
        # the Train tab: ctrl+r shows it, but when the page's focus event reaches the app together with
        # ctrl+r, Textual gives the focus back to the Setup field it had, and with it the Setup tab
        tab.press("F2")
        tab.wait_for_text("completed", "the finished run on screen")
        tab.sleep(1.0)  # the charts' last redraw
        shot = tmp_path / "browser.png"
        tab.page.screenshot(path=str(shot))
        assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if target := os.environ.get("FCN_TUI_SCREENSHOT_TO"):
            shutil.copyfile(shot, target)

        # a file outside OUT cannot be opened from the page
        tab.open_preset(str(tmp_path / "served.toml"), expect="path refused")

        # a second run, long, from a preset inside OUT; the tab is closed in the middle of it
        tab.open_preset("long.toml", expect="opened")
        second = tab.start_a_run(served.out, {first})
        wait_until(lambda: read_metrics(served.out / second / "metrics.csv"), "the second run's first epoch",
                   sleep=tab.sleep)
        tab.page.close()
        wait_until(lambda: statuses(served.out)[second] == "stopped", "the closed tab's run to be saved", timeout=60)
        epochs = len(read_metrics(served.out / second / "metrics.csv"))
        assert 1 <= epochs < 10000
        wait_until(lambda: not any(alive(pid) for pid in page_app), "the closed tab's app to exit", timeout=60)

        # the server is still up and serves a new tab
        assert served.proc.poll() is None, served.output
        with urllib.request.urlopen(served.url, timeout=30) as page:
            assert page.status == 200
        assert "Traceback" not in served.output, served.output


def test_ctrl_c_stops_the_server_and_every_app_saving_their_runs(synthetic_data_dir, tmp_path):
    with serving(tmp_path, synthetic_data_dir, LONG) as served, chromium() as browser:
        tabs = [Tab(browser, served.url, tmp_path) for _ in range(2)]
        for tab in tabs:
            tab.wait_ready()
        apps = served.track_apps()
        assert len(apps) == 2
        started: set[str] = set()
        for tab in tabs:
            tab.press("Control+r")
            started.add(wait_until(lambda: new_run(served.out, started), "a run to start"))
        for name in started:
            wait_until(lambda name=name: read_metrics(served.out / name / "metrics.csv"), "a first epoch")

        served.proc.send_signal(signal.SIGINT)
        assert served.proc.wait(timeout=90) == 130, served.output
        assert "SIGINT: stopping every app" in served.output
        runs = statuses(served.out)
        assert sorted(runs) == sorted(started) and set(runs.values()) == {"stopped"}, runs
        assert not [pid for pid in served.apps if alive(pid)]  # no app is left behind
        assert "Traceback" not in served.output, served.output


# --- hostile pages: sizes, tab limit, malformed messages, a killed server (a websocket client, no browser) ---


def test_terminal_sizes_from_a_page_are_clamped():
    from fcn_tui.serve import MAX_COLUMNS, MAX_ROWS, terminal_size

    assert terminal_size(100_000, 100_000) == (MAX_COLUMNS, MAX_ROWS) == (500, 200)
    assert terminal_size(120, 40) == (120, 40)
    assert terminal_size(-5, 0) == (1, 1)
    assert terminal_size("80", 24) is None and terminal_size(True, 24) is None and terminal_size(1.5, 2) is None


async def test_a_resize_message_is_clamped_before_it_reaches_the_app():
    from fcn_tui.serve import TabApp

    tab = TabApp(["true"], set(), write_bytes=None, write_str=None, close=None, download_manager=None)
    sent: list[dict] = []

    async def send_meta(data):
        sent.append(data)
        return True

    tab.send_meta = send_meta
    await tab.set_terminal_size(100_000, 100_000)
    await tab.set_terminal_size("wide", 24)
    assert sent == [{"type": "resize", "width": 500, "height": 200}]


def test_the_page_asks_no_other_host_for_anything(tmp_path):
    """Before: the page loaded its font from fonts.googleapis.com (fails offline, tells a third party)."""
    served = Served(tmp_path, tmp_path, "")
    try:
        served.wait_listening()
        with urllib.request.urlopen(served.url, timeout=30) as page:
            html = page.read().decode()
        urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", html) + re.findall(r"""url\(["']?([^"')]+)""", html)
        assert urls and all(url.startswith(served.url + "/static/") for url in urls), urls
        assert "googleapis" not in html and "fonts/RobotoMono" in html
        font = next(url for url in urls if "fonts/" in url)
        with urllib.request.urlopen(font, timeout=30) as response:
            assert response.status == 200 and len(response.read()) > 10_000
    finally:
        served.kill()


def test_a_hostile_page_is_clamped_limited_and_answered_quietly(synthetic_data_dir, tmp_path):
    """Before: a closed tab logged "Application failed to start"; a 100,000 x 100,000 terminal was
    given to the app; malformed messages printed aiohttp tracebacks (and closed the tab); there was
    no tab limit."""
    import asyncio

    import aiohttp

    served = Served(tmp_path, synthetic_data_dir, SHORT, "--max-tabs", "1")
    ws_url = served.url.replace("http", "ws") + "/ws"

    def cmdline(pid: int) -> str:
        with contextlib.suppress(OSError):
            return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        return ""

    def environ(pid: int) -> dict[str, str]:
        raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        return dict(item.decode(errors="replace").partition("=")[::2] for item in raw if item)

    async def session() -> None:
        async with aiohttp.ClientSession() as client:
            # a tab closed at once, before its app has drawn anything: quiet, and its place is free again
            async with client.ws_connect(ws_url + "?width=80&height=24"):
                pass
            for _ in range(600):
                async with client.get(served.url) as page:
                    if page.status == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("the closed tab's place never came free")

            # a tab asking for 100,000 x 100,000 cells gets at most 500 x 200
            before = served.track_apps()
            ws = await client.ws_connect(ws_url + "?width=100000&height=100000")
            for _ in range(600):
                if apps := [pid for pid in served.track_apps() - before if "--confine" in cmdline(pid)]:
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("no app started for the tab")
            (app_pid,) = apps
            env = environ(app_pid)
            assert (env["COLUMNS"], env["ROWS"]) == ("500", "200")

            # malformed messages: ignored, one line, no traceback; the tab still works
            for junk in ("not json", "{}", "[]", '["resize", 5]', '["resize", {"width": "x"}]', '["stdin", 5]',
                         '["resize", {"width": 100000, "height": 100000}]'):
                await ws.send_str(junk)
            await ws.send_str('["ping", "alive"]')
            while True:  # the app's screen comes as binary frames; the answer to the ping as text
                message = await asyncio.wait_for(ws.receive(), 60)
                assert message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), message
                if message.type == aiohttp.WSMsgType.TEXT:
                    assert json.loads(message.data) == ["pong", "alive"]
                    break

            # a second tab: a page saying why, no app
            async with client.get(served.url) as page:
                assert page.status == 503
                assert "1 tab already open (at most 1" in await page.text()
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect(ws_url)
            assert refused.value.status == 503
            assert [pid for pid in served.track_apps() if "--confine" in cmdline(pid)] == apps

    try:
        served.wait_listening()
        asyncio.run(session())
        output = served.output
        assert output.count("fcn-tui: ignored a malformed message from a tab") == 1, output
        assert "Traceback" not in output and "Error handling request" not in output, output
        assert "Application failed to start" not in output, output
    finally:
        served.kill()


def test_a_killed_server_hangs_up_its_training_apps_which_save_their_runs(synthetic_data_dir, tmp_path):
    """Before: SIGKILL of `serve` left a tab's app training (790 MB for minutes)."""
    import asyncio

    import aiohttp

    served = Served(tmp_path, synthetic_data_dir, LONG)

    async def train_in_a_tab() -> tuple[str, set[int]]:
        async with aiohttp.ClientSession() as client:
            ws = await client.ws_connect(served.url.replace("http", "ws") + "/ws?width=100&height=30")
            reading = asyncio.ensure_future(ws.receive())
            deadline = time.monotonic() + WAIT_S
            while not (name := new_run(served.out, set())):
                if time.monotonic() > deadline:
                    pytest.fail("no run started in the tab")
                await ws.send_str(json.dumps(["stdin", "\x12"]))  # ctrl+r, until the app has the data and starts
                await asyncio.sleep(1.0)
                while reading.done():  # keep reading the screen, so that the app never waits for the page
                    reading = asyncio.ensure_future(ws.receive())
            while not read_metrics(served.out / name / "metrics.csv"):
                await asyncio.sleep(0.2)
                while reading.done():
                    reading = asyncio.ensure_future(ws.receive())
            apps = served.track_apps()
            os.kill(served.proc.pid, signal.SIGKILL)  # no chance to hang anything up itself
            reading.cancel()
            return name, apps

    try:
        served.wait_listening()
        name, apps = asyncio.run(train_in_a_tab())
        served.proc.wait(timeout=30)
        wait_until(lambda: statuses(served.out).get(name) == "stopped", "the run to be saved as stopped", timeout=90)
        wait_until(lambda: not any(alive(pid) for pid in apps), "the app to exit", timeout=90)
    finally:
        served.kill()
