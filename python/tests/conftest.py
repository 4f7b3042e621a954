"""Fixtures: real stores made with the `updraft` binary, a real `updraft serve`
on 127.0.0.1, and installs of 1.0.0 made by `updraft install`."""

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[2]
APP = "kuzflow"
NOTES_1_1 = "## What's new\n\n- **Faster** sync\n- Fixed the *login* crash\n"


def updraft_bin() -> str:
    binary = os.environ.get("UPDRAFT_BIN") or str(REPO / "target" / "debug" / "updraft")
    if not Path(binary).is_file():
        pytest.exit(f"the updraft binary is missing at `{binary}`: run `cargo build -p updraft-cli` or set UPDRAFT_BIN")
    return binary


def run(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([updraft_bin(), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"updraft {' '.join(args)} failed: {done.stderr}"
    return done


def write_app(source: Path, version: str, noise: int) -> None:
    (source / "bin").mkdir(parents=True)
    app = source / "bin" / "app"
    app.write_text(f"#!/bin/sh\necho app {version}\n")
    app.chmod(0o755)
    (source / "share").mkdir()
    # Incompressible bytes, so the download takes several progress events.
    (source / "share" / "data.bin").write_bytes(os.urandom(noise))


class Store:
    """A signed store with 1.0.0 and 1.1.0 (or a forced 1.1.0) of `kuzflow`."""

    def __init__(self, root: Path, force: bool = False):
        self.root = root
        self.keys = root / "keys"
        self.path = root / "store"
        run("keygen", "--out", str(self.keys))
        run("repo", "init", "--repo", str(self.path), "--keys", str(self.keys))
        notes = root / "notes.md"
        notes.write_text(NOTES_1_1)
        for version, noise in (("1.0.0", 10_000), ("1.1.0", 3_000_000)):
            source = root / f"src-{version}"
            write_app(source, version, noise)
            extra = ["--notes", str(notes)] if version == "1.1.0" else []
            if force and version == "1.1.0":
                extra.append("--force")
            run("publish", "--repo", str(self.path), "--keys", str(self.keys), "--app", APP,
                "--version", version, "--platform", sys.platform, "--arch", platform.machine(),
                "--main", "bin/app", *extra, str(source))

    def packages(self, version: str) -> list:
        """The package under its readable name and its hash-prefixed (TUF) name."""
        found = [p for p in (self.path / "releases" / f"v{version}").iterdir() if "_full." in p.name]
        assert found
        return found


class Server:
    """`updraft serve` on an ephemeral loopback port."""

    def __init__(self, store: Path):
        self.process = subprocess.Popen(
            [updraft_bin(), "serve", "--repo", str(store), "--listen", "127.0.0.1:0"],
            stderr=subprocess.PIPE, text=True,
        )
        line = self.process.stderr.readline()
        prefix = "updraft serving on "
        assert line.startswith(prefix), line
        self.url = line[len(prefix):].split()[0]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Store:
    return Store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="session")
def server(store):
    server = Server(store.path)
    yield server
    server.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def edit_config(install: Path, **sections) -> None:
    config_path = install / "update_config.json"
    config = json.loads(config_path.read_text())
    for section, values in sections.items():
        if isinstance(values, dict):
            config.setdefault(section, {}).update(values)
        else:
            config[section] = values
    config_path.write_text(json.dumps(config, indent=2))


def make_install(server: Server, store: Store, install: Path) -> Path:
    run("install", "--server", server.url, "--app", APP, "--version", "1.0.0", "--dir", str(install),
        "--trusted-root", str(store.path / "metadata" / "1.root.json"))
    # Fast failures, no background checks unless a test asks for them.
    edit_config(install,
                download_settings={"retry_count": 1, "stall_timeout": 1},
                check_settings={"check_on_startup": False, "auto_check": False},
                update_server={"timeout": 5})
    return install


@pytest.fixture
def install(server, store, tmp_path) -> Path:
    return make_install(server, store, tmp_path / "install")


def current_version(install: Path) -> str:
    return os.readlink(install / "current").split("/")[-1]


def app_files(install: Path) -> dict:
    """The app's files and which version is current (updraft's own state aside)."""
    snapshot = {"current": os.readlink(install / "current")}
    for path in sorted((install / "versions").rglob("*")):
        if path.is_file() and not path.is_symlink():
            snapshot[str(path.relative_to(install))] = path.read_bytes()
    return snapshot


@pytest.fixture
def copy_store(store, tmp_path):
    """A copy of the session store, to damage."""
    def make() -> Store:
        copy = tmp_path / "copy"
        shutil.copytree(store.root, copy, symlinks=True)
        clone = Store.__new__(Store)
        clone.root, clone.keys, clone.path = copy, copy / "keys", copy / "store"
        return clone
    return make
