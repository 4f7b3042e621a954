"""PyQt5 integration: the seed's ``UpdateManager`` signals, the update dialog
and the progress widget, over :class:`updraft.UpdateManager`.

Nothing here decides anything about an update: checks, downloads,
verification, installs and hand-offs are the Rust workflow's. Work runs on a
worker thread (the native calls release the GIL); signals are delivered on
the GUI thread.

>>> manager = QtUpdateManager("/opt/kuzflow", parent=window)       # doctest: +SKIP
>>> manager.update_available.connect(lambda info: UpdateDialog(info, window, manager=manager).exec_())  # doctest: +SKIP
"""

import random
import sys
import threading
from typing import Callable, Dict, Optional

from PyQt5.QtCore import QLocale, QObject, QTimer, pyqtSignal
from PyQt5.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

import updraft

__all__ = ["QtUpdateManager", "UpdateDialog", "ProgressWidget", "language_of", "TEXTS"]

TEXTS: Dict[str, Dict[str, str]] = {
    "en": {
        "window_title": "Software update",
        "available": "Version {version} is available",
        "summary": "You have {current}. Download size: {size}.",
        "forced": "This update is required to keep using the app.",
        "whats_new": "What's new",
        "install": "Install now",
        "remind": "Remind me later",
        "skip": "Skip this version",
        "quit": "Quit",
        "downloading": "Downloading and verifying…",
        "installing": "Installing…",
        "waiting": "Waiting for the app to close…",
        "switching": "Switching to the new version…",
        "restarting": "Restarting…",
        "done": "Update installed.",
        "ready": "The update is ready: the app restarts on {version} when it closes.",
        "failed": "The update failed: {error}",
        "of": "{done} of {total}",
        "left": "{seconds} left",
        "overall": "Overall",
        "current": "Current step",
    },
    "zh-CN": {
        "window_title": "软件更新",
        "available": "发现新版本 {version}",
        "summary": "当前版本 {current}，下载大小 {size}。",
        "forced": "必须安装此更新才能继续使用。",
        "whats_new": "更新内容",
        "install": "立即更新",
        "remind": "稍后提醒",
        "skip": "跳过此版本",
        "quit": "退出",
        "downloading": "正在下载并校验…",
        "installing": "正在安装…",
        "waiting": "正在等待应用退出…",
        "switching": "正在切换到新版本…",
        "restarting": "正在重新启动…",
        "done": "更新已安装。",
        "ready": "更新已就绪：应用关闭后将以 {version} 重新启动。",
        "failed": "更新失败：{error}",
        "of": "{done} / {total}",
        "left": "剩余 {seconds}",
        "overall": "总进度",
        "current": "当前步骤",
    },
}


def language_of(setting: Optional[str]) -> str:
    """``ui.language`` as a key of :data:`TEXTS`: ``auto`` follows the system locale."""
    if setting in TEXTS:
        return setting
    if setting in (None, "", "auto"):
        return "zh-CN" if QLocale.system().name().lower().startswith("zh") else "en"
    return "zh-CN" if setting.lower().startswith("zh") else "en"


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


def human_seconds(seconds: float, language: str) -> str:
    seconds = max(0, round(seconds))
    minutes, rest = divmod(seconds, 60)
    if language == "zh-CN":
        return f"{minutes} 分 {rest} 秒" if minutes else f"{rest} 秒"
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


class QtUpdateManager(QObject):
    """The seed's update manager as a QObject, over :class:`updraft.UpdateManager`.

    Signals (always delivered on the GUI thread):

    - ``update_available(object)``: an :class:`updraft.UpdateInfo`.
    - ``check_completed(object)``: the check's answer, an ``UpdateInfo`` or ``None``.
    - ``update_progress(object)``: an :class:`updraft.ProgressInfo`, in order.
    - ``update_completed(bool)``: the update ended, successfully or not.
    - ``update_error(object)``: an :class:`updraft.UpdateError` (``DownloadError``, ...).

    With ``autostart`` the checks of ``check_settings`` run: one on start-up
    (``check_on_startup``) and one every ``check_interval`` seconds ±10 %
    (``auto_check``). ``handoff=True`` (for the app being updated) makes
    :meth:`start_update` hand off to the updater, which switches once this
    process (or ``wait_pid``) has exited; ``handoff=False`` installs at once.
    """

    update_available = pyqtSignal(object)
    check_completed = pyqtSignal(object)
    update_progress = pyqtSignal(object)
    update_completed = pyqtSignal(bool)
    update_error = pyqtSignal(object)

    def __init__(self, install_dir, parent: Optional[QObject] = None, autostart: bool = True,
                 handoff: bool = True, restart: bool = True, wait_pid: Optional[int] = None):
        super().__init__(parent)
        self.manager = updraft.UpdateManager(install_dir)
        self.handoff = handoff
        self.restart = restart
        self.wait_pid = wait_pid
        self.language = language_of(self.manager.config.get("ui", {}).get("language"))
        self._worker: Optional[threading.Thread] = None
        # Set while a call runs; cleared before its last signals are emitted, so a
        # slot of those signals (e.g. "Install now" clicked from update_available)
        # can start the next call at once.
        self._running = False
        self._running_lock = threading.Lock()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._periodic_check)
        if autostart:
            self.start_scheduled_checks()

    # Scheduling -----------------------------------------------------------

    def start_scheduled_checks(self) -> None:
        """Starts the start-up and periodic checks ``check_settings`` asks for."""
        settings = self.manager.config.get("check_settings", {})
        if settings.get("check_on_startup", True):
            QTimer.singleShot(0, self.check_for_updates_async)
        self._arm_timer()

    def stop_scheduled_checks(self) -> None:
        self._timer.stop()

    def _arm_timer(self) -> None:
        settings = self.manager.config.get("check_settings", {})
        if not settings.get("auto_check", True):
            return
        seconds = float(settings.get("check_interval", 86400)) * random.uniform(0.9, 1.1)
        # QTimer takes a signed 32-bit count of milliseconds (about 24 days).
        self._timer.start(int(min(max(seconds, 1.0) * 1000, 2**31 - 1)))

    def _periodic_check(self) -> None:
        self.check_for_updates_async()
        self._arm_timer()

    # Calls ----------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A check or update is running on the worker thread."""
        return self._running

    def check_for_updates(self) -> Optional["updraft.UpdateInfo"]:
        """Checks now, on the calling thread; emits ``update_available`` for an offer."""
        info = self.manager.check()
        self.check_completed.emit(info)
        if info is not None:
            self.update_available.emit(info)
        return info

    def check_for_updates_async(self) -> bool:
        """Checks on the worker thread; returns False if a call is already running."""
        return self._start(self._check_work)

    def start_update(self, info: "updraft.UpdateInfo") -> bool:
        """Downloads, verifies and installs ``info`` on the worker thread (hand-off or
        install now, as the manager was built), emitting ``update_progress``, then
        ``update_completed``. Returns False if a call is already running."""
        return self._start(lambda: self._update_work(info))

    def download_update(self, info: "updraft.UpdateInfo") -> bool:
        """Only downloads, verifies and prepares ``info``; ``start_update`` later switches."""
        return self._start(lambda: self._update_work(info, prepare_only=True))

    def cancel(self) -> None:
        """Stops the running check or download (it ends with ``UpdateCancelled``)."""
        self.manager.cancel()

    def wait(self, timeout: Optional[float] = None) -> None:
        """Waits for the worker thread (for tests and shutdown)."""
        if self._worker is not None:
            self._worker.join(timeout)

    def _start(self, work: Callable[[], list]) -> bool:
        with self._running_lock:
            if self._running:
                return False
            self._running = True

        def run() -> None:
            outcome: list = []
            try:
                outcome = work()
            finally:
                with self._running_lock:
                    self._running = False
            # Emitted once the call is over: a slot may start the next one.
            for signal, value in outcome:
                signal.emit(value)

        self._worker = threading.Thread(target=run, name="updraft-qt", daemon=True)
        self._worker.start()
        return True

    # Worker thread: emitting from it queues the signals to the GUI thread.
    # Each returns the signals that end it, for `_start` to emit.

    def _check_work(self) -> list:
        try:
            info = self.manager.check()
        except updraft.UpdateError as error:
            return [(self.update_error, error)]
        outcome = [(self.check_completed, info)]
        if info is not None:
            outcome.append((self.update_available, info))
        return outcome

    def _update_work(self, info, prepare_only: bool = False) -> list:
        progress = self.update_progress.emit
        try:
            if prepare_only:
                self.manager.download(info, progress=progress)
            elif self.handoff:
                self.manager.install_on_exit(info, restart=self.restart, args=sys.argv[1:],
                                             wait_pid=self.wait_pid, progress=progress)
            else:
                self.manager.install(info, progress=progress, restart=sys.argv[1:] if self.restart else None)
        except updraft.UpdateError as error:
            return [(self.update_error, error), (self.update_completed, False)]
        return [(self.update_completed, True)]


class ProgressWidget(QWidget):
    """The seed's progress widget: a status label, the overall bar, the current
    step's bar and a detail label (bytes, rate, time left)."""

    def __init__(self, parent: Optional[QWidget] = None, language: str = "en"):
        super().__init__(parent)
        self.language = language_of(language)
        self.texts = TEXTS[self.language]
        self.status_label = QLabel("", self)
        self.status_label.setObjectName("status")
        font = self.status_label.font()
        font.setBold(True)
        self.status_label.setFont(font)
        self.overall_bar = QProgressBar(self)
        self.overall_bar.setObjectName("overall")
        self.overall_bar.setFormat(self.texts["overall"] + "  %p%")
        self.current_bar = QProgressBar(self)
        self.current_bar.setObjectName("current")
        self.current_bar.setFormat(self.texts["current"] + "  %p%")
        self.detail_label = QLabel("", self)
        self.detail_label.setObjectName("detail")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.status_label, self.overall_bar, self.current_bar, self.detail_label):
            layout.addWidget(widget)

    def update_progress(self, overall: int, current: int, status: str, detail: str) -> None:
        """The seed's slot: percentages and the two labels."""
        self.overall_bar.setValue(int(overall))
        self.current_bar.setValue(int(current))
        self.status_label.setText(status)
        self.detail_label.setText(detail)

    def set_progress(self, info: "updraft.ProgressInfo") -> None:
        """Renders one :class:`updraft.ProgressInfo` (connect ``update_progress`` here)."""
        status = self.texts.get(info.phase, info.phase)
        detail = ""
        if info.phase == "downloading" and info.total:
            parts = [self.texts["of"].format(done=human_bytes(info.downloaded), total=human_bytes(info.total))]
            if info.rate > 0:
                parts.append(f"{human_bytes(info.rate)}/s")
            if info.eta_seconds is not None:
                parts.append(self.texts["left"].format(seconds=human_seconds(info.eta_seconds, self.language)))
            detail = " · ".join(parts)
        self.update_progress(info.overall_percent, info.current_percent, status, detail)


class UpdateDialog(QDialog):
    """"Version {v} is available": the changelog (Markdown), a progress widget and
    the choices Install now / Remind me later / Skip this version; a forced update
    offers only Install now and Quit.

    With ``manager`` (a :class:`QtUpdateManager`, or found as ``parent.update_manager``)
    the buttons act: Install now runs :meth:`QtUpdateManager.start_update` and
    shows its progress, Remind me later and Skip this version record the choice.
    ``choice`` says what the user chose: ``installed``, ``remind_later``,
    ``skipped``, ``quit``, ``failed`` or ``closed``.
    """

    def __init__(self, info: "updraft.UpdateInfo", parent: Optional[QWidget] = None,
                 manager: Optional[QtUpdateManager] = None, language: Optional[str] = None):
        super().__init__(parent)
        if manager is None and isinstance(getattr(parent, "update_manager", None), QtUpdateManager):
            manager = parent.update_manager
        self.info = info
        self.manager = manager
        self.choice = "closed"
        self.error: Optional[Exception] = None
        if language is None:
            language = manager.language if manager is not None else "auto"
        self.language = language_of(language)
        texts = self.texts = TEXTS[self.language]

        self.setWindowTitle(texts["window_title"])
        self.setMinimumWidth(460)
        self.title_label = QLabel(texts["available"].format(version=info.version), self)
        self.title_label.setObjectName("title")
        font = self.title_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.35)
        font.setBold(True)
        self.title_label.setFont(font)
        self.summary_label = QLabel(texts["summary"].format(current=info.current_version,
                                                            size=human_bytes(info.file_size)), self)
        self.forced_label = QLabel(texts["forced"], self)
        self.forced_label.setVisible(bool(info.force_update))
        self.forced_label.setStyleSheet("color: #b3261e; font-weight: bold;")
        self.notes_label = QLabel(texts["whats_new"], self)
        self.changelog = QTextBrowser(self)
        self.changelog.setObjectName("changelog")
        self.changelog.setOpenExternalLinks(True)
        self.changelog.setMarkdown(self._notes_markdown())
        self.changelog.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.progress = ProgressWidget(self, self.language)
        self.progress.setVisible(False)
        self.message_label = QLabel("", self)
        self.message_label.setWordWrap(True)
        self.message_label.setVisible(False)

        self.install_button = QPushButton(texts["install"], self)
        self.install_button.setDefault(True)
        self.remind_button = QPushButton(texts["remind"], self)
        self.skip_button = QPushButton(texts["skip"], self)
        self.quit_button = QPushButton(texts["quit"], self)
        forced = bool(info.force_update)
        self.remind_button.setVisible(not forced)
        self.skip_button.setVisible(not forced)
        self.quit_button.setVisible(forced)
        self.install_button.clicked.connect(self._install)
        self.remind_button.clicked.connect(self._remind_later)
        self.skip_button.clicked.connect(self._skip)
        self.quit_button.clicked.connect(self._quit)

        buttons = QHBoxLayout()
        buttons.addWidget(self.skip_button)
        buttons.addStretch(1)
        buttons.addWidget(self.quit_button)
        buttons.addWidget(self.remind_button)
        buttons.addWidget(self.install_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title_label)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.forced_label)
        layout.addSpacing(6)
        layout.addWidget(self.notes_label)
        layout.addWidget(self.changelog, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.message_label)
        layout.addLayout(buttons)
        self.resize(520, 420)

    def _notes_markdown(self) -> str:
        notes = self.info.changelogs
        if len(notes) <= 1:
            return self.info.changelog
        return "\n\n".join(f"### {version}\n\n{text}" for version, text in notes)

    def _buttons_enabled(self, enabled: bool) -> None:
        for button in (self.install_button, self.remind_button, self.skip_button, self.quit_button):
            button.setEnabled(enabled)

    def _install(self) -> None:
        if self.manager is None:
            self.choice = "installed"
            self.accept()
            return
        self._buttons_enabled(False)
        self.progress.setVisible(True)
        self.message_label.setVisible(False)
        self.manager.update_progress.connect(self.progress.set_progress)
        self.manager.update_error.connect(self._failed)
        self.manager.update_completed.connect(self._completed)
        if not self.manager.start_update(self.info):
            self._disconnect()
            self._buttons_enabled(True)

    def _disconnect(self) -> None:
        for signal, slot in ((self.manager.update_progress, self.progress.set_progress),
                             (self.manager.update_error, self._failed),
                             (self.manager.update_completed, self._completed)):
            try:
                signal.disconnect(slot)
            except TypeError:
                pass

    def _failed(self, error: Exception) -> None:
        self.error = error
        self.message_label.setText(self.texts["failed"].format(error=error))
        self.message_label.setVisible(True)

    def _completed(self, ok: bool) -> None:
        self._disconnect()
        if ok:
            self.choice = "installed"
            key = "ready" if self.manager.handoff else "done"
            self.message_label.setText(self.texts[key].format(version=self.info.version))
            self.message_label.setVisible(True)
            self.accept()
        else:
            self.choice = "failed"
            self._buttons_enabled(True)

    def _remind_later(self) -> None:
        if self.manager is not None:
            self.manager.manager.remind_later(self.info)
        self.choice = "remind_later"
        self.reject()

    def _skip(self) -> None:
        if self.manager is not None:
            self.manager.manager.skip(self.info)
        self.choice = "skipped"
        self.reject()

    def _quit(self) -> None:
        self.choice = "quit"
        self.reject()

    def reject(self) -> None:
        # A forced update cannot be dismissed into the old version: closing is quitting.
        if self.info.force_update and self.choice == "closed":
            self.choice = "quit"
        if self.manager is not None and self.manager.busy:
            return  # an install in progress finishes first
        super().reject()
