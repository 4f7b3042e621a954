//! Light or dark: [`choose_theme`] decides from what the desktop says
//! ([`DesktopPreference`]), and is light when nothing can be read;
//! [`ThemeFollower`] keeps an egui context in that theme without ever making
//! the UI wait for the desktop.
//!
//! Everything that asks the operating system lives in
//! [`DesktopPreference::read`] (environment variables and `gsettings`) and
//! [`ThemeFollower::apply`] (what the windowing system reports).

use std::fmt;
use std::str::FromStr;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::Duration;

use eframe::egui::{self, Theme};

/// The environment variable that forces a theme: `light` or `dark`.
pub const THEME_ENV: &str = "UPDRAFT_THEME";

/// How long `gsettings` may take to answer before it is given up on.
const GSETTINGS_TIMEOUT: Duration = Duration::from_millis(400);

/// Which theme the dialog uses: the desktop's ([`Self::Auto`]) or a fixed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ThemeSetting {
    /// Follow the desktop's preference; light when it cannot be read.
    #[default]
    Auto,
    /// Always light.
    Light,
    /// Always dark.
    Dark,
}

impl From<Theme> for ThemeSetting {
    fn from(theme: Theme) -> Self {
        match theme {
            Theme::Light => Self::Light,
            Theme::Dark => Self::Dark,
        }
    }
}

impl fmt::Display for ThemeSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Light => "light",
            Self::Dark => "dark",
        })
    }
}

/// A theme value that is not `auto`, `light` or `dark`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a theme: use `auto`, `light` or `dark`")]
pub struct ParseThemeError {
    /// The value given.
    pub value: String,
}

impl FromStr for ThemeSetting {
    type Err = ParseThemeError;

    /// Parses `auto`, `light` or `dark`, in any case.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Self::Auto),
            "light" => Ok(Self::Light),
            "dark" => Ok(Self::Dark),
            _ => Err(ParseThemeError {
                value: value.to_owned(),
            }),
        }
    }
}

/// What the desktop says about light and dark, one field per source, as
/// read ([`Self::read`]) or as a test makes it. `None` means the source said
/// nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesktopPreference {
    /// `UPDRAFT_THEME`: `light`, `dark` or `auto`.
    pub updraft_theme: Option<String>,
    /// The theme the windowing system reports (winit does on Windows and
    /// macOS; on X11 and Wayland it reports none).
    pub system: Option<Theme>,
    /// `GTK_THEME`, e.g. `Adwaita:dark`.
    pub gtk_theme: Option<String>,
    /// The output of `gsettings get org.gnome.desktop.interface
    /// color-scheme`: `'prefer-dark'`, `'prefer-light'` or `'default'`.
    pub color_scheme: Option<String>,
}

impl DesktopPreference {
    /// Reads the environment and, on Linux and the BSDs, `gsettings` (which
    /// may take up to 400 ms, so call it off the UI thread: [`ThemeFollower`]
    /// does). The windowing system's theme is left to [`ThemeFollower::apply`].
    pub fn read() -> Self {
        Self {
            gtk_theme: env("GTK_THEME"),
            color_scheme: gsettings_color_scheme(),
            ..Self::from_env()
        }
    }

    /// Only what needs no other program: `UPDRAFT_THEME` and `GTK_THEME`.
    fn from_env() -> Self {
        Self {
            updraft_theme: env(THEME_ENV),
            gtk_theme: env("GTK_THEME"),
            ..Self::default()
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// The theme to use, in this order: an explicit `setting`; `UPDRAFT_THEME`;
/// the theme the windowing system reports; `GTK_THEME` (`…:dark` or
/// `…-dark` is dark, any other theme light); GNOME's `color-scheme`
/// (`prefer-dark`, `prefer-light`); and light when none of them says.
///
/// ```
/// use updraft_gui::{DesktopPreference, ThemeSetting, choose_theme, egui::Theme};
/// let desktop = DesktopPreference {
///     gtk_theme: Some("Adwaita:dark".into()),
///     ..DesktopPreference::default()
/// };
/// assert_eq!(choose_theme(ThemeSetting::Auto, &desktop), Theme::Dark);
/// assert_eq!(choose_theme(ThemeSetting::Light, &desktop), Theme::Light);
/// assert_eq!(choose_theme(ThemeSetting::Auto, &DesktopPreference::default()), Theme::Light);
/// ```
pub fn choose_theme(setting: ThemeSetting, desktop: &DesktopPreference) -> Theme {
    match setting {
        ThemeSetting::Light => return Theme::Light,
        ThemeSetting::Dark => return Theme::Dark,
        ThemeSetting::Auto => {}
    }
    let forced = desktop
        .updraft_theme
        .as_deref()
        .and_then(|value| match value.parse() {
            Ok(ThemeSetting::Light) => Some(Theme::Light),
            Ok(ThemeSetting::Dark) => Some(Theme::Dark),
            Ok(ThemeSetting::Auto) | Err(_) => None,
        });
    forced
        .or(desktop.system)
        .or_else(|| desktop.gtk_theme.as_deref().and_then(gtk_theme))
        .or_else(|| desktop.color_scheme.as_deref().and_then(color_scheme))
        .unwrap_or(Theme::Light)
}

/// `Adwaita:dark` and `Adwaita-dark` are dark; any other named theme is light.
fn gtk_theme(value: &str) -> Option<Theme> {
    let value = value.trim().to_ascii_lowercase();
    if value.is_empty() {
        None
    } else if value.ends_with(":dark") || value.ends_with("-dark") {
        Some(Theme::Dark)
    } else {
        Some(Theme::Light)
    }
}

/// gsettings prints strings quoted: `'prefer-dark'`. `'default'` says nothing.
fn color_scheme(value: &str) -> Option<Theme> {
    match value.trim().trim_matches(['\'', '"']) {
        "prefer-dark" => Some(Theme::Dark),
        "prefer-light" => Some(Theme::Light),
        _ => None,
    }
}

/// `gsettings get org.gnome.desktop.interface color-scheme`, if gsettings
/// exists and answers within [`GSETTINGS_TIMEOUT`].
#[cfg(all(unix, not(target_os = "macos")))]
fn gsettings_color_scheme() -> Option<String> {
    let mut gsettings = std::process::Command::new("gsettings");
    gsettings.args(["get", "org.gnome.desktop.interface", "color-scheme"]);
    output_within(&mut gsettings, GSETTINGS_TIMEOUT)
}

/// What `command` prints, trimmed, if it succeeds within `timeout`; it is
/// killed when it takes longer.
#[cfg(all(unix, not(target_os = "macos")))]
fn output_within(command: &mut std::process::Command, timeout: Duration) -> Option<String> {
    use std::io::Read;
    use std::process::Stdio;
    use std::time::Instant;

    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => {
                let mut out = String::new();
                child.stdout.take()?.read_to_string(&mut out).ok()?;
                return Some(out.trim().to_owned()).filter(|out| !out.is_empty());
            }
            Ok(Some(_)) => return None,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn gsettings_color_scheme() -> Option<String> {
    None
}

/// Keeps an egui context in the theme [`choose_theme`] picks. The slow part
/// (`gsettings`) runs on a thread of its own; until it answers, the theme is
/// chosen from the environment and the windowing system, so the UI never
/// waits.
///
/// [`show_update_dialog`](crate::show_update_dialog) uses one for its
/// window; an app can use one for its own:
///
/// ```no_run
/// use updraft_gui::{ThemeFollower, ThemeSetting, egui};
/// struct App { theme: ThemeFollower }
/// impl App {
///     fn frame(&mut self, ctx: &egui::Context) {
///         self.theme.apply(ctx); // every frame; cheap
///     }
/// }
/// let app = App { theme: ThemeFollower::new(ThemeSetting::Auto) };
/// ```
#[derive(Debug)]
pub struct ThemeFollower {
    setting: ThemeSetting,
    desktop: DesktopPreference,
    probe: Option<Receiver<DesktopPreference>>,
}

impl ThemeFollower {
    /// Starts reading the desktop's preference (for [`ThemeSetting::Auto`]).
    pub fn new(setting: ThemeSetting) -> Self {
        let probe = (setting == ThemeSetting::Auto)
            .then(|| {
                let (sender, receiver) = mpsc::channel();
                std::thread::Builder::new()
                    .name("updraft-theme".into())
                    .spawn(move || {
                        let _ = sender.send(DesktopPreference::read());
                    })
                    .ok()
                    .map(|_| receiver)
            })
            .flatten();
        Self {
            setting,
            desktop: DesktopPreference::from_env(),
            probe,
        }
    }

    /// The theme chosen from what is known so far.
    pub fn theme(&self) -> Theme {
        choose_theme(self.setting, &self.desktop)
    }

    /// Takes what the desktop said, if it has answered, and sets `ctx`'s
    /// theme when it is not the chosen one. Call it every frame.
    pub fn apply(&mut self, ctx: &egui::Context) {
        if let Some(probe) = &self.probe {
            match probe.try_recv() {
                Ok(desktop) => {
                    self.desktop = desktop;
                    self.probe = None;
                }
                Err(TryRecvError::Empty) => ctx.request_repaint_after(Duration::from_millis(50)),
                Err(TryRecvError::Disconnected) => self.probe = None,
            }
        }
        self.desktop.system = ctx.system_theme();
        let theme = self.theme();
        if ctx.options(|options| options.theme_preference) != theme.into() {
            ctx.set_theme(theme);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desktop(change: impl FnOnce(&mut DesktopPreference)) -> DesktopPreference {
        let mut desktop = DesktopPreference::default();
        change(&mut desktop);
        desktop
    }

    #[test]
    fn nothing_known_means_light() {
        assert_eq!(
            choose_theme(ThemeSetting::Auto, &DesktopPreference::default()),
            Theme::Light
        );
        // Sources that say nothing useful are the same as none.
        let silent = desktop(|d| {
            d.updraft_theme = Some("sepia".into());
            d.gtk_theme = Some(" ".into());
            d.color_scheme = Some("'default'".into());
        });
        assert_eq!(choose_theme(ThemeSetting::Auto, &silent), Theme::Light);
    }

    #[test]
    fn a_dark_desktop_is_followed_from_each_source() {
        let dark = [
            desktop(|d| d.gtk_theme = Some("Adwaita:dark".into())),
            desktop(|d| d.gtk_theme = Some("Arc-Dark".into())),
            desktop(|d| d.color_scheme = Some("'prefer-dark'".into())),
            desktop(|d| d.system = Some(Theme::Dark)),
            desktop(|d| d.updraft_theme = Some("DARK".into())),
        ];
        for desktop in dark {
            assert_eq!(
                choose_theme(ThemeSetting::Auto, &desktop),
                Theme::Dark,
                "{desktop:?}"
            );
        }
    }

    #[test]
    fn a_light_desktop_is_followed_over_later_sources() {
        let light = [
            desktop(|d| {
                d.gtk_theme = Some("Adwaita".into());
                d.color_scheme = Some("'prefer-dark'".into());
            }),
            desktop(|d| {
                d.system = Some(Theme::Light);
                d.gtk_theme = Some("Adwaita:dark".into());
            }),
            desktop(|d| {
                d.updraft_theme = Some("light".into());
                d.system = Some(Theme::Dark);
            }),
            desktop(|d| d.color_scheme = Some("'prefer-light'".into())),
        ];
        for desktop in light {
            assert_eq!(
                choose_theme(ThemeSetting::Auto, &desktop),
                Theme::Light,
                "{desktop:?}"
            );
        }
    }

    #[test]
    fn an_explicit_setting_wins_over_everything() {
        let dark = desktop(|d| {
            d.updraft_theme = Some("dark".into());
            d.system = Some(Theme::Dark);
            d.gtk_theme = Some("Adwaita:dark".into());
        });
        assert_eq!(choose_theme(ThemeSetting::Light, &dark), Theme::Light);
        assert_eq!(
            choose_theme(ThemeSetting::Dark, &DesktopPreference::default()),
            Theme::Dark
        );
    }

    #[test]
    fn settings_parse_and_print() {
        assert_eq!("auto".parse(), Ok(ThemeSetting::Auto));
        assert_eq!(" Dark ".parse(), Ok(ThemeSetting::Dark));
        assert_eq!("light".parse(), Ok(ThemeSetting::Light));
        assert_eq!(
            "blue".parse::<ThemeSetting>().unwrap_err().to_string(),
            "`blue` is not a theme: use `auto`, `light` or `dark`"
        );
        assert_eq!(ThemeSetting::Dark.to_string(), "dark");
    }

    #[cfg(all(unix, not(target_os = "macos")))]
    #[test]
    fn a_slow_or_missing_settings_program_is_given_up_on_quickly() {
        use std::process::Command;
        use std::time::Instant;
        let limit = Duration::from_millis(300);
        let started = Instant::now();
        let mut slow = Command::new("sh");
        slow.args(["-c", "sleep 5; echo prefer-dark"]);
        assert_eq!(output_within(&mut slow, limit), None);
        assert!(started.elapsed() < Duration::from_secs(2), "it waited");
        let mut answers = Command::new("sh");
        answers.args(["-c", "echo \"'prefer-dark'\""]);
        assert_eq!(
            output_within(&mut answers, Duration::from_secs(5)).as_deref(),
            Some("'prefer-dark'")
        );
        let mut fails = Command::new("sh");
        fails.args(["-c", "echo oops; exit 1"]);
        assert_eq!(output_within(&mut fails, Duration::from_secs(5)), None);
        let mut missing = Command::new("updraft-no-such-program");
        assert_eq!(output_within(&mut missing, limit), None);
    }

    #[test]
    fn the_follower_sets_the_context_theme_and_keeps_it() {
        let ctx = egui::Context::default();
        // egui's own fallback is dark; an explicit light setting must win.
        let mut follower = ThemeFollower::new(ThemeSetting::Light);
        follower.apply(&ctx);
        assert_eq!(ctx.theme(), Theme::Light);
        let mut follower = ThemeFollower::new(ThemeSetting::Dark);
        follower.apply(&ctx);
        assert_eq!(ctx.theme(), Theme::Dark);
    }
}
