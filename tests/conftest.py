"""Shared fixtures: small synthetic Fashion-MNIST-shaped IDX files written by the real writer
(`tests.helpers.make_synthetic_dataset`), a tiny preset, a throw-away PostgreSQL server.

The synthetic classes are learnable (each class lights a different band of the image), so a
tiny MLP reaches high accuracy in one or two epochs, and tests can assert on real outcomes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings

from tests.helpers import TINY_PRESET, make_synthetic_dataset

# Property tests: in CI the same examples every run (derandomized, no example database), so a red
# build is reproducible and never a coin toss; locally random search with the database, which
# keeps finding new cases. HYPOTHESIS_PROFILE picks one explicitly.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))

# Tests train tiny models, for which one thread is fastest and keeps runs reproducible
# whatever else the machine is doing.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory) -> Path:
    """A folder with four small synthetic IDX files (.gz): 600 train, 200 test images."""
    return make_synthetic_dataset(tmp_path_factory.mktemp("fashion"))


@pytest.fixture
def tiny_preset(tmp_path) -> Path:
    """A fast preset: one hidden layer of 32, Adam, 2 epochs on the CPU."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_PRESET)
    return path


@pytest.fixture(autouse=True)
def _no_real_data_by_default(monkeypatch, request):
    """Unit tests never reach the real dataset or the network unless marked `realdata`."""
    if "realdata" not in request.keywords:
        monkeypatch.delenv("FCN_TUI_DATA", raising=False)
        monkeypatch.setenv("XDG_CACHE_HOME", str(request.getfixturevalue("tmp_path") / "cache"))
        # no connection test to the mirror: tests that reach the download fake torchvision or urllib
        monkeypatch.setattr("fcn_tui.data.unreachable", lambda *args, **kwargs: None)


@pytest.fixture(autouse=True)
def _idle_cpu(monkeypatch):
    """The machine's load never changes a test's thread count or output (`fcn_tui.cpu`); the
    tests of that choice set the load they want."""
    monkeypatch.setattr("fcn_tui.cpu.busy_cores", lambda *args, **kwargs: 0.0)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the same for the processes tests start (the suite loads the CPU)


# --- a throw-away PostgreSQL server for the study tests ----------------------------------------


_POSTGRES: dict = {}  # the session's server: `stop()` and `start()`


@pytest.fixture
def postgres_server(postgres_url):
    """`stop()` (`pg_ctl -m fast stop`) and `start()` of the session's PostgreSQL server; started
    again after the test whatever happened."""
    from types import SimpleNamespace

    yield SimpleNamespace(stop=_POSTGRES["stop"], start=_POSTGRES["start"])
    import subprocess

    try:
        _POSTGRES["start"]()
    except subprocess.CalledProcessError:  # it was running
        pass


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    """A PostgreSQL 15 server of its own (Debian's `postgresql`): a fresh cluster in a temporary
    folder owned by the `postgres` user (the server refuses to run as root), on a free local port,
    stopped and removed after the session. Where the server is not installed the tests that use it
    are skipped, except in CI (`CI` set), where that is a failure."""
    import os
    import shutil
    import subprocess
    import tempfile

    try:
        bindir = Path(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        bindir = Path("/nonexistent")
    if not (bindir / "initdb").exists():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed (pg_config --bindir has no initdb); CI must install it")
        pytest.skip("PostgreSQL server not installed")
    base = Path(tempfile.mkdtemp(prefix="fcn-tui-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        import pwd

        user = pwd.getpwnam("postgres")
        os.chown(base, user.pw_uid, user.pw_gid)
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data, log = base / "data", base / "server.log"
    port = _free_port()

    def pg(*args: str) -> None:
        subprocess.run([*as_postgres, *args], check=True, capture_output=True, timeout=120)

    pg(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync")
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    pg(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start")

    def stop() -> None:  # as an administrator stops it for a restart: every session cut
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")

    def start() -> None:
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start")

    _POSTGRES.update(stop=stop, start=start)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], check=False,
                       capture_output=True, timeout=120)
        shutil.rmtree(base, ignore_errors=True)
