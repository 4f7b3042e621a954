"""`updraft.qt` offscreen with pytest-qt, over a real `updraft serve`: the
signals, every button of the real dialog, the progress widget, failures."""

import socket
import subprocess
import threading
import time

import pytest
from PyQt5.QtCore import Qt, QTimer

import updraft
from conftest import Server, Store, app_files, current_version, edit_config, free_port, make_install
from updraft.qt import ProgressWidget, QtUpdateManager, UpdateDialog


def manager_for(install, qtbot, **options) -> QtUpdateManager:
    options.setdefault("autostart", False)
    options.setdefault("handoff", False)
    options.setdefault("restart", False)
    manager = QtUpdateManager(install, **options)
    return manager


def test_check_for_updates_async_emits_update_available_on_the_gui_thread(install, qtbot):
    manager = manager_for(install, qtbot)
    threads = []
    manager.update_available.connect(lambda info: threads.append(threading.get_ident()))
    with qtbot.waitSignal(manager.update_available, timeout=10_000) as blocker:
        assert manager.check_for_updates_async()
    info = blocker.args[0]
    assert isinstance(info, updraft.UpdateInfo) and info.version == "1.1.0"
    assert threads == [threading.main_thread().ident]


def test_install_now_from_the_offer_signal_starts_while_the_check_thread_is_ending(install, qtbot):
    """The example's path ("Install now" clicked as the offer arrives) once raced
    the check's worker thread: a slot run before that thread had returned found
    the manager busy and the update never started. A direct connection runs the
    slot on the worker thread itself, inside its emit: the check must be over."""
    manager = manager_for(install, qtbot)
    started = []
    manager.update_available.connect(lambda info: started.append(manager.start_update(info)),
                                     Qt.DirectConnection)
    with qtbot.waitSignal(manager.update_completed, timeout=30_000) as blocker:
        assert manager.check_for_updates_async()
    assert started == [True]
    assert blocker.args == [True]
    assert current_version(install) == "1.1.0"


def test_check_for_updates_returns_the_offer_and_emits_it(install, qtbot):
    manager = manager_for(install, qtbot)
    with qtbot.waitSignal(manager.update_available, timeout=10_000):
        info = manager.check_for_updates()
    assert info.version == "1.1.0"


def test_startup_and_periodic_checks_follow_check_settings(install, qtbot):
    edit_config(install, check_settings={"check_on_startup": True, "auto_check": True, "check_interval": 60})
    manager = QtUpdateManager(install, handoff=False)
    seen = []
    manager.update_available.connect(lambda info: seen.append(info.version))
    qtbot.waitUntil(lambda: seen == ["1.1.0"], timeout=10_000)  # the start-up check
    timer = manager._timer
    assert timer.isActive() and 54_000 <= timer.interval() <= 66_000, "check_interval ±10 %"
    manager.wait(10)
    timer.start(10)  # let the interval pass
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=10_000)
    assert timer.isActive() and 54_000 <= timer.interval() <= 66_000, "re-armed"
    manager.stop_scheduled_checks()
    manager.wait(10)


def test_no_checks_when_check_settings_turn_them_off(install, qtbot):
    manager = QtUpdateManager(install, handoff=False)  # the fixture turned both off
    seen = []
    manager.update_available.connect(seen.append)
    qtbot.wait(300)
    assert seen == [] and not manager._timer.isActive() and not manager.busy


def test_the_dialog_shows_the_version_the_changelog_and_the_three_choices(install, qtbot):
    info = updraft.UpdateManager(install).check()
    dialog = UpdateDialog(info, language="en")
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.title_label.text() == "Version 1.1.0 is available"
    assert "Faster" in dialog.changelog.toPlainText()
    assert "**" not in dialog.changelog.toPlainText(), "Markdown is rendered, not shown"
    visible = [b.text() for b in (dialog.install_button, dialog.remind_button, dialog.skip_button,
                                  dialog.quit_button) if b.isVisible()]
    assert visible == ["Install now", "Remind me later", "Skip this version"]


def test_the_chinese_dialog(install, qtbot):
    edit_config(install, ui={"language": "zh-CN"})
    manager = manager_for(install, qtbot)
    dialog = UpdateDialog(manager.manager.check(), manager=manager)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.title_label.text() == "发现新版本 1.1.0"
    assert [dialog.install_button.text(), dialog.remind_button.text(), dialog.skip_button.text()] == \
        ["立即更新", "稍后提醒", "跳过此版本"]


def test_install_now_installs_with_progress_in_order_on_the_gui_thread(install, qtbot):
    manager = manager_for(install, qtbot)
    info = manager.manager.check()
    dialog = UpdateDialog(info, manager=manager, language="en")
    qtbot.addWidget(dialog)
    dialog.show()
    progress = []
    manager.update_progress.connect(lambda event: progress.append((threading.get_ident(), event)))
    with qtbot.waitSignal(manager.update_completed, timeout=30_000) as blocker:
        qtbot.mouseClick(dialog.install_button, Qt.LeftButton)
        assert not dialog.install_button.isEnabled(), "no second click while it runs"
    assert blocker.args == [True]
    assert current_version(install) == "1.1.0"
    # The dialog's own slot for the same (queued) signal may run just after the test's.
    qtbot.waitUntil(lambda: dialog.choice == "installed", timeout=5_000)
    assert dialog.result() == dialog.Accepted
    assert {thread for thread, _ in progress} == {threading.main_thread().ident}
    fractions = [event.overall_fraction for _, event in progress]
    assert len(fractions) >= 3 and fractions == sorted(fractions)
    assert progress[0][1].phase == "downloading"
    assert dialog.progress.overall_bar.value() == progress[-1][1].overall_percent


def test_remind_me_later_postpones_the_offer(install, qtbot):
    manager = manager_for(install, qtbot)
    dialog = UpdateDialog(manager.manager.check(), manager=manager)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.mouseClick(dialog.remind_button, Qt.LeftButton)
    assert dialog.choice == "remind_later" and dialog.result() == dialog.Rejected
    assert manager.manager.check() is None
    assert current_version(install) == "1.0.0"


def test_skip_this_version_skips_it(install, qtbot):
    manager = manager_for(install, qtbot)
    dialog = UpdateDialog(manager.manager.check(), manager=manager)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.mouseClick(dialog.skip_button, Qt.LeftButton)
    assert dialog.choice == "skipped"
    assert manager.manager.status()["skipped"] == ["1.1.0"]
    assert manager.manager.check() is None


@pytest.fixture(scope="module")
def forced(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("forced"), force=True)
    server = Server(store.path)
    yield store, server
    server.stop()


def test_a_forced_update_offers_only_install_and_quit(forced, tmp_path, qtbot):
    store, server = forced
    install = make_install(server, store, tmp_path / "install")
    manager = manager_for(install, qtbot)
    info = manager.manager.check()
    assert info.force_update is True
    dialog = UpdateDialog(info, manager=manager, language="zh-CN")
    qtbot.addWidget(dialog)
    dialog.show()
    visible = [b.text() for b in (dialog.install_button, dialog.remind_button, dialog.skip_button,
                                  dialog.quit_button) if b.isVisible()]
    assert visible == ["立即更新", "退出"]
    assert dialog.forced_label.isVisible()
    qtbot.mouseClick(dialog.quit_button, Qt.LeftButton)
    assert dialog.choice == "quit"
    assert current_version(install) == "1.0.0"


def test_a_tampered_package_fails_in_the_dialog_and_leaves_the_install_unchanged(install, copy_store, qtbot):
    damaged = copy_store()
    for package in damaged.packages("1.1.0"):
        data = bytearray(package.read_bytes())
        data[len(data) // 3] ^= 0x55
        package.write_bytes(bytes(data))
    server = Server(damaged.path)
    try:
        edit_config(install, update_server={"base_url": server.url})
        before = app_files(install)
        manager = manager_for(install, qtbot)
        dialog = UpdateDialog(manager.manager.check(), manager=manager, language="en")
        qtbot.addWidget(dialog)
        dialog.show()
        with qtbot.waitSignal(manager.update_error, timeout=30_000) as blocker:
            qtbot.mouseClick(dialog.install_button, Qt.LeftButton)
        assert isinstance(blocker.args[0], updraft.VerificationError)
        qtbot.waitUntil(lambda: dialog.choice == "failed", timeout=5_000)
        assert dialog.message_label.text().startswith("The update failed:")
        assert dialog.install_button.isEnabled(), "the user may try again"
        assert app_files(install) == before
    finally:
        server.stop()


def test_a_server_that_is_down_emits_download_error_naming_it(install, qtbot):
    port = free_port()
    edit_config(install, update_server={"base_url": f"http://127.0.0.1:{port}"})
    manager = manager_for(install, qtbot)
    with qtbot.waitSignal(manager.update_error, timeout=20_000) as blocker:
        manager.check_for_updates_async()
    error = blocker.args[0]
    assert isinstance(error, updraft.DownloadError)
    assert f"http://127.0.0.1:{port}" in str(error)


def test_a_hanging_server_does_not_freeze_the_event_loop(install, qtbot):
    silent = socket.socket()  # accepts connections, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    edit_config(install, update_server={"base_url": f"http://127.0.0.1:{silent.getsockname()[1]}", "timeout": 2})
    manager = manager_for(install, qtbot)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(20)
    try:
        started = time.monotonic()
        with qtbot.waitSignal(manager.update_error, timeout=20_000) as blocker:
            manager.check_for_updates_async()
        waited = time.monotonic() - started
    finally:
        timer.stop()
        silent.close()
    assert isinstance(blocker.args[0], updraft.DownloadError)
    assert waited >= 1.5
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert len(ticks) >= waited / 0.02 * 0.5 and max(gaps) < 0.5, "the GUI thread kept running"


def test_install_now_in_a_running_app_hands_off_and_the_updater_switches_after_it_exits(install, qtbot):
    app = subprocess.Popen(["sleep", "60"])  # stands in for the running app
    try:
        manager = manager_for(install, qtbot, handoff=True, wait_pid=app.pid)
        dialog = UpdateDialog(manager.manager.check(), manager=manager, language="en")
        qtbot.addWidget(dialog)
        dialog.show()
        with qtbot.waitSignal(manager.update_completed, timeout=30_000) as blocker:
            qtbot.mouseClick(dialog.install_button, Qt.LeftButton)
        assert blocker.args == [True]
        assert dialog.message_label.text().startswith("The update is ready")
        assert current_version(install) == "1.0.0", "nothing switches while the app runs"
        assert manager.manager.status()["prepared"] == "1.1.0"
    finally:
        app.kill()
        app.wait()
    qtbot.waitUntil(lambda: current_version(install) == "1.1.0", timeout=20_000)


def test_the_progress_widget_has_the_seed_slot(qtbot):
    widget = ProgressWidget(language="en")
    qtbot.addWidget(widget)
    widget.update_progress(40, 80, "Downloading and verifying…", "1.2 MB of 3.0 MB")
    assert (widget.overall_bar.value(), widget.current_bar.value()) == (40, 80)
    assert widget.status_label.text() == "Downloading and verifying…"
    assert widget.detail_label.text() == "1.2 MB of 3.0 MB"
