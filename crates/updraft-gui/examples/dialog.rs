//! Try the update dialog with a simulated update, no server needed:
//!
//! ```text
//! cargo run -p updraft-gui --example dialog -- [auto|en|zh-CN] [--forced] [--fail]
//! ```
//!
//! "Install now" downloads 40.1 MB at about 8 MB/s and installs (or fails,
//! with `--fail`); the outcome is printed when the window closes.

use std::time::{Duration, Instant};

use updraft_gui::{
    DialogOptions, LanguageSetting, OfferView, ProgressSink, Stage, UpdateBackend,
    show_update_dialog,
};

struct Simulated {
    fail: bool,
}

impl UpdateBackend for Simulated {
    fn skip(&mut self, version: &str) -> Result<(), String> {
        println!("skip {version}");
        Ok(())
    }

    fn remind_later(&mut self) -> Result<(), String> {
        println!("remind later");
        Ok(())
    }

    fn install(&mut self, progress: ProgressSink) -> Result<(), String> {
        const TOTAL: u64 = 40_100_000;
        const RATE: f64 = 8_000_000.0;
        progress.set_stage(Stage::Downloading);
        let started = Instant::now();
        loop {
            if progress.is_cancelled() {
                return Err("The download was cancelled".into());
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let done = ((started.elapsed().as_secs_f64() * RATE) as u64).min(TOTAL);
            #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
            let fraction = (done as f64 / TOTAL as f64) as f32;
            progress.set_bytes(done, TOTAL);
            progress.set_task(fraction);
            progress.set_overall(0.9 * fraction);
            if done == TOTAL {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.fail {
            return Err(
                "Package `kuzflow_v1.1.0_linux_x86_64_full.tar.zst` failed verification: expected sha256 `ab12…`, got `cd34…`"
                    .into(),
            );
        }
        progress.clear_bytes();
        progress.set_stage(Stage::Installing);
        for step in 0..=10u8 {
            progress.set_task(f32::from(step) / 10.0);
            progress.set_overall(0.9 + f32::from(step) / 100.0);
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let language = args
        .iter()
        .find(|arg| !arg.starts_with("--"))
        .map_or(Ok(LanguageSetting::Auto), |arg| arg.parse())?;
    let offer = OfferView {
        force_update: args.iter().any(|arg| arg == "--forced"),
        file_size: 40_100_000,
        release_date: "2024-09-02T10:00:00Z".into(),
        changelogs: vec![
            (
                "1.1.0".into(),
                "## New\n\n- **Resumable downloads**\n- Rollback if anything fails\n\n## 新功能\n\n- 支持断点续传".into(),
            ),
            ("1.0.1".into(), "1. A fix\n2. Another fix".into()),
        ],
        ..OfferView::new("1.1.0", "1.0.0")
    };
    let backend = Simulated {
        fail: args.iter().any(|arg| arg == "--fail"),
    };
    let outcome = show_update_dialog(
        offer,
        backend,
        DialogOptions::new("Kuzflow").language(language),
    )?;
    println!("{outcome:?}");
    Ok(())
}
