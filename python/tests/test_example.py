"""End to end, all real processes: the PyQt5 example (python/examples/kuzflow-pyqt5)
published as 1.0.0 and 1.1.0, installed at 1.0.0 by `updraft install`, started
by `updraft run`; it finds 1.1.0, "Install now" is clicked in its dialog, it
hands off and exits; the updater switches and restarts it; 1.1.0 confirms."""

import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from conftest import APP, REPO, Server, edit_config, run, updraft_bin

EXAMPLE = REPO / "python" / "examples" / "kuzflow-pyqt5"


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_pyqt5_example_updates_itself_through_the_updater(tmp_path):
    keys, store = tmp_path / "keys", tmp_path / "store"
    run("keygen", "--out", str(keys))
    run("repo", "init", "--repo", str(store), "--keys", str(keys))
    for version in ("1.0.0", "1.1.0"):
        source = tmp_path / f"src-{version}"
        shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("__pycache__"))
        (source / "VERSION").write_text(version)
        run("publish", "--repo", str(store), "--keys", str(keys), "--app", APP, "--version", version,
            "--platform", sys.platform, "--arch", platform.machine(), "--main", "bin/kuzflow", str(source))
    server = Server(store)
    install = tmp_path / "install"
    try:
        run("install", "--server", server.url, "--app", APP, "--version", "1.0.0", "--dir", str(install),
            "--trusted-root", str(store / "metadata" / "1.root.json"))
        edit_config(install, check_settings={"check_on_startup": True, "auto_check": False})
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", KUZFLOW_AUTO_INSTALL="1",
                   KUZFLOW_QUIT_WHEN_CURRENT="1", PYTHON=sys.executable)
        first = subprocess.run([updraft_bin(), "run", "--dir", str(install)], env=env,
                               capture_output=True, text=True, timeout=120)
        assert first.returncode == 0, first.stderr
        log_path = install / "data" / "kuzflow.log"
        log = lambda: log_path.read_text() if log_path.exists() else ""
        wait_for(lambda: "up to date 1.1.0" in log(), 60, f"1.1.0 to start and check; log: {log()}")
        lines = [line.split(" ", 1)[1] for line in log().splitlines()]
        assert lines[0].startswith("started 1.0.0")
        assert "offered 1.1.0" in lines and "handed off; quitting" in lines
        assert "confirmed 1.1.0" in lines, lines
        assert os.readlink(install / "current") == "versions/1.1.0"
        assert (install / "current" / "VERSION").read_text() == "1.1.0"
        status = subprocess.run([updraft_bin(), "status", "--dir", str(install), "--json"],
                                capture_output=True, text=True, check=True).stdout
        assert '"pending_confirm":false' in status.replace(" ", ""), status
        pids = {line.split()[-1] for line in lines if line.startswith("started")}
        assert len(pids) == 2, "the new version is a new process"
    finally:
        server.stop()
