//! Languages, how the system locale picks one, and every sentence the dialog shows.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::dialog::DialogState;

/// A language the dialog speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Language {
    /// English (the default).
    #[default]
    English,
    /// Simplified Chinese (`zh-CN`).
    SimplifiedChinese,
}

impl Language {
    /// The language of the system locale: the first non-empty of `LC_ALL`,
    /// `LC_MESSAGES` and `LANG` (POSIX precedence), else the OS setting
    /// (Windows and macOS rarely set those variables). `zh*` means Chinese;
    /// anything else, English.
    pub fn from_system() -> Self {
        let var = |name| std::env::var(name).ok();
        Self::from_locale_vars(var("LC_ALL"), var("LC_MESSAGES"), var("LANG"))
            .or_else(|| sys_locale::get_locale().map(|locale| Self::from_locale(&locale)))
            .unwrap_or_default()
    }

    /// The language named by the first non-empty of the three POSIX locale
    /// variables, or `None` when all are unset or empty.
    pub fn from_locale_vars(
        lc_all: Option<String>,
        lc_messages: Option<String>,
        lang: Option<String>,
    ) -> Option<Self> {
        [lc_all, lc_messages, lang]
            .into_iter()
            .flatten()
            .find(|value| !value.trim().is_empty())
            .map(|locale| Self::from_locale(&locale))
    }

    /// The language of one locale name: `zh_CN.UTF-8`, `zh-Hans`, `zh` are
    /// Chinese; `en_US.UTF-8`, `C`, `POSIX` and everything else English.
    pub fn from_locale(locale: &str) -> Self {
        let locale = locale.trim();
        if locale
            .get(..2)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("zh"))
        {
            Self::SimplifiedChinese
        } else {
            Self::English
        }
    }

    /// The language's tag as the configuration spells it: `en` or `zh-CN`.
    pub fn code(self) -> &'static str {
        match self {
            Self::English => "en",
            Self::SimplifiedChinese => "zh-CN",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The `ui.language` setting: `auto` (the system locale) or a fixed language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LanguageSetting {
    /// Follow the system locale ([`Language::from_system`]).
    #[default]
    Auto,
    /// Always this language.
    Fixed(Language),
}

impl LanguageSetting {
    /// The language to show.
    pub fn resolve(self) -> Language {
        match self {
            Self::Auto => Language::from_system(),
            Self::Fixed(language) => language,
        }
    }
}

impl From<Language> for LanguageSetting {
    fn from(language: Language) -> Self {
        Self::Fixed(language)
    }
}

/// A `ui.language` value that is not `auto`, `en` or `zh-CN`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a language: use `auto`, `en` or `zh-CN`")]
pub struct ParseLanguageError {
    /// The value given.
    pub value: String,
}

impl FromStr for LanguageSetting {
    type Err = ParseLanguageError;

    /// Parses `auto`, `en` or `zh-CN` (case does not matter; `zh`, `zh_CN`
    /// and `zh-Hans` are accepted for Chinese, `en-US`/`en_GB`… for English).
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let normalized = value.trim().to_ascii_lowercase().replace('_', "-");
        match normalized.as_str() {
            "auto" | "" => Ok(Self::Auto),
            "zh" | "zh-cn" | "zh-hans" | "zh-hans-cn" => {
                Ok(Self::Fixed(Language::SimplifiedChinese))
            }
            other if other == "en" || other.starts_with("en-") => {
                Ok(Self::Fixed(Language::English))
            }
            _ => Err(ParseLanguageError {
                value: value.to_owned(),
            }),
        }
    }
}

/// Every sentence of the dialog in one language.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Texts(pub(crate) Language);

impl Texts {
    fn zh(self) -> bool {
        self.0 == Language::SimplifiedChinese
    }

    fn pick(self, english: &'static str, chinese: &'static str) -> &'static str {
        if self.zh() { chinese } else { english }
    }

    pub(crate) fn window_title(self, app_name: &str) -> String {
        match (self.zh(), app_name.trim()) {
            (false, "") => "Software update".to_owned(),
            (true, "") => "软件更新".to_owned(),
            (false, name) => format!("{name} update"),
            (true, name) => format!("{name} 更新"),
        }
    }

    /// The heading, which says where the update is.
    pub(crate) fn heading(self, state: &DialogState, version: &str) -> String {
        match (state, self.zh()) {
            (DialogState::Prompt, false) => format!("Version {version} is available"),
            (DialogState::Prompt, true) => format!("发现新版本 {version}"),
            (DialogState::Installing(_), false) => format!("Installing version {version}…"),
            (DialogState::Installing(_), true) => format!("正在安装版本 {version}…"),
            (DialogState::Succeeded, false) => format!("Version {version} is installed"),
            (DialogState::Succeeded, true) => format!("版本 {version} 已安装"),
            (DialogState::Failed(_), false) => "The update could not be installed".to_owned(),
            (DialogState::Failed(_), true) => "无法安装此更新".to_owned(),
        }
    }

    /// The line under the heading: "Kuzflow 1.1.0 is available — you have
    /// 1.0.0. Download size 40.1 MB." (after the install: "Kuzflow is
    /// updated from 1.0.0 to 1.1.0.").
    pub(crate) fn summary(
        self,
        state: &DialogState,
        app_name: &str,
        offer: (&str, &str),
        file_size: u64,
    ) -> String {
        let (version, current) = offer;
        let app = app_name.trim();
        if *state == DialogState::Succeeded {
            return match (self.zh(), app) {
                (false, "") => format!("Updated from {current} to {version}."),
                (true, "") => format!("已从 {current} 更新到 {version}。"),
                (false, app) => format!("{app} is updated from {current} to {version}."),
                (true, app) => format!("{app} 已从 {current} 更新到 {version}。"),
            };
        }
        let mut summary = match (self.zh(), app) {
            (false, "") => format!("Version {version} is available — you have {current}."),
            (true, "") => format!("新版本 {version} 已发布，您当前使用的是 {current}。"),
            (false, app) => format!("{app} {version} is available — you have {current}."),
            (true, app) => format!("{app} {version} 已发布，您当前使用的是 {current}。"),
        };
        if file_size > 0 {
            let size = human_bytes(file_size);
            if self.zh() {
                summary.push_str("下载大小 ");
                summary.push_str(&size);
                summary.push('。');
            } else {
                summary.push_str(" Download size ");
                summary.push_str(&size);
                summary.push('.');
            }
        }
        summary
    }

    pub(crate) fn released(self, date: &str) -> String {
        if self.zh() {
            format!("发布日期：{date}")
        } else {
            format!("Released: {date}")
        }
    }

    pub(crate) fn required(self) -> &'static str {
        self.pick(
            "This update is required to keep using the app.",
            "此更新为必需更新，安装后才能继续使用。",
        )
    }

    pub(crate) fn whats_new(self, app_name: &str) -> String {
        match (self.zh(), app_name.trim()) {
            (false, "") => "What's new".to_owned(),
            (true, "") => "更新内容".to_owned(),
            (false, app) => format!("What's new in {app}"),
            (true, app) => format!("{app} 更新内容"),
        }
    }

    pub(crate) fn version_heading(self, version: &str) -> String {
        if self.zh() {
            format!("版本 {version}")
        } else {
            format!("Version {version}")
        }
    }

    pub(crate) fn no_notes(self) -> &'static str {
        self.pick("No release notes.", "暂无更新说明。")
    }

    pub(crate) fn install_now(self) -> &'static str {
        self.pick("Install now", "立即更新")
    }

    pub(crate) fn remind_later(self) -> &'static str {
        self.pick("Remind me later", "稍后提醒")
    }

    pub(crate) fn skip(self) -> &'static str {
        self.pick("Skip this version", "跳过此版本")
    }

    pub(crate) fn quit(self) -> &'static str {
        self.pick("Quit", "退出")
    }

    pub(crate) fn close(self) -> &'static str {
        self.pick("Close", "关闭")
    }

    pub(crate) fn restart(self) -> &'static str {
        self.pick("Restart now", "立即重启")
    }

    pub(crate) fn try_again(self) -> &'static str {
        self.pick("Try again", "重试")
    }

    pub(crate) fn overall(self) -> &'static str {
        self.pick("Overall", "总进度")
    }

    pub(crate) fn current_task(self) -> &'static str {
        self.pick("Current step", "当前步骤")
    }

    pub(crate) fn stage(self, stage: &crate::Stage) -> String {
        use crate::Stage;
        match stage {
            Stage::Preparing => self.pick("Preparing…", "正在准备…").to_owned(),
            Stage::Downloading => self.pick("Downloading…", "正在下载…").to_owned(),
            Stage::Installing => self
                .pick("Verifying and installing…", "正在校验并安装…")
                .to_owned(),
            Stage::Finishing => self.pick("Finishing…", "正在完成…").to_owned(),
            Stage::Other(text) => text.clone(),
        }
    }

    pub(crate) fn cancelling(self) -> &'static str {
        self.pick(
            "Stopping after the current step…",
            "正在停止，当前步骤完成后退出…",
        )
    }

    /// "12.3 MB of 40.1 MB · 5.2 MB/s · 6 s left"
    pub(crate) fn detail(
        self,
        done: u64,
        total: u64,
        rate: Option<f64>,
        left: Option<Duration>,
    ) -> String {
        let mut parts = Vec::with_capacity(3);
        parts.push(if self.zh() {
            format!("{} / {}", human_bytes(done), human_bytes(total))
        } else {
            format!("{} of {}", human_bytes(done), human_bytes(total))
        });
        if let Some(rate) = rate {
            parts.push(human_rate(rate));
        }
        if let Some(left) = left {
            parts.push(self.time_left(left));
        }
        parts.join(" · ")
    }

    pub(crate) fn time_left(self, left: Duration) -> String {
        let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
        if self.zh() {
            if hours > 0 {
                format!("剩余 {hours} 小时 {minutes} 分")
            } else if minutes > 0 {
                format!("剩余 {minutes} 分 {seconds} 秒")
            } else {
                format!("剩余 {seconds} 秒")
            }
        } else if hours > 0 {
            format!("{hours} h {minutes} min left")
        } else if minutes > 0 {
            format!("{minutes} min {seconds} s left")
        } else {
            format!("{seconds} s left")
        }
    }

    pub(crate) fn success(self, restarts: bool) -> &'static str {
        if restarts {
            self.pick(
                "Update installed. The app will restart to finish the update.",
                "更新已安装。应用将重新启动以完成更新。",
            )
        } else {
            self.pick(
                "Update installed. The new version runs the next time the app starts.",
                "更新已安装。下次启动应用时将运行新版本。",
            )
        }
    }

    pub(crate) fn failure(self, error: &str) -> String {
        let error = error.trim().trim_end_matches(['.', '。']);
        if self.zh() {
            format!("更新失败：{error}。")
        } else {
            format!("The update failed: {error}.")
        }
    }

    pub(crate) fn keeps_running(self) -> &'static str {
        self.pick("The current version keeps running.", "当前版本将继续运行。")
    }

    pub(crate) fn choice_failed(self, error: &str) -> String {
        let error = error.trim().trim_end_matches(['.', '。']);
        if self.zh() {
            format!("无法保存您的选择：{error}。")
        } else {
            format!("Could not save your choice: {error}.")
        }
    }
}

/// Bytes in decimal units, one decimal from kB up: `512 B`, `12.3 MB`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    #[allow(clippy::cast_precision_loss)] // one decimal is all we show
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    // Round first so 999.96 kB shows as 1.0 MB, not 1000.0 kB.
    while (value * 10.0).round() / 10.0 >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A transfer rate: `5.2 MB/s`.
pub(crate) fn human_rate(bytes_per_second: f64) -> String {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped first
    let bytes = bytes_per_second.clamp(0.0, 1e18).round() as u64;
    format!("{}/s", human_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_locales_pick_chinese_and_everything_else_english() {
        for locale in ["zh_CN.UTF-8", "zh-Hans", "zh", "ZH_tw", "zh_SG.GB2312"] {
            assert_eq!(
                Language::from_locale(locale),
                Language::SimplifiedChinese,
                "{locale}"
            );
        }
        for locale in ["en_US.UTF-8", "C", "POSIX", "de_DE", "z", ""] {
            assert_eq!(Language::from_locale(locale), Language::English, "{locale}");
        }
    }

    #[test]
    fn lc_all_wins_over_lc_messages_over_lang_and_empty_values_are_skipped() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            Language::from_locale_vars(s("zh_CN.UTF-8"), s("en_US"), s("en_US")),
            Some(Language::SimplifiedChinese)
        );
        assert_eq!(
            Language::from_locale_vars(s(""), s("en_US"), s("zh_CN")),
            Some(Language::English)
        );
        assert_eq!(
            Language::from_locale_vars(None, s(" "), s("zh_CN.UTF-8")),
            Some(Language::SimplifiedChinese)
        );
        assert_eq!(Language::from_locale_vars(None, None, s("")), None);
    }

    #[test]
    fn the_config_setting_parses_auto_en_and_zh_cn() {
        assert_eq!("auto".parse(), Ok(LanguageSetting::Auto));
        assert_eq!("en".parse(), Ok(LanguageSetting::Fixed(Language::English)));
        assert_eq!(
            "zh-CN".parse(),
            Ok(LanguageSetting::Fixed(Language::SimplifiedChinese))
        );
        assert_eq!(
            "zh_cn".parse(),
            Ok(LanguageSetting::Fixed(Language::SimplifiedChinese))
        );
        let error = "fr".parse::<LanguageSetting>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "`fr` is not a language: use `auto`, `en` or `zh-CN`"
        );
        assert_eq!(
            Language::SimplifiedChinese.code().parse(),
            Ok(LanguageSetting::Fixed(Language::SimplifiedChinese))
        );
    }

    #[test]
    fn sizes_are_human_readable() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1000), "1.0 kB");
        assert_eq!(human_bytes(12_300_000), "12.3 MB");
        assert_eq!(human_bytes(40_149_999), "40.1 MB");
        assert_eq!(human_bytes(999_960), "1.0 MB");
        assert_eq!(human_bytes(3_200_000_000), "3.2 GB");
        assert_eq!(human_rate(5_200_000.0), "5.2 MB/s");
    }

    #[test]
    fn the_detail_line_reads_like_the_spec() {
        let en = Texts(Language::English);
        assert_eq!(
            en.detail(
                12_300_000,
                40_100_000,
                Some(5_200_000.0),
                Some(Duration::from_secs(6))
            ),
            "12.3 MB of 40.1 MB · 5.2 MB/s · 6 s left"
        );
        assert_eq!(en.detail(0, 40_100_000, None, None), "0 B of 40.1 MB");
        let zh = Texts(Language::SimplifiedChinese);
        assert_eq!(
            zh.detail(
                12_300_000,
                40_100_000,
                Some(5_200_000.0),
                Some(Duration::from_secs(125))
            ),
            "12.3 MB / 40.1 MB · 5.2 MB/s · 剩余 2 分 5 秒"
        );
        assert_eq!(
            en.time_left(Duration::from_millis(3_700_500)),
            "1 h 1 min left"
        );
        assert_eq!(en.time_left(Duration::from_millis(200)), "1 s left");
    }

    #[test]
    fn failure_sentences_end_with_one_full_stop() {
        let en = Texts(Language::English);
        assert_eq!(
            en.failure("Could not download `x`: timed out."),
            "The update failed: Could not download `x`: timed out."
        );
        let zh = Texts(Language::SimplifiedChinese);
        assert_eq!(zh.failure("磁盘已满"), "更新失败：磁盘已满。");
    }

    #[test]
    fn the_heading_follows_the_state_in_both_languages() {
        let states = [
            DialogState::Prompt,
            DialogState::Installing(crate::Progress::default()),
            DialogState::Succeeded,
            DialogState::Failed("disk full".into()),
        ];
        let heading = |language, state| Texts(language).heading(state, "1.1.0");
        let english: Vec<String> = states
            .iter()
            .map(|state| heading(Language::English, state))
            .collect();
        assert_eq!(
            english,
            [
                "Version 1.1.0 is available",
                "Installing version 1.1.0…",
                "Version 1.1.0 is installed",
                "The update could not be installed",
            ]
        );
        let chinese: Vec<String> = states
            .iter()
            .map(|state| heading(Language::SimplifiedChinese, state))
            .collect();
        assert_eq!(
            chinese,
            [
                "发现新版本 1.1.0",
                "正在安装版本 1.1.0…",
                "版本 1.1.0 已安装",
                "无法安装此更新",
            ]
        );
    }

    #[test]
    fn the_summary_names_the_app_both_versions_and_the_size() {
        let en = Texts(Language::English);
        let zh = Texts(Language::SimplifiedChinese);
        let prompt = DialogState::Prompt;
        assert_eq!(
            en.summary(&prompt, "Kuzflow", ("1.1.0", "1.0.0"), 9_700_000),
            "Kuzflow 1.1.0 is available — you have 1.0.0. Download size 9.7 MB."
        );
        assert_eq!(
            zh.summary(&prompt, "Kuzflow", ("1.1.0", "1.0.0"), 9_700_000),
            "Kuzflow 1.1.0 已发布，您当前使用的是 1.0.0。下载大小 9.7 MB。"
        );
        assert_eq!(
            en.summary(&prompt, "", ("1.1.0", "1.0.0"), 0),
            "Version 1.1.0 is available — you have 1.0.0."
        );
        assert_eq!(
            en.summary(
                &DialogState::Succeeded,
                "Kuzflow",
                ("1.1.0", "1.0.0"),
                9_700_000
            ),
            "Kuzflow is updated from 1.0.0 to 1.1.0."
        );
        assert_eq!(en.whats_new("Kuzflow"), "What's new in Kuzflow");
        assert_eq!(zh.whats_new("Kuzflow"), "Kuzflow 更新内容");
        assert_eq!(en.whats_new(""), "What's new");
        assert_eq!(en.window_title("Kuzflow"), "Kuzflow update");
        assert_eq!(zh.window_title(" "), "软件更新");
    }
}
