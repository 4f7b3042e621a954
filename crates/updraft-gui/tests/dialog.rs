//! The update dialog driven through its labels, as a user would, with a
//! backend that records what it was asked and reports the progress the
//! test feeds it.
//!
//! The harness panics on any character no font can draw, so the Chinese
//! tests also prove a CJK font was found (Linux: `fonts-wqy-microhei` or
//! `fonts-noto-cjk`; or set `UPDRAFT_CJK_FONT`).

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use updraft_gui::{
    DialogOutcome, Language, OfferView, ProgressSink, Stage, UpdateBackend, UpdateDialog,
};

type Report = Box<dyn FnOnce(&ProgressSink) + Send>;

enum Step {
    Report(Report),
    Finish(Result<(), String>),
}

/// Records every call; `install` reports what the test sends and returns
/// when told to.
struct FakeBackend {
    calls: Arc<Mutex<Vec<String>>>,
    steps: Receiver<Step>,
    reported: Sender<()>,
    save_result: Result<(), String>,
}

impl UpdateBackend for FakeBackend {
    fn skip(&mut self, version: &str) -> Result<(), String> {
        self.calls.lock().unwrap().push(format!("skip {version}"));
        self.save_result.clone()
    }

    fn remind_later(&mut self) -> Result<(), String> {
        self.calls.lock().unwrap().push("remind_later".into());
        self.save_result.clone()
    }

    fn install(&mut self, progress: ProgressSink) -> Result<(), String> {
        self.calls.lock().unwrap().push("install".into());
        loop {
            match self.steps.recv() {
                Ok(Step::Report(report)) => {
                    report(&progress);
                    let _ = self.reported.send(());
                }
                Ok(Step::Finish(result)) => return result,
                Err(_) => return Err("the test ended".into()),
            }
        }
    }
}

/// The test's side of a [`FakeBackend`].
struct Script {
    calls: Arc<Mutex<Vec<String>>>,
    steps: Sender<Step>,
    reported: Receiver<()>,
}

impl Script {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// Runs `report` on the install thread and waits until it has.
    fn report(&self, report: impl FnOnce(&ProgressSink) + Send + 'static) {
        self.steps.send(Step::Report(Box::new(report))).unwrap();
        self.reported
            .recv_timeout(Duration::from_secs(10))
            .expect("the install thread took the report");
    }

    fn finish(&self, result: Result<(), String>) {
        self.steps.send(Step::Finish(result)).unwrap();
    }
}

fn backend(save_result: Result<(), String>) -> (FakeBackend, Script) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let (steps_tx, steps_rx) = mpsc::channel();
    let (reported_tx, reported_rx) = mpsc::channel();
    (
        FakeBackend {
            calls: Arc::clone(&calls),
            steps: steps_rx,
            reported: reported_tx,
            save_result,
        },
        Script {
            calls,
            steps: steps_tx,
            reported: reported_rx,
        },
    )
}

fn offer(force_update: bool) -> OfferView {
    OfferView {
        force_update,
        file_size: 40_100_000,
        release_date: "2024-09-02T10:00:00Z".into(),
        changelog: "## Fixes\n\n- Downloads resume".into(),
        changelogs: vec![
            (
                "1.1.0".into(),
                "## Fixes\n\n- Downloads resume\n- **Faster** checks".into(),
            ),
            ("1.0.5".into(), "1. First step\n2. Second step".into()),
        ],
        app_id: "kuzflow".into(),
        ..OfferView::new("1.1.0", "1.0.0")
    }
    .with_display_name("Kuzflow")
}

fn harness(offer: OfferView, language: Language) -> (Harness<'static, UpdateDialog>, Script) {
    harness_with(offer, language, Ok(()))
}

fn harness_with(
    offer: OfferView,
    language: Language,
    save_result: Result<(), String>,
) -> (Harness<'static, UpdateDialog>, Script) {
    let (backend, script) = backend(save_result);
    let dialog = UpdateDialog::new(offer, backend, language);
    let mut harness = Harness::builder()
        .with_size([560.0, 480.0])
        .build_ui_state(|ui, dialog: &mut UpdateDialog| dialog.ui(ui), dialog);
    harness.run();
    (harness, script)
}

/// Steps the dialog until `label` shows (the install thread ends on its own time).
fn wait_for_label(harness: &mut Harness<'_, UpdateDialog>, label: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while harness.query_by_label(label).is_none() {
        assert!(Instant::now() < deadline, "`{label}` never showed");
        std::thread::sleep(Duration::from_millis(10));
        harness.step();
    }
    harness.run();
}

#[test]
fn the_prompt_shows_the_offer_its_notes_and_three_choices() {
    let (harness, script) = harness(offer(false), Language::English);
    harness.get_by_label("Version 1.1.0 is available");
    harness.get_by_label("Kuzflow 1.1.0 is available — you have 1.0.0. Download size 40.1 MB.");
    harness.get_by_label("Released: 2024-09-02");
    harness.get_by_label("What's new in Kuzflow");
    // Every version between the installed one and the offer, newest first.
    let first = harness.get_by_label("Version 1.1.0").rect();
    let second = harness.get_by_label("Version 1.0.5").rect();
    assert!(first.top() < second.top());
    harness.get_by_label("Fixes");
    harness.get_by_label("Downloads resume");
    harness.get_by_label("Faster checks");
    harness.get_by_label("1.");
    harness.get_by_label("Second step");
    for button in ["Install now", "Remind me later", "Skip this version"] {
        harness.get_by_label(button);
    }
    assert!(harness.query_by_label("Quit").is_none());
    assert!(
        harness.query_by_label("Downloading…").is_none(),
        "no progress before installing"
    );
    assert!(script.calls().is_empty());
}

#[test]
fn skip_saves_the_skip_and_ends_the_dialog() {
    let (mut harness, script) = harness(offer(false), Language::English);
    harness.get_by_label("Skip this version").click();
    harness.run();
    assert_eq!(script.calls(), ["skip 1.1.0"]);
    assert_eq!(harness.state().outcome(), Some(DialogOutcome::Skipped));
}

#[test]
fn remind_me_later_saves_the_reminder_and_ends_the_dialog() {
    let (mut harness, script) = harness(offer(false), Language::English);
    harness.get_by_label("Remind me later").click();
    harness.run();
    assert_eq!(script.calls(), ["remind_later"]);
    assert_eq!(harness.state().outcome(), Some(DialogOutcome::RemindLater));
}

#[test]
fn a_choice_that_cannot_be_saved_is_explained_and_the_dialog_stays() {
    let (mut harness, script) = harness_with(
        offer(false),
        Language::English,
        Err("Could not write `state.json`: read-only file system".into()),
    );
    harness.get_by_label("Remind me later").click();
    harness.run();
    assert_eq!(script.calls(), ["remind_later"]);
    assert_eq!(harness.state().outcome(), None);
    harness.get_by_label(
        "Could not save your choice: Could not write `state.json`: read-only file system.",
    );
    harness.get_by_label("Install now");
}

#[test]
fn install_now_shows_progress_until_the_update_is_installed() {
    let (mut harness, script) = harness(offer(false), Language::English);
    harness.get_by_label("Install now").click();
    harness.run();
    harness.get_by_label("Preparing…");
    harness.get_by_label("Installing version 1.1.0…");
    assert!(
        harness
            .query_by_label("Version 1.1.0 is available")
            .is_none()
    );
    for gone in ["Install now", "Remind me later", "Skip this version"] {
        assert!(
            harness.query_by_label(gone).is_none(),
            "{gone} while installing"
        );
    }

    script.report(|sink| {
        sink.set_stage(Stage::Downloading);
        sink.set_bytes(0, 40_100_000);
        sink.set_task(0.0);
    });
    std::thread::sleep(Duration::from_millis(600));
    script.report(|sink| {
        sink.set_bytes(12_300_000, 40_100_000);
        sink.set_task(0.306);
        sink.set_overall(0.276);
    });
    harness.run();
    harness.get_by_label("Downloading…");
    harness.get_by_label("Overall");
    harness.get_by_label("Current step");
    harness.get_by_label("27%");
    harness.get_by_label("30%");
    // Bytes, then a rate and a time left once half a second has been measured.
    let detail = harness.get_by_label_contains("12.3 MB of 40.1 MB · ");
    // AccessKit keeps a label's text in its value.
    let detail = detail.accesskit_node().value().unwrap();
    assert!(
        detail.ends_with(" s left") || detail.contains(" min "),
        "{detail}"
    );
    assert!(detail.contains("/s · "), "{detail}");

    script.report(|sink| {
        sink.clear_bytes();
        sink.set_stage(Stage::Installing);
        sink.set_task(1.0);
        sink.set_overall(1.0);
    });
    harness.run();
    harness.get_by_label("Verifying and installing…");
    assert_eq!(harness.get_all_by_label("100%").count(), 2);
    assert!(harness.query_by_label_contains("40.1 MB ·").is_none());

    script.finish(Ok(()));
    wait_for_label(
        &mut harness,
        "Update installed. The app will restart to finish the update.",
    );
    assert_eq!(harness.state().outcome(), None, "the user restarts");
    // The heading says it is done, not that it is available.
    harness.get_by_label("Version 1.1.0 is installed");
    harness.get_by_label("Kuzflow is updated from 1.0.0 to 1.1.0.");
    assert!(
        harness
            .query_by_label("Version 1.1.0 is available")
            .is_none()
    );
    assert!(
        harness
            .query_by_label("Installing version 1.1.0…")
            .is_none()
    );
    harness.get_by_label("Restart now").click();
    harness.run();
    assert_eq!(harness.state().outcome(), Some(DialogOutcome::Installed));
    assert_eq!(script.calls(), ["install"]);
}

#[test]
fn a_failure_says_what_happened_and_that_the_current_version_keeps_running() {
    let (mut harness, script) = harness(offer(false), Language::English);
    harness.get_by_label("Install now").click();
    harness.run();
    script.finish(Err(
        "Not enough free space in `/opt/kuzflow`: 40100000 bytes are needed and 1200 are free"
            .into(),
    ));
    wait_for_label(&mut harness, "The current version keeps running.");
    harness.get_by_label("The update could not be installed");
    assert!(
        harness
            .query_by_label("Version 1.1.0 is available")
            .is_none()
    );
    harness.get_by_label(
        "The update failed: Not enough free space in `/opt/kuzflow`: 40100000 bytes are needed and 1200 are free.",
    );
    harness.get_by_label("Try again");
    harness.get_by_label("Close").click();
    harness.run();
    assert_eq!(
        harness.state().outcome(),
        Some(DialogOutcome::Failed(
            "Not enough free space in `/opt/kuzflow`: 40100000 bytes are needed and 1200 are free"
                .into()
        ))
    );
}

#[test]
fn try_again_installs_again_through_the_same_backend() {
    let (mut harness, script) = harness(offer(false), Language::English);
    harness.get_by_label("Install now").click();
    harness.run();
    script.finish(Err(
        "Could not download `https://updates.example.com/x`: timed out".into(),
    ));
    wait_for_label(&mut harness, "Try again");
    harness.get_by_label("Try again").click();
    harness.run();
    script.finish(Ok(()));
    wait_for_label(&mut harness, "Restart now");
    assert_eq!(script.calls(), ["install", "install"]);
}

#[test]
fn a_forced_update_offers_install_or_quit_only() {
    let (mut harness, script) = harness(offer(true), Language::English);
    harness.get_by_label("Install now");
    harness.get_by_label("This update is required to keep using the app.");
    assert!(harness.query_by_label("Skip this version").is_none());
    assert!(harness.query_by_label("Remind me later").is_none());
    harness.get_by_label("Quit").click();
    harness.run();
    assert_eq!(harness.state().outcome(), Some(DialogOutcome::Quit));
    assert!(script.calls().is_empty());
}

#[test]
fn closing_the_window_during_a_download_stops_it_and_then_closes() {
    let (mut harness, script) = harness(offer(false), Language::English);
    harness.get_by_label("Install now").click();
    harness.run();
    assert!(!harness.state_mut().request_close(), "not mid-install");
    harness.run();
    harness.get_by_label("Stopping after the current step…");
    let cancelled = Arc::new(Mutex::new(false));
    let seen = Arc::clone(&cancelled);
    script.report(move |sink| *seen.lock().unwrap() = sink.is_cancelled());
    assert!(*cancelled.lock().unwrap(), "the backend sees the request");
    script.finish(Err("The download was cancelled".into()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while harness.state().outcome().is_none() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
        harness.step();
    }
    assert_eq!(harness.state().outcome(), Some(DialogOutcome::Closed));
}

/// Chinese needs a CJK font on the machine; without one the dialog
/// (rightly) falls back to English and these tests would fail obscurely.
fn require_cjk_font() {
    assert!(
        updraft_gui::find_cjk_font().is_some(),
        "no CJK font: install fonts-wqy-microhei or fonts-noto-cjk, or set UPDRAFT_CJK_FONT"
    );
}

#[test]
fn the_chinese_dialog_speaks_chinese_throughout() {
    require_cjk_font();
    let offer = OfferView {
        changelogs: vec![("1.1.0".into(), "## 新功能\n\n- 支持断点续传".into())],
        ..offer(false)
    };
    let (mut harness, script) = harness(offer, Language::SimplifiedChinese);
    assert_eq!(harness.state().language(), Language::SimplifiedChinese);
    harness.get_by_label("发现新版本 1.1.0");
    harness.get_by_label("Kuzflow 1.1.0 已发布，您当前使用的是 1.0.0。下载大小 40.1 MB。");
    harness.get_by_label("Kuzflow 更新内容");
    harness.get_by_label("新功能");
    harness.get_by_label("支持断点续传");
    harness.get_by_label("稍后提醒");
    harness.get_by_label("跳过此版本");
    harness.get_by_label("立即更新").click();
    harness.run();
    harness.get_by_label("正在准备…");
    harness.get_by_label("正在安装版本 1.1.0…");
    script.report(|sink| {
        sink.set_stage(Stage::Downloading);
        sink.set_bytes(12_300_000, 40_100_000);
    });
    harness.run();
    harness.get_by_label("正在下载…");
    harness.get_by_label("总进度");
    harness.get_by_label("12.3 MB / 40.1 MB");
    script.finish(Err("磁盘已满".into()));
    wait_for_label(&mut harness, "当前版本将继续运行。");
    harness.get_by_label("无法安装此更新");
    harness.get_by_label("更新失败：磁盘已满。");
    harness.get_by_label("重试");
    harness.get_by_label("关闭");
}

#[test]
fn the_chinese_success_and_forced_dialogs() {
    require_cjk_font();
    let (mut harness, script) = harness(offer(true), Language::SimplifiedChinese);
    harness.get_by_label("退出");
    assert!(harness.query_by_label("跳过此版本").is_none());
    assert!(harness.query_by_label("稍后提醒").is_none());
    harness.get_by_label("立即更新").click();
    harness.run();
    script.finish(Ok(()));
    wait_for_label(&mut harness, "更新已安装。应用将重新启动以完成更新。");
    harness.get_by_label("版本 1.1.0 已安装");
    harness.get_by_label("立即重启");
}

#[test]
fn the_window_title_follows_the_language() {
    require_cjk_font();
    let (english, _) = backend(Ok(()));
    let dialog = UpdateDialog::new(offer(false), english, Language::English);
    assert_eq!(dialog.window_title(), "Kuzflow update");
    let (chinese, _) = backend(Ok(()));
    let dialog = UpdateDialog::new(offer(false), chinese, Language::SimplifiedChinese);
    assert_eq!(dialog.window_title(), "Kuzflow 更新");
}

#[test]
fn without_a_display_name_the_app_id_names_the_app() {
    let offer = OfferView {
        display_name: String::new(),
        ..offer(false)
    };
    let (backend, _) = backend(Ok(()));
    let dialog = UpdateDialog::new(offer.clone(), backend, Language::English);
    assert_eq!(dialog.window_title(), "kuzflow update");
    let (harness, _) = harness(offer, Language::English);
    harness.get_by_label("What's new in kuzflow");
    harness.get_by_label_contains("kuzflow 1.1.0 is available — you have 1.0.0.");
    assert!(harness.query_by_label_contains("Kuzflow").is_none());
}

#[test]
fn short_notes_leave_no_empty_block_to_fit() {
    let short = OfferView {
        changelogs: vec![("1.1.0".into(), "- One fix".into())],
        ..offer(false)
    };
    let (short, _) = harness(short, Language::English);
    let long = OfferView {
        changelogs: vec![("1.1.0".into(), "- A fix\n".repeat(40))],
        ..offer(false)
    };
    let (long, _) = harness(long, Language::English);
    let (short, long) = (short.state().fit_height(), long.state().fit_height());
    // The harness is 480 points tall: short notes need far less, long ones more.
    assert!(short < 300.0, "{short}");
    assert!(long > 480.0, "{long}");
}

/// Embedded in an auto-sized `egui::Window`, `fitted_ui` gets the dialog the
/// height it needs (a fixed-size window counts its title bar and clipped the
/// notes), and no more than the maximum.
#[test]
fn an_auto_sized_window_gives_the_fitted_dialog_its_height() {
    use updraft_gui::egui;
    let given = Arc::new(Mutex::new(0.0_f32));
    let seen = Arc::clone(&given);
    let (fake, _) = backend(Ok(()));
    let short = OfferView {
        changelogs: vec![("1.1.0".into(), "- One fix\n- Another".into())],
        ..offer(false)
    };
    let dialog = UpdateDialog::new(short, fake, Language::English);
    let mut harness = Harness::builder().with_size([800.0, 700.0]).build_ui_state(
        move |ui, dialog: &mut UpdateDialog| {
            egui::Window::new(dialog.window_title())
                .auto_sized()
                .show(ui.ctx(), |ui| {
                    let top = ui.cursor().top();
                    dialog.fitted_ui(ui, egui::vec2(520.0, 400.0));
                    *seen.lock().unwrap() = ui.min_rect().bottom() - top;
                });
        },
        dialog,
    );
    harness.run();
    let fit = harness.state().fit_height();
    let given = *given.lock().unwrap();
    assert!(fit < 400.0, "short notes need less than the maximum: {fit}");
    assert!((given - fit).abs() < 1.0, "given {given}, needs {fit}");
    harness.get_by_label("Another");

    let (fake, _) = backend(Ok(()));
    let long = OfferView {
        changelogs: vec![("1.1.0".into(), "- A fix\n".repeat(40))],
        ..offer(false)
    };
    let dialog = UpdateDialog::new(long, fake, Language::English);
    let given = Arc::new(Mutex::new(0.0_f32));
    let seen = Arc::clone(&given);
    let mut harness = Harness::builder().with_size([800.0, 700.0]).build_ui_state(
        move |ui, dialog: &mut UpdateDialog| {
            egui::Window::new("t").auto_sized().show(ui.ctx(), |ui| {
                let top = ui.cursor().top();
                dialog.fitted_ui(ui, egui::vec2(520.0, 400.0));
                *seen.lock().unwrap() = ui.min_rect().bottom() - top;
            });
        },
        dialog,
    );
    harness.run();
    let given = *given.lock().unwrap();
    assert!(
        (given - 400.0).abs() < 1.0,
        "long notes get the maximum: {given}"
    );
}
