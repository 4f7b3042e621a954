//! Saves a PNG of the update dialog in one state and language:
//!
//! ```text
//! screenshots <en|zh-CN> <prompt|forced|installing|success|failure> <light|dark> OUT.png
//! ```
//!
//! It opens the real window (so it needs a display; `scripts/screenshots.sh`
//! runs every state under Xvfb), brings the dialog into the state with a
//! scripted backend, sizes the window to the dialog as `show_update_dialog`
//! does, and saves what eframe rendered.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use updraft_gui::egui;
use updraft_gui::{
    Action, DialogState, Language, LanguageSetting, OfferView, ProgressSink, Stage, ThemeFollower,
    ThemeSetting, UpdateBackend, UpdateDialog,
};

const WIDTH: f32 = 560.0;
const MAX_HEIGHT: f32 = 480.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shot {
    Prompt,
    Forced,
    Installing,
    Success,
    Failure,
}

impl Shot {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "prompt" => Self::Prompt,
            "forced" => Self::Forced,
            "installing" => Self::Installing,
            "success" => Self::Success,
            "failure" => Self::Failure,
            _ => return None,
        })
    }

    fn reached(self, state: &DialogState) -> bool {
        match self {
            Self::Prompt | Self::Forced => matches!(state, DialogState::Prompt),
            Self::Installing => matches!(state, DialogState::Installing(p) if p.rate.is_some()),
            Self::Success => matches!(state, DialogState::Succeeded),
            Self::Failure => matches!(state, DialogState::Failed(_)),
        }
    }
}

/// Installs the way the shot needs: progress that stays put, success or failure.
struct ScriptedBackend(Shot);

impl UpdateBackend for ScriptedBackend {
    fn skip(&mut self, _version: &str) -> Result<(), String> {
        Ok(())
    }

    fn remind_later(&mut self) -> Result<(), String> {
        Ok(())
    }

    fn install(&mut self, progress: ProgressSink) -> Result<(), String> {
        match self.0 {
            Shot::Success => Ok(()),
            Shot::Failure => Err(
                "Could not download `https://updates.example.com/releases/v1.1.0/kuzflow_v1.1.0_linux_x86_64_full.tar.zst`: the connection was reset"
                    .into(),
            ),
            _ => {
                // 12.3 MB of 40.1 MB at about 5.2 MB/s.
                progress.set_stage(Stage::Downloading);
                progress.set_bytes(9_180_000, 40_100_000);
                std::thread::sleep(Duration::from_millis(600));
                progress.set_bytes(12_300_000, 40_100_000);
                progress.set_task(0.307);
                progress.set_overall(0.276);
                while !progress.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err("stopped".into())
            }
        }
    }
}

fn offer(language: Language, forced: bool) -> OfferView {
    let (new, fixes) = match language {
        Language::SimplifiedChinese => (
            "## 新功能\n\n- **断点续传**：下载中断后从中断处继续\n- 更新前自动备份，失败时自动回滚\n- 新增简体中文界面",
            "## 修复\n\n1. 修复代理环境下检查更新超时的问题\n2. 修复 `update_config.json` 中的未知键导致启动失败",
        ),
        _ => (
            "## New\n\n- **Resumable downloads**: an interrupted download picks up where it stopped\n- Automatic backup before updating, and rollback if anything fails\n- A Simplified Chinese interface",
            "## Fixes\n\n1. Update checks no longer time out behind a proxy\n2. An unknown key in `update_config.json` no longer stops the app from starting",
        ),
    };
    OfferView {
        force_update: forced,
        file_size: 40_100_000,
        release_date: "2024-09-02T10:00:00Z".into(),
        changelog: new.into(),
        changelogs: vec![("1.1.0".into(), new.into()), ("1.0.1".into(), fixes.into())],
        app_id: "kuzflow".into(),
        ..OfferView::new("1.1.0", "1.0.0")
    }
    .with_display_name("Kuzflow")
}

struct ShotApp {
    dialog: UpdateDialog,
    theme: ThemeFollower,
    height: f32,
    shot: Shot,
    out: PathBuf,
    reached_at: Option<Instant>,
    requested: bool,
    saved: Arc<Mutex<Option<Result<(), String>>>>,
}

impl eframe::App for ShotApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.theme.apply(&ctx);
        self.dialog.window_ui(ui);
        let height = self.dialog.fit_height().clamp(280.0, MAX_HEIGHT).ceil();
        if (height - self.height).abs() >= 1.0 {
            // Sized as show_update_dialog sizes it; the picture waits for it.
            self.height = height;
            self.reached_at = None;
            ctx.send_viewport_cmd(egui::ViewportCommand::InnerSize(egui::vec2(WIDTH, height)));
        }
        if let Some(result) = self.saved.lock().unwrap().take() {
            if let Err(error) = result {
                eprintln!("screenshots: {error}");
                std::process::exit(1);
            }
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        if self.reached_at.is_none() && self.shot.reached(self.dialog.model().state()) {
            self.reached_at = Some(Instant::now());
        }
        // Let panels settle and the progress arrive before the picture.
        if let Some(at) = self.reached_at
            && at.elapsed() > Duration::from_millis(800)
            && !self.requested
        {
            self.requested = true;
            let (out, saved) = (self.out.clone(), Arc::clone(&self.saved));
            let repaint = ctx.clone();
            ctx.request_screenshot(move |image| {
                *saved.lock().unwrap() = Some(save_png(&out, &image));
                repaint.request_repaint();
            });
        }
        ctx.request_repaint_after(Duration::from_millis(50));
    }
}

fn save_png(path: &Path, image: &egui::ColorImage) -> Result<(), String> {
    let [width, height] = image.size;
    let rgb: Vec<u8> = image
        .pixels
        .iter()
        .flat_map(|pixel| {
            let [r, g, b, _] = pixel.to_srgba_unmultiplied();
            [r, g, b]
        })
        .collect();
    let file = std::fs::File::create(path)
        .map_err(|e| format!("could not create `{}`: {e}", path.display()))?;
    let mut encoder = png::Encoder::new(
        std::io::BufWriter::new(file),
        u32::try_from(width).map_err(|e| e.to_string())?,
        u32::try_from(height).map_err(|e| e.to_string())?,
    );
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::High);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer
        .write_image_data(&rgb)
        .map_err(|e| format!("could not write `{}`: {e}", path.display()))?;
    writer.finish().map_err(|e| e.to_string())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [language, shot, theme, out] = args.as_slice() else {
        return Err(
            "usage: screenshots <en|zh-CN> <prompt|forced|installing|success|failure> <light|dark> OUT.png"
                .into(),
        );
    };
    let theme: ThemeSetting = theme.parse()?;
    let language = match language.parse::<LanguageSetting>()? {
        LanguageSetting::Fixed(language) => language,
        LanguageSetting::Auto => Language::from_system(),
    };
    let shot = Shot::parse(shot).ok_or_else(|| format!("unknown state `{shot}`"))?;
    let mut dialog = UpdateDialog::new(
        offer(language, shot == Shot::Forced),
        ScriptedBackend(shot),
        language,
    );
    if dialog.language() != language {
        return Err("no CJK font: install fonts-wqy-microhei or fonts-noto-cjk".into());
    }
    if matches!(shot, Shot::Installing | Shot::Success | Shot::Failure) {
        dialog.choose(Action::InstallNow);
    }
    let title = dialog.window_title();
    let app = ShotApp {
        dialog,
        theme: ThemeFollower::new(theme),
        height: MAX_HEIGHT,
        shot,
        out: PathBuf::from(out),
        reached_at: None,
        requested: false,
        saved: Arc::default(),
    };
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(title)
            .with_icon(updraft_gui::update_icon())
            .with_inner_size([WIDTH, MAX_HEIGHT])
            .with_resizable(false),
        ..eframe::NativeOptions::default()
    };
    eframe::run_native("Kuzflow", options, Box::new(|_creation| Ok(Box::new(app))))?;
    Ok(())
}
