"""Kuzflow, the seed's `SimpleApp`: a PyQt5 main window that updates itself
with updraft. Started by `updraft run --dir INSTALL` (which exports
UPDRAFT_DIR and UPDRAFT_DATA_DIR), it confirms a healthy start, checks on
start-up and every `check_interval`, shows the update dialog, hands off on
"Install now" and quits; the updater switches and restarts it.

For tests and demos: KUZFLOW_AUTO_INSTALL=1 clicks "Install now" in the
dialog by itself, KUZFLOW_QUIT_WHEN_CURRENT=1 quits once a check finds
nothing newer. Every event is appended to $UPDRAFT_DATA_DIR/kuzflow.log.
"""

import os
import sys
import time
from pathlib import Path

from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import QAction, QApplication, QLabel, QMainWindow, QMessageBox

import updraft
from updraft.qt import QtUpdateManager, UpdateDialog

LOG = Path(os.environ.get("UPDRAFT_DATA_DIR", ".")) / "kuzflow.log"


def log(line: str) -> None:
    with LOG.open("a") as out:
        out.write(f"{time.time():.3f} {line}\n")


class SimpleApp(QMainWindow):
    def __init__(self, install_dir: str):
        super().__init__()
        self.update_manager = QtUpdateManager(install_dir, parent=self)
        status = self.update_manager.manager.status()
        self.version = status["current_version"]
        self.setWindowTitle(f"Kuzflow {self.version}")
        self.setCentralWidget(QLabel(f"Kuzflow {self.version}", self))
        if status["pending_confirm"]:
            self.update_manager.manager.confirm()  # this version started: keep it
            log(f"confirmed {self.version}")
        log(f"started {self.version} pid {os.getpid()}")

        help_menu = self.menuBar().addMenu("帮助 / Help")
        check = QAction("检查更新 / Check for updates", self)
        check.triggered.connect(self.update_manager.check_for_updates_async)
        help_menu.addAction(check)
        revert = QAction("回退到上一版本 / Revert to previous version", self)
        revert.triggered.connect(self.revert)
        help_menu.addAction(revert)

        self.update_manager.update_available.connect(self.on_update_available)
        self.update_manager.check_completed.connect(self.on_check_completed)
        self.update_manager.update_completed.connect(self.on_update_completed)
        self.update_manager.update_error.connect(lambda error: log(f"error {error.kind}: {error}"))

    def on_update_available(self, info: updraft.UpdateInfo) -> None:
        log(f"offered {info.version}")
        dialog = UpdateDialog(info, self)
        if os.environ.get("KUZFLOW_AUTO_INSTALL") == "1":
            QTimer.singleShot(0, dialog.install_button.click)
        dialog.exec_()
        log(f"choice {dialog.choice}")

    def on_check_completed(self, info) -> None:
        if info is None:
            log(f"up to date {self.version}")
            if os.environ.get("KUZFLOW_QUIT_WHEN_CURRENT") == "1":
                QApplication.quit()

    def on_update_completed(self, ok: bool) -> None:
        if ok:
            log("handed off; quitting")
            QApplication.quit()  # the updater switches once we are gone, then restarts us

    def revert(self) -> None:
        version = self.update_manager.manager.rollback()
        QMessageBox.information(self, "Kuzflow", f"Reverted to {version}; restart Kuzflow to use it.")


def main() -> int:
    app = QApplication(sys.argv)
    window = SimpleApp(os.environ.get("UPDRAFT_DIR") or sys.argv[1])
    window.show()
    return app.exec_()


if __name__ == "__main__":
    sys.exit(main())
