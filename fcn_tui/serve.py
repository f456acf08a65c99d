"""`fcn-tui serve`: the terminal app in a web browser, one app process per browser tab.

Contract:
- Built on textual-serve (aiohttp + xterm.js). Each browser tab (websocket) starts its own
  `python -m fcn_tui ui ... --confine` with the preset, `--set`, `--out` and `--data-dir` the
  server was given (paths made absolute), so a tab shows what `fcn-tui ui` would show. The app
  runs with `--confine`: its open/save/export dialogs accept only paths inside `--out`, and the
  page serves nothing but the app and textual-serve's static files: no run or file outside
  `--out` is reachable from the page. A page of another site in the same browser is refused
  (its `Origin`), and so is, on loopback, a host name that is not loopback (DNS rebinding).
- It listens on the loopback address unless told otherwise; `check_host` refuses any other
  address unless `allow_remote` is given (the caller then prints `remote_warning`).
- The page's URLs follow the address the browser used, so an SSH port forward to another local
  port works (`ssh_hint`).
- A closed tab hangs up its app as a closed terminal would (SIGHUP): a run in progress stops
  after its batch and is saved as `stopped`, then the app exits; it is killed if it has not
  exited GRACE_S later. The server keeps serving.
- A tab's terminal is at most MAX_COLUMNS x MAX_ROWS, whatever size the page asks for; at most
  `max_tabs` apps run at once (MAX_TABS unless told): the next tab gets a page saying so. A
  malformed message from a page is ignored with one line on stderr (once per tab).
- The page loads nothing from another host: its font is served from textual-serve's static files.
- An app notices that the server is gone, even after SIGKILL (PR_SET_PDEATHSIG on Linux): it is
  hung up as when its tab closes, so its run is saved as `stopped`.
- SIGINT (Ctrl-C) or SIGTERM stops the server: no new tab is accepted, every app is hung up and
  waited for (then killed), and `serve` returns 128 + the signal number. A second Ctrl-C kills
  every app at once and exits. Each app runs in its own process group, killed as a whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import shlex
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import WSCloseCode, WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from fcn_tui.errors import ServeError

GRACE_S = 30.0  # a hung-up app saves its run after the batch in progress; then it is killed
TITLE = "fcn-tui"
# a terminal of 100,000 x 100,000 cells grew one app to 6.3 GB; 500 x 200 fills a 4K screen at a small font
MAX_COLUMNS, MAX_ROWS = 500, 200
MAX_TABS = 8  # each tab is an app process of ~600 MB (torch and the data): 8 stay under 5 GB of memory
TEMPLATES = Path(__file__).parent / "templates"  # the page, with its font from our own static files


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback IP addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str, allow_remote: bool) -> None:
    """Refuse a non-loopback address unless `allow_remote` (raises ServeError)."""
    if not is_loopback(host) and not allow_remote:
        raise ServeError(
            f"--host {host} is not a loopback address: anyone who can reach it could train on this "
            "machine and read the output folder; add --allow-remote to do it anyway, or use an SSH "
            "port forward (see the README)"
        )


def remote_warning(host: str, port: int, out: Path) -> str:
    return (
        f"listening on {host}, not on a loopback address: anyone who can reach port {port} can "
        f"train on this machine and read the output folder {out}"
    )


def app_argv(preset: Path | None, overrides: list[str], out: Path, data_dir: Path | None) -> list[str]:
    """The command line of one tab's app: `fcn-tui ui` with the server's options, confined to `out`."""
    argv = [sys.executable, "-m", "fcn_tui", "ui"]
    if preset is not None:
        argv.append(str(preset.resolve()))
    for override in overrides:
        argv += ["--set", override]
    argv += ["--out", str(out.resolve()), "--confine"]
    if data_dir is not None:
        argv += ["--data-dir", str(data_dir.resolve())]
    return argv


def refusal(host_header: str, origin: str | None, loopback_only: bool) -> str | None:
    """Why a request must be refused, or None. A page of another site open in the same browser may
    connect to the server (websockets ignore the same-origin policy): a browser names that page in
    `Origin`, which must be this server. A site whose name is made to resolve to 127.0.0.1 (DNS
    rebinding) shows as a `Host` that is not a loopback name, refused when listening on loopback."""
    host = urlsplit("//" + host_header).hostname or ""
    if loopback_only and not is_loopback(host):
        return f"host name {host_header!r} is not a loopback address"
    if origin is not None and urlsplit(origin).netloc.lower() != host_header.lower():
        return f"a page from {origin} may not use this server"
    return None


def url_host(host: str) -> str:
    """The host part of a URL: a wildcard address becomes this machine's name, IPv6 gets brackets."""
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    return f"[{host}]" if ":" in host else host


def ssh_hint(port: int) -> str:
    """The command that reaches a loopback-only server on a remote machine from a laptop."""
    user = os.environ.get("USER") or "USER"
    return f"ssh -N -L {port}:127.0.0.1:{port} {user}@{socket.gethostname()}"


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0 picks a free one)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as err:
        raise ServeError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    sock.setblocking(False)
    return sock


HANG_UP = getattr(signal, "SIGHUP", None)  # None on Windows
KILL = getattr(signal, "SIGKILL", None)


def _signal_group(process: asyncio.subprocess.Process, sig: int | None) -> None:
    """`sig` to the app's process group (it leads one: start_new_session); on Windows, the app alone."""
    with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
        if hasattr(os, "killpg") and sig is not None:
            os.killpg(process.pid, sig)
        elif process.returncode is None:
            process.kill() if sig is KILL else process.terminate()


async def hang_up(process: asyncio.subprocess.Process, grace_s: float = GRACE_S) -> None:
    """SIGHUP the app (it saves its run and exits), wait, then kill what is left of its group."""
    if process.returncode is None:
        _signal_group(process, HANG_UP)
        try:
            await asyncio.wait_for(process.wait(), grace_s)
        except TimeoutError:
            pass
    _signal_group(process, KILL)  # children it may have left behind, or the app itself
    await process.wait()


def terminal_size(width: Any, height: Any) -> tuple[int, int] | None:
    """A page's terminal size, clamped to MAX_COLUMNS x MAX_ROWS (at least 1 x 1); None if not numbers."""
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (width, height)):
        return None
    return max(1, min(width, MAX_COLUMNS)), max(1, min(height, MAX_ROWS))


def die_with_parent(parent: int) -> Callable[[], None] | None:
    """For the app's process, run before it starts: a hang-up when the server (`parent`) dies, even
    by SIGKILL, as when its tab closes (its run is saved). Linux only (None elsewhere: there the
    app ends at the end of its input). libc is found here, before the fork: the child only calls it."""
    if sys.platform != "linux" or HANG_UP is None:
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def arrange() -> None:
        prctl(PR_SET_PDEATHSIG, HANG_UP)
        if os.getppid() != parent:  # the server died before the line above
            os.kill(os.getpid(), HANG_UP)
    return arrange


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class TabApp(AppService):
    """One browser tab's app process: its own process group; hung up (not quit) when the tab goes."""

    def __init__(self, argv: list[str], processes: set[asyncio.subprocess.Process], **kwargs: Any) -> None:
        super().__init__(shlex.join(argv), **kwargs)
        self.argv = argv
        self.processes = processes
        self.closed = False
        self._stopping: asyncio.Task[None] | None = None

    async def _open_app_process(self, width: int = 80, height: int = 24) -> asyncio.subprocess.Process:
        self._process = process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._build_environment(width=width, height=height),
            start_new_session=True,  # Ctrl-C in the server's terminal reaches the server only
            preexec_fn=die_with_parent(os.getpid()),
        )
        self.processes.add(process)
        self._stdin = process.stdin
        return process

    async def on_data(self, payload: bytes) -> None:
        if not self.closed:  # once the tab is gone the output is read and dropped, so the app never blocks
            with contextlib.suppress(ConnectionError, RuntimeError):
                await super().on_data(payload)

    async def on_meta(self, data: bytes) -> None:
        if not self.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await super().on_meta(data)

    async def set_terminal_size(self, width: int, height: int) -> None:
        size = terminal_size(width, height)
        if size is not None:
            await super().set_terminal_size(*size)

    async def stop(self) -> None:
        """Hang up the app and wait until it has exited (idempotent; safe to call from several places)."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        self.closed = True
        process = self._process
        if process is not None:
            await hang_up(process)
            self.processes.discard(process)
        if self._task is not None:
            await self._task  # ends at the app's end of output


class AppServer(Server):
    """textual-serve's server with per-tab apps that are hung up on close and cleaned up on exit."""

    def __init__(self, argv: list[str], sock: socket.socket, public_url: str, max_tabs: int = MAX_TABS) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(shlex.join(argv), host=host, port=port, title=TITLE, public_url=public_url)
        self.argv = argv
        self.sock = sock
        self.max_tabs = max_tabs
        self.open_tabs = 0  # tabs whose app runs or is being started or stopped
        self.processes: set[asyncio.subprocess.Process] = set()
        self.tabs: dict[TabApp, web.WebSocketResponse] = {}
        self.signum: int | None = None

    async def on_startup(self, app: web.Application) -> None:
        """The caller prints the URL; textual-serve's banner is not shown."""

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self.guard)
        aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader([TEMPLATES, self.templates_path]))
        return app

    def full(self) -> str | None:
        """The page's answer when `max_tabs` apps run already, else None."""
        if self.open_tabs < self.max_tabs:
            return None
        tabs = f"{self.open_tabs} tab{'s' if self.open_tabs != 1 else ''}"
        return (f"fcn-tui: {tabs} already open (at most {self.max_tabs}: each is an app of its own); "
                "close one, then reload this page")

    def full_page(self, why: str) -> web.Response:
        html = f"<!DOCTYPE html><html><head><title>{TITLE}</title></head><body><p>{escape_html(why)}</p></body></html>"
        return web.Response(status=503, text=html, content_type="text/html")

    @web.middleware
    async def guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Refuse requests from another site's page, and rebound host names on a loopback server."""
        why = refusal(request.host, request.headers.get("Origin"), loopback_only=is_loopback(self.host))
        if why:
            raise web.HTTPForbidden(text=f"fcn-tui: {why}\n")
        return await handler(request)

    async def on_shutdown(self, app: web.Application) -> None:
        """Hang up every app (each saves its run), then close every page's websocket."""
        await asyncio.gather(*(tab.stop() for tab in list(self.tabs)), return_exceptions=True)
        for websocket in list(self.tabs.values()):
            with contextlib.suppress(Exception):
                await websocket.close(code=WSCloseCode.GOING_AWAY, message=b"server stopped")

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        """The page (or, with every tab taken, a page saying so)."""
        if why := self.full():
            return self.full_page(why)
        return aiohttp_jinja2.render_template("page.html", request, self.page_context(request))

    def page_context(self, request: web.Request) -> dict[str, Any]:
        """The page's values, its URLs on the address the browser used (an SSH forward may change the port)."""
        origin = f"{request.scheme}://{request.host}"
        ws_origin = ("wss" if request.scheme == "https" else "ws") + origin[origin.index(":"):]
        return {
            "font_size": to_int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": ws_origin + str(request.app.router["websocket"].url_for()),
            "config": {"static": {"url": origin + "/static/"}},
            "application": {"name": self.title},
        }

    async def handle_websocket(self, request: web.Request) -> web.StreamResponse:
        """One tab: start its app, pass keys and resizes to it until the tab closes, then hang it up."""
        if why := self.full():
            return self.full_page(why)
        self.open_tabs += 1  # before any wait: two tabs at once cannot both take the last place
        try:
            return await self._tab(request)
        finally:
            self.open_tabs -= 1

    async def _tab(self, request: web.Request) -> web.WebSocketResponse:
        websocket = web.WebSocketResponse(heartbeat=15)
        width, height = terminal_size(to_int(request.query.get("width", "80"), 80),
                                      to_int(request.query.get("height", "24"), 24)) or (80, 24)
        tab: TabApp | None = None
        try:
            await websocket.prepare(request)
            tab = TabApp(
                self.argv,
                self.processes,
                write_bytes=websocket.send_bytes,
                write_str=websocket.send_str,
                close=websocket.close,
                download_manager=self.download_manager,
            )
            self.tabs[tab] = websocket
            await tab.start(width, height)
            await self._process_messages(websocket, tab)
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            if tab is not None:
                await tab.stop()
                self.tabs.pop(tab, None)
        return websocket

    async def _process_messages(self, websocket: web.WebSocketResponse, app_service: AppService) -> None:
        """textual-serve's loop over the page's messages; one that is not what the page sends is
        ignored, with one line on stderr for the first of each tab (no traceback)."""
        warned = False
        async for message in websocket:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                await self._handle_message(websocket, app_service, message.data)
            except (ValueError, TypeError, KeyError, IndexError, AttributeError, UnicodeError) as err:
                if not warned:
                    say(f"fcn-tui: ignored a malformed message from a tab ({type(err).__name__}); "
                        "further ones from that tab are ignored silently")
                    warned = True

    @staticmethod
    async def _handle_message(websocket: web.WebSocketResponse, app_service: AppService, text: str) -> None:
        envelope = json.loads(text)
        if not isinstance(envelope, list) or not envelope:
            raise ValueError("not a list")
        kind, data = envelope[0], envelope[1] if len(envelope) > 1 else None
        if kind == "stdin":
            if not isinstance(data, str):
                raise TypeError("stdin is not text")
            await app_service.send_bytes(data.encode("utf-8"))
        elif kind == "resize":
            if not isinstance(data, dict):
                raise TypeError("resize is not a table")
            await app_service.set_terminal_size(data["width"], data["height"])
        elif kind == "ping":
            await websocket.send_json(["pong", data])
        elif kind == "blur":
            await app_service.blur()
        elif kind == "focus":
            await app_service.focus()

    def kill_all(self) -> None:
        """SIGKILL every app's process group (last resort; synchronous, safe from a signal handler)."""
        for process in list(self.processes):
            _signal_group(process, KILL)

    def _request_exit(self, signum: int) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            self.kill_all()  # second Ctrl-C: leave now
            os._exit(128 + self.signum)
        if self.signum is None:
            self.signum = signum
            say(f"fcn-tui: {signal.Signals(signum).name}: stopping every app (runs in progress are saved "
                "as stopped; Ctrl-C again quits at once)")
            raise web.GracefulExit()

    def serve(self, debug: bool = False) -> int:
        """Serve until SIGINT/SIGTERM; returns 128 + that signal's number."""
        loop = asyncio.new_event_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # Windows: KeyboardInterrupt ends run_app
                loop.add_signal_handler(sig, self._request_exit, sig)
        try:
            web.run_app(self._make_app(), sock=self.sock, handle_signals=False, loop=loop, print=None,
                        access_log=None, shutdown_timeout=GRACE_S + 5)
        finally:
            self.kill_all()
            loop.close()
        return 128 + (self.signum or signal.SIGINT)


def say(line: str, file: Any = None) -> None:
    print(line, file=file or sys.stderr, flush=True)


def escape_html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class QuietEarlyClose(logging.Filter):
    """textual-serve logs "Application failed to start" when an app ends before its first screen,
    which is what a tab closed early does; an app that fails prints its own error after it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Application failed to start"


def serve(
    preset: Path | None,
    overrides: list[str],
    out: Path,
    data_dir: Path | None,
    host: str,
    port: int,
    allow_remote: bool,
    echo: Callable[[str], None] | None = None,
    max_tabs: int = MAX_TABS,
) -> int:
    """Check the host, listen, print how to reach the page, serve until a signal; the exit status."""
    check_host(host, allow_remote)
    sock = listen(host, port)
    port = sock.getsockname()[1]
    url = f"http://{url_host(host)}:{port}"
    echo = echo or (lambda line: say(line, sys.stdout))
    if not is_loopback(host):
        say(f"fcn-tui: warning: {remote_warning(host, port, out)}")
    echo(f"fcn-tui: serving the app at {url} (each browser tab gets its own app; Ctrl-C stops)")
    if is_loopback(host):
        echo(f"fcn-tui: from another machine: {ssh_hint(port)}, then open http://127.0.0.1:{port}")
    logging.getLogger("textual-serve").addFilter(QuietEarlyClose())
    server = AppServer(app_argv(preset, overrides, out, data_dir), sock, url, max_tabs)
    return server.serve()
