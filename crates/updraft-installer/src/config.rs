//! `update_config.json`: the seed's sections and keys, plus the app id,
//! channel and mirrors. A missing file means defaults; a malformed file or a
//! bad value is an error naming the key; an unknown key is a warning.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use updraft_protocol::{AppId, Channel};

use crate::error::{Error, Result};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateConfig {
    /// The app this install is (`kuzflow`).
    pub app: Option<String>,
    /// Release channel (`stable`).
    pub channel: String,
    /// Where updates come from.
    pub update_server: ServerSettings,
    /// When to check.
    pub check_settings: CheckSettings,
    /// How to download.
    pub download_settings: DownloadSettings,
    /// How to install.
    pub install_settings: InstallSettings,
    /// The update dialog.
    #[serde(default)]
    pub ui: UiSettings,
}

/// `ui`: the update dialog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UiSettings {
    /// `auto` (the system locale), `en` or `zh-CN`.
    pub language: String,
    /// The app's name as users know it (`Kuzflow`), for the dialog's title
    /// and headings; empty means the app id is shown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
}

impl Default for UiSettings {
    fn default() -> Self {
        Self {
            language: "auto".into(),
            display_name: String::new(),
        }
    }
}

/// `update_server`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerSettings {
    /// Base URL of the update server or static store.
    pub base_url: String,
    /// Further base URLs serving the same store, tried in order when one fails.
    pub mirrors: Vec<String>,
    /// API version (`v1`).
    pub api_version: String,
    /// Seconds allowed to connect and between bytes.
    pub timeout: u64,
    /// Accept plain `http://` URLs to hosts that are not loopback. Off by
    /// default: signed metadata keeps the bytes safe, but over plain HTTP
    /// anyone on the way sees which app and version this is, and its install id.
    #[serde(default)]
    pub allow_insecure_http: bool,
}

/// `check_settings`.
#[allow(clippy::struct_excessive_bools)] // the seed's keys
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckSettings {
    /// Check periodically.
    pub auto_check: bool,
    /// Seconds between checks.
    pub check_interval: u64,
    /// Check when the app starts.
    pub check_on_startup: bool,
    /// Follow the beta channel (same as `channel: "beta"`).
    pub beta_updates: bool,
    /// Seconds "Remind me later" snoozes for.
    pub remind_interval: u64,
}

/// `download_settings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownloadSettings {
    /// Ranged connections used at once for large packages.
    pub parallel_downloads: u32,
    /// Read buffer in bytes.
    pub chunk_size: u32,
    /// Retries per request before giving up (or moving to a mirror).
    pub retry_count: u32,
    /// Check TLS certificates (never turn off outside tests).
    pub verify_ssl: bool,
    /// Slowest acceptable transfer rate in bytes per second, averaged over `stall_timeout`.
    pub min_rate: u64,
    /// Seconds over which `min_rate` is measured; a slower connection is dropped and retried.
    pub stall_timeout: u64,
}

/// `install_settings`.
#[allow(clippy::struct_excessive_bools)] // the seed's keys
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstallSettings {
    /// Keep previous versions for rollback.
    pub backup_enabled: bool,
    /// How many previous versions to keep.
    pub backup_count: u32,
    /// Restart the app after an update.
    pub auto_restart: bool,
    /// Roll back automatically if the new version fails.
    pub rollback_on_failure: bool,
    /// Tell the server how installs went (`POST /api/version/report`).
    pub report_outcome: bool,
    /// Seconds a new version has to confirm a healthy start.
    pub health_timeout: u64,
    /// Launches a new version gets to confirm a healthy start.
    pub health_launches: u32,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        Self {
            app: None,
            channel: "stable".into(),
            update_server: ServerSettings {
                base_url: String::new(),
                mirrors: Vec::new(),
                api_version: "v1".into(),
                timeout: 30,
                allow_insecure_http: false,
            },
            check_settings: CheckSettings {
                auto_check: true,
                check_interval: 86_400,
                check_on_startup: true,
                beta_updates: false,
                remind_interval: 86_400,
            },
            download_settings: DownloadSettings {
                parallel_downloads: 3,
                chunk_size: 8192,
                retry_count: 3,
                verify_ssl: true,
                min_rate: 1024,
                stall_timeout: 10,
            },
            install_settings: InstallSettings {
                backup_enabled: true,
                backup_count: 3,
                auto_restart: true,
                rollback_on_failure: true,
                report_outcome: true,
                health_timeout: 300,
                health_launches: 3,
            },
            ui: UiSettings::default(),
        }
    }
}

/// A loaded configuration and the warnings it produced.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: UpdateConfig,
    /// One sentence per unknown key.
    pub warnings: Vec<String>,
}

impl UpdateConfig {
    /// Reads `path`; a missing file gives the defaults.
    pub fn load(path: &Path) -> Result<Loaded> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Loaded {
                    config: Self::default(),
                    warnings: Vec::new(),
                });
            }
            Err(e) => return Err(Error::io("read", path, e)),
        };
        Self::parse(path, &bytes)
    }

    /// Parses and validates configuration text.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Loaded> {
        let invalid = |reason: String| Error::Config {
            path: path.to_path_buf(),
            reason,
        };
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("it is not valid JSON ({e})")))?;
        let Value::Object(root) = value else {
            return Err(invalid("it must be a JSON object".into()));
        };
        let mut config = Self::default();
        let mut warnings = Vec::new();
        for (key, value) in &root {
            match key.as_str() {
                "app" => {
                    let text = string(value, "app").map_err(&invalid)?;
                    AppId::new(&text).map_err(|e| invalid(format!("`app`: {e}")))?;
                    config.app = Some(text);
                }
                "channel" => {
                    let text = string(value, "channel").map_err(&invalid)?;
                    Channel::new(&text).map_err(|e| invalid(format!("`channel`: {e}")))?;
                    config.channel = text;
                }
                "trusted_root" => {} // kept by the install in .updraft/metadata/root.json
                "update_server" => section(value, key, &mut warnings, |name, v| {
                    let s = &mut config.update_server;
                    match name {
                        "base_url" => s.base_url = url(v, "update_server.base_url")?,
                        "mirrors" => {
                            let list = v
                                .as_array()
                                .ok_or("`update_server.mirrors` must be a list of URLs")?;
                            s.mirrors = list
                                .iter()
                                .map(|m| url(m, "update_server.mirrors"))
                                .collect::<std::result::Result<_, _>>()?;
                        }
                        "api_version" => s.api_version = string(v, "update_server.api_version")?,
                        "timeout" => s.timeout = number(v, "update_server.timeout", 1, 3600)?,
                        "allow_insecure_http" => {
                            s.allow_insecure_http =
                                boolean(v, "update_server.allow_insecure_http")?;
                        }
                        _ => return Ok(false),
                    }
                    Ok(true)
                })
                .map_err(&invalid)?,
                "check_settings" => section(value, key, &mut warnings, |name, v| {
                    let s = &mut config.check_settings;
                    match name {
                        "auto_check" => s.auto_check = boolean(v, "check_settings.auto_check")?,
                        "check_interval" => {
                            s.check_interval =
                                number(v, "check_settings.check_interval", 60, 365 * 86_400)?;
                        }
                        "check_on_startup" => {
                            s.check_on_startup = boolean(v, "check_settings.check_on_startup")?;
                        }
                        "beta_updates" => {
                            s.beta_updates = boolean(v, "check_settings.beta_updates")?;
                        }
                        "remind_interval" => {
                            s.remind_interval =
                                number(v, "check_settings.remind_interval", 60, 365 * 86_400)?;
                        }
                        _ => return Ok(false),
                    }
                    Ok(true)
                })
                .map_err(&invalid)?,
                "download_settings" => section(value, key, &mut warnings, |name, v| {
                    let s = &mut config.download_settings;
                    match name {
                        "parallel_downloads" => {
                            s.parallel_downloads = u32::try_from(number(
                                v,
                                "download_settings.parallel_downloads",
                                1,
                                16,
                            )?)
                            .unwrap_or(1);
                        }
                        "chunk_size" => {
                            s.chunk_size = u32::try_from(number(
                                v,
                                "download_settings.chunk_size",
                                1024,
                                16 << 20,
                            )?)
                            .unwrap_or(8192);
                        }
                        "retry_count" => {
                            s.retry_count =
                                u32::try_from(number(v, "download_settings.retry_count", 0, 100)?)
                                    .unwrap_or(3);
                        }
                        "verify_ssl" => s.verify_ssl = boolean(v, "download_settings.verify_ssl")?,
                        "min_rate" => {
                            s.min_rate = number(v, "download_settings.min_rate", 0, 1 << 30)?;
                        }
                        "stall_timeout" => {
                            s.stall_timeout =
                                number(v, "download_settings.stall_timeout", 1, 3600)?;
                        }
                        _ => return Ok(false),
                    }
                    Ok(true)
                })
                .map_err(&invalid)?,
                "install_settings" => section(value, key, &mut warnings, |name, v| {
                    let s = &mut config.install_settings;
                    match name {
                        "backup_enabled" => {
                            s.backup_enabled = boolean(v, "install_settings.backup_enabled")?;
                        }
                        "backup_count" => {
                            s.backup_count =
                                u32::try_from(number(v, "install_settings.backup_count", 0, 100)?)
                                    .unwrap_or(3);
                        }
                        "auto_restart" => {
                            s.auto_restart = boolean(v, "install_settings.auto_restart")?;
                        }
                        "rollback_on_failure" => {
                            s.rollback_on_failure =
                                boolean(v, "install_settings.rollback_on_failure")?;
                        }
                        "health_timeout" => {
                            s.health_timeout =
                                number(v, "install_settings.health_timeout", 1, 7 * 86_400)?;
                        }
                        "health_launches" => {
                            s.health_launches = u32::try_from(number(
                                v,
                                "install_settings.health_launches",
                                1,
                                100,
                            )?)
                            .unwrap_or(3);
                        }
                        "report_outcome" => {
                            s.report_outcome = boolean(v, "install_settings.report_outcome")?;
                        }
                        _ => return Ok(false),
                    }
                    Ok(true)
                })
                .map_err(&invalid)?,
                "ui" => section(value, key, &mut warnings, |name, v| {
                    match name {
                        "language" => {
                            let text = string(v, "ui.language")?;
                            if !["auto", "en", "zh-CN"].contains(&text.as_str()) {
                                return Err(format!(
                                    "`ui.language` must be `auto`, `en` or `zh-CN`, not `{text}`"
                                ));
                            }
                            config.ui.language = text;
                        }
                        "display_name" => {
                            let text = string(v, "ui.display_name")?;
                            config.ui.display_name = text.trim().into();
                        }
                        _ => return Ok(false),
                    }
                    Ok(true)
                })
                .map_err(&invalid)?,
                other => warnings.push(format!(
                    "`{}`: unknown key `{other}` is ignored",
                    path.display()
                )),
            }
        }
        if config.check_settings.beta_updates && config.channel == "stable" {
            config.channel = "beta".into();
        }
        Ok(Loaded {
            config,
            warnings: warnings
                .into_iter()
                .map(|w| w.replace("{file}", &path.display().to_string()))
                .collect(),
        })
    }

    /// Every base URL with the key it comes from
    /// (`update_server.base_url`, `update_server.mirrors`), the primary first.
    pub fn keyed_base_urls(&self) -> Vec<(&'static str, &str)> {
        std::iter::once((
            "update_server.base_url",
            self.update_server.base_url.as_str(),
        ))
        .chain(
            self.update_server
                .mirrors
                .iter()
                .map(|m| ("update_server.mirrors", m.as_str())),
        )
        .filter(|(_, u)| !u.is_empty())
        .collect()
    }

    /// Every base URL, the primary first.
    pub fn base_urls(&self) -> Vec<String> {
        self.keyed_base_urls()
            .into_iter()
            .map(|(_, url)| url.to_owned())
            .collect()
    }

    /// Writes the configuration as pretty JSON, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("configuration serialises");
        bytes.push(b'\n');
        updraft_fs::write_atomic(path, &bytes)?;
        Ok(())
    }
}

type Field = std::result::Result<bool, String>;

fn section(
    value: &Value,
    key: &str,
    warnings: &mut Vec<String>,
    mut set: impl FnMut(&str, &Value) -> Field,
) -> std::result::Result<(), String> {
    let Value::Object(map) = value else {
        return Err(format!("`{key}` must be an object"));
    };
    let map: &Map<String, Value> = map;
    for (name, value) in map {
        if !set(name, value)? {
            warnings.push(format!("`{{file}}`: unknown key `{key}.{name}` is ignored"));
        }
    }
    Ok(())
}

fn string(value: &Value, key: &str) -> std::result::Result<String, String> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("`{key}` must be a string, not `{value}`"))
}

fn boolean(value: &Value, key: &str) -> std::result::Result<bool, String> {
    value
        .as_bool()
        .ok_or_else(|| format!("`{key}` must be true or false, not `{value}`"))
}

fn number(value: &Value, key: &str, min: u64, max: u64) -> std::result::Result<u64, String> {
    value
        .as_u64()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("`{key}` must be a whole number from {min} to {max}, not `{value}`"))
}

fn url(value: &Value, key: &str) -> std::result::Result<String, String> {
    let text = string(value, key)?;
    if !(text.starts_with("http://") || text.starts_with("https://") || text.starts_with("file://"))
    {
        return Err(format!(
            "`{key}` must be an http://, https:// or file:// URL, not `{text}`"
        ));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Loaded> {
        UpdateConfig::parse(Path::new("update_config.json"), text.as_bytes())
    }

    #[test]
    fn the_seed_example_parses() {
        let loaded = parse(
            r#"{
  "update_server": {"base_url": "https://updates.example.com", "api_version": "v1", "timeout": 30},
  "check_settings": {"auto_check": true, "check_interval": 86400, "check_on_startup": true, "beta_updates": false},
  "download_settings": {"parallel_downloads": 3, "chunk_size": 8192, "retry_count": 3, "verify_ssl": true},
  "install_settings": {"backup_enabled": true, "backup_count": 3, "auto_restart": true, "rollback_on_failure": true}
}"#,
        )
        .unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(
            loaded.config.update_server.base_url,
            "https://updates.example.com"
        );
        assert_eq!(loaded.config.download_settings.parallel_downloads, 3);
    }

    #[test]
    fn bad_values_name_the_key_and_unknown_keys_warn() {
        for (text, words) in [
            (
                r#"{"download_settings": {"parallel_downloads": 0}}"#,
                "`download_settings.parallel_downloads` must be a whole number from 1 to 16",
            ),
            (
                r#"{"update_server": {"base_url": "ftp://x"}}"#,
                "`update_server.base_url` must be an http://",
            ),
            (
                r#"{"check_settings": {"auto_check": "yes"}}"#,
                "`check_settings.auto_check` must be true or false",
            ),
            (r#"{"channel": "Beta"}"#, "`channel`"),
            (
                r#"{"update_server": {"allow_insecure_http": "yes"}}"#,
                "`update_server.allow_insecure_http` must be true or false",
            ),
            ("[1]", "must be a JSON object"),
            ("{", "not valid JSON"),
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(
                error.contains(words) && error.contains("update_config.json"),
                "{text}: {error}"
            );
        }
        let loaded = parse(r#"{"check_settings": {"auto_chek": true}, "colour": "blue"}"#).unwrap();
        assert_eq!(loaded.warnings.len(), 2);
        assert!(
            loaded.warnings[0].contains("`check_settings.auto_chek`"),
            "{:?}",
            loaded.warnings
        );
        assert_eq!(loaded.config, UpdateConfig::default());
    }

    #[test]
    fn allow_insecure_http_is_read_and_off_by_default() {
        assert!(!UpdateConfig::default().update_server.allow_insecure_http);
        let loaded = parse(
            r#"{"update_server": {"base_url": "http://updates.lan", "mirrors": ["https://m.example.com"], "allow_insecure_http": true}}"#,
        )
        .unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert!(loaded.config.update_server.allow_insecure_http);
        assert_eq!(
            loaded.config.keyed_base_urls(),
            vec![
                ("update_server.base_url", "http://updates.lan"),
                ("update_server.mirrors", "https://m.example.com")
            ]
        );
    }

    #[test]
    fn beta_updates_selects_the_beta_channel_and_a_missing_file_is_defaults() {
        assert_eq!(
            parse(r#"{"check_settings": {"beta_updates": true}}"#)
                .unwrap()
                .config
                .channel,
            "beta"
        );
        let dir = tempfile::tempdir().unwrap();
        let loaded = UpdateConfig::load(&dir.path().join("missing.json")).unwrap();
        assert_eq!(loaded.config, UpdateConfig::default());
    }

    #[test]
    fn the_display_name_is_read_trimmed_and_empty_by_default() {
        let loaded = parse(r#"{"ui": {"display_name": " Kuzflow ", "language": "en"}}"#).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(loaded.config.ui.display_name, "Kuzflow");
        assert_eq!(UpdateConfig::default().ui.display_name, "");
        let error = parse(r#"{"ui": {"display_name": 3}}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("`ui.display_name`"), "{error}");
    }
}
