"""`updraft.UpdateManager` over a real `updraft serve`: the whole workflow,
choices, failures mapped to the seed's exceptions, the GIL and cancelling."""

import socket
import threading
import time

import pytest

import updraft
from conftest import NOTES_1_1, Server, app_files, current_version, edit_config, free_port


def test_check_finds_the_new_version_with_the_check_api_fields(install):
    info = updraft.UpdateManager(install).check()
    assert info is not None
    assert (info.version, info.current_version, info.update_type) == ("1.1.0", "1.0.0", "minor")
    assert info.force_update is False
    assert info.file_size > 3_000_000
    assert info.changelog.strip() == NOTES_1_1.strip()
    assert info.release_date[:2] == "20"
    assert info.to_dict()["latest_version"] == "1.1.0"


def test_download_reports_progress_in_order_then_install_switches_and_confirm_rollback_work(install):
    manager = updraft.UpdateManager(install)
    info = manager.check()
    events = []
    result = manager.download(info, progress=events.append)
    assert result["updated"] is True and result["switched"] is False
    assert current_version(install) == "1.0.0", "download only prepares"
    assert manager.status()["prepared"] == "1.1.0"
    assert len(events) >= 3, events
    fractions = [event.overall_fraction for event in events]
    assert fractions == sorted(fractions), "overall progress never goes back"
    assert events[0].phase == "downloading" and events[-1].phase == "installing"
    downloading = [e for e in events if e.phase == "downloading"]
    assert downloading[-1].downloaded == downloading[-1].total == info.file_size
    assert downloading[-1].current_percent == 100
    assert downloading[0].status == "Downloading and verifying"
    assert " of 3.0 MB" in downloading[-1].detail or " of 3.1 MB" in downloading[-1].detail
    assert events[-1].detail == "" and events[-1].status == "Installing"

    result = manager.install(info)
    assert result["switched"] is True and result["version"] == "1.1.0"
    assert current_version(install) == "1.1.0"
    status = manager.status()
    assert status["current_version"] == "1.1.0" and status["pending_confirm"] is True
    manager.confirm()
    assert manager.status()["pending_confirm"] is False
    assert manager.rollback() == "1.0.0"
    assert current_version(install) == "1.0.0"


def test_every_workflow_event_reaches_the_events_callback_as_update_json_prints_it(install):
    manager = updraft.UpdateManager(install)
    info = manager.check()
    events, progress = [], []
    result = manager.install(info, progress=progress.append, events=events.append)
    assert result["switched"] is True
    names = [e["event"] if e["event"] != "phase" else "phase:" + e["phase"] for e in events]
    # One entry per run of progress events, as the Rust workflow test tells the story.
    story = [n for i, n in enumerate(names) if n != "progress" or i == 0 or names[i - 1] != "progress"]
    assert story == [
        "phase:downloading",
        "progress",
        "phase:installing",
        "progress",
        "phase:switching",
        "progress",
        "result",
    ], story
    last = dict(events[-1])
    assert last.pop("event") == "result"
    assert last == result, "the last event is the result the call returns"
    # The progress callback hears the same progress events, as ProgressInfo.
    assert [e for e in events if e["event"] == "progress"] == [p.to_dict() for p in progress]
    downloading = [p for p in progress if p.phase == "downloading"]
    assert downloading[-1].overall_eta_seconds is not None
    assert downloading[-1].overall_eta_seconds >= downloading[-1].eta_seconds


def test_an_exception_in_the_events_callback_stops_the_call_and_is_raised(install):
    manager = updraft.UpdateManager(install)
    info = manager.check()

    def boom(event):
        if event["event"] == "progress":
            raise RuntimeError("events callback broke")

    with pytest.raises(RuntimeError, match="events callback broke"):
        manager.install(info, events=boom)
    assert current_version(install) == "1.0.0"


def test_skip_hides_the_offer(install):
    manager = updraft.UpdateManager(install)
    manager.skip(manager.check())
    assert manager.check() is None
    assert "1.1.0" in manager.status()["skipped"]


def test_remind_later_postpones_the_offer(install):
    manager = updraft.UpdateManager(install)
    manager.remind_later(manager.check())
    assert manager.check() is None
    assert manager.status()["remind_after"]


def test_a_tampered_package_raises_verification_error_and_leaves_the_install_unchanged(install, copy_store):
    damaged = copy_store()
    for package in damaged.packages("1.1.0"):
        data = bytearray(package.read_bytes())
        for offset in range(len(data) // 2, len(data) // 2 + 64):
            data[offset] ^= 0xFF
        package.write_bytes(bytes(data))
    server = Server(damaged.path)
    try:
        edit_config(install, update_server={"base_url": server.url})
        before = app_files(install)
        manager = updraft.UpdateManager(install)
        info = manager.check()
        with pytest.raises(updraft.VerificationError) as raised:
            manager.install(info)
        assert raised.value.kind == "verification"
        assert isinstance(raised.value, updraft.UpdateError)
        assert app_files(install) == before
        assert manager.status()["current_version"] == "1.0.0"
    finally:
        server.stop()


def test_a_server_that_is_down_raises_download_error_naming_it(install):
    port = free_port()
    edit_config(install, update_server={"base_url": f"http://127.0.0.1:{port}"})
    manager = updraft.UpdateManager(install)
    with pytest.raises(updraft.DownloadError) as raised:
        manager.check()
    assert f"127.0.0.1:{port}" in str(raised.value)
    assert raised.value.kind == "network"


def test_blocking_calls_release_the_gil(install):
    manager = updraft.UpdateManager(install)
    # A server that accepts connections and never answers: the check waits.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    edit_config(install, update_server={"base_url": f"http://127.0.0.1:{silent.getsockname()[1]}"})
    slow = updraft.UpdateManager(install)
    ticks = []
    worker = threading.Thread(target=lambda: pytest.raises(updraft.UpdateError, slow.check))
    worker.start()
    started = time.monotonic()
    while worker.is_alive() and time.monotonic() - started < 0.5:
        ticks.append(1)
        time.sleep(0.01)
    slow.cancel()
    worker.join(timeout=10)
    assert not worker.is_alive(), "cancel() stopped the check"
    assert len(ticks) > 20, "the main thread ran while the check waited"
    assert manager.install_dir == slow.install_dir
    silent.close()


def test_cancel_stops_a_download_and_the_next_run_finishes_it(install):
    manager = updraft.UpdateManager(install)
    info = manager.check()
    with pytest.raises(updraft.UpdateCancelled) as raised:
        manager.download(info, progress=lambda event: manager.cancel())
    assert raised.value.kind == "cancelled"
    assert manager.status()["prepared"] is None
    assert manager.download(info)["updated"] is True


def test_an_exception_in_the_progress_callback_stops_the_call_and_is_raised(install):
    manager = updraft.UpdateManager(install)
    info = manager.check()

    def boom(event):
        raise RuntimeError("callback broke")

    with pytest.raises(RuntimeError, match="callback broke"):
        manager.download(info, progress=boom)
    assert current_version(install) == "1.0.0"


def test_a_missing_install_is_an_update_error(tmp_path):
    with pytest.raises(updraft.UpdateError):
        updraft.UpdateManager(tmp_path / "nothing-here")
