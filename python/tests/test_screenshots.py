"""Renders the dialog and the progress widget offscreen, in English and
Chinese, from a real offer; with UPDRAFT_SCREENSHOTS=DIR it saves the PNGs
(`bash scripts/screenshots.sh` does, into docs/screenshots/)."""

import os
from pathlib import Path

import pytest
from PyQt5.QtWidgets import QApplication

import updraft
from updraft.qt import ProgressWidget, UpdateDialog


class FakeProgress:
    """A progress event in the middle of a download, for a still picture."""

    phase = status = "downloading"
    downloaded, total, rate, eta_seconds = 1_300_000, 3_010_000, 2_400_000.0, 0.7
    step_fraction = downloaded / total
    overall_fraction = step_fraction * 0.95
    overall_percent, current_percent = round(overall_fraction * 100), round(step_fraction * 100)


def distinct_colours(image) -> int:
    return len({image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)})


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_render_the_dialog_and_the_progress_widget(install, qtbot, language):
    info = updraft.UpdateManager(install).check()
    out = os.environ.get("UPDRAFT_SCREENSHOTS")
    dialog = UpdateDialog(info, language=language)
    qtbot.addWidget(dialog)
    dialog.show()
    QApplication.processEvents()
    shots = {f"qt-{language}-dialog.png": dialog.grab()}

    dialog.progress.setVisible(True)
    dialog.progress.set_progress(FakeProgress())
    for button in (dialog.install_button, dialog.remind_button, dialog.skip_button):
        button.setEnabled(False)
    QApplication.processEvents()
    shots[f"qt-{language}-installing.png"] = dialog.grab()

    widget = ProgressWidget(language=language)
    qtbot.addWidget(widget)
    widget.resize(420, widget.sizeHint().height())
    widget.set_progress(FakeProgress())
    widget.show()
    QApplication.processEvents()
    shots[f"qt-{language}-progress.png"] = widget.grab()
    assert "1.3 MB" in widget.detail_label.text()

    for name, pixmap in shots.items():
        image = pixmap.toImage()
        assert image.width() > 200 and distinct_colours(image) > 4, f"{name} rendered nothing"
        if out:
            Path(out).mkdir(parents=True, exist_ok=True)
            assert pixmap.save(str(Path(out) / name))
