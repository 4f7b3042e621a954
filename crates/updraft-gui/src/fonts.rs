//! A CJK font for Chinese text.
//!
//! egui's built-in fonts cover Latin and Cyrillic only, and a CJK font is too
//! large (5–20 MB) to embed in every app. So the dialog uses one the system
//! already has: `UPDRAFT_CJK_FONT` if set, else the first of a list of
//! well-known files (Noto Sans CJK, WenQuanYi, Droid Sans Fallback on Linux;
//! Microsoft YaHei and SimSun on Windows; PingFang and STHeiti on macOS). It
//! is added after egui's fonts, so Latin text keeps its look.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use eframe::egui::{self, FontData, FontFamily, FontInsert, FontPriority, InsertFontFamily};

/// The environment variable naming a CJK font file to use instead of searching.
pub const CJK_FONT_ENV: &str = "UPDRAFT_CJK_FONT";

const FONT_NAME: &str = "updraft-cjk";

/// A font file and the face to use in it (a `.ttc` holds several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CjkFont {
    /// The font file.
    pub path: PathBuf,
    /// The face index in a collection (`.ttc`); 0 for a single font.
    pub index: u32,
}

/// Where systems keep a font with Simplified Chinese glyphs, best first:
/// (path, face index). Noto Sans CJK's collections put SC at index 2.
fn candidates() -> Vec<(PathBuf, u32)> {
    let mut list: Vec<(PathBuf, u32)> = Vec::new();
    if cfg!(windows) {
        let windows =
            std::env::var_os("WINDIR").map_or_else(|| PathBuf::from(r"C:\Windows"), PathBuf::from);
        let fonts = windows.join("Fonts");
        for (file, index) in [
            ("msyh.ttc", 0),
            ("msyh.ttf", 0),
            ("simsun.ttc", 0),
            ("simhei.ttf", 0),
            ("Deng.ttf", 0),
        ] {
            list.push((fonts.join(file), index));
        }
    } else if cfg!(target_os = "macos") {
        for (path, index) in [
            ("/System/Library/Fonts/PingFang.ttc", 0),
            ("/System/Library/Fonts/STHeiti Light.ttc", 0),
            ("/System/Library/Fonts/STHeiti Medium.ttc", 0),
            ("/System/Library/Fonts/Hiragino Sans GB.ttc", 0),
            ("/Library/Fonts/Arial Unicode.ttf", 0),
        ] {
            list.push((PathBuf::from(path), index));
        }
    } else {
        for (path, index) in [
            // Debian/Ubuntu fonts-noto-cjk, Fedora, Arch.
            ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
            (
                "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
                2,
            ),
            ("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc", 2),
            ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 2),
            // fonts-wqy-microhei, fonts-wqy-zenhei (Debian; Arch).
            ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
            (
                "/usr/share/fonts/wenquanyi/wqy-microhei/wqy-microhei.ttc",
                0,
            ),
            ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
            ("/usr/share/fonts/wenquanyi/wqy-zenhei/wqy-zenhei.ttc", 0),
            // fonts-droid-fallback, fonts-arphic-uming.
            (
                "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
                0,
            ),
            ("/usr/share/fonts/truetype/arphic/uming.ttc", 0),
        ] {
            list.push((PathBuf::from(path), index));
        }
    }
    list
}

/// Whether `bytes` start like a TrueType/OpenType font or collection.
fn looks_like_font(bytes: &[u8]) -> bool {
    matches!(
        bytes.get(..4),
        Some(b"ttcf" | b"OTTO" | b"true" | [0, 1, 0, 0])
    )
}

/// Finds a CJK font: the file named by `UPDRAFT_CJK_FONT`, else the first
/// well-known one present. Only checks that the file exists.
pub fn find_cjk_font() -> Option<CjkFont> {
    if let Some(path) = std::env::var_os(CJK_FONT_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Some(CjkFont { path, index: 0 });
        }
        tracing::warn!(
            "{CJK_FONT_ENV} names `{}`, which is not a file; looking for a system CJK font",
            path.display()
        );
    }
    candidates()
        .into_iter()
        .find(|(path, _)| path.is_file())
        .map(|(path, index)| CjkFont { path, index })
}

fn read_font(font: &CjkFont) -> Option<Vec<u8>> {
    match std::fs::read(&font.path) {
        Ok(bytes) if looks_like_font(&bytes) => Some(bytes),
        Ok(_) => {
            tracing::warn!(
                "`{}` is not a TrueType or OpenType font",
                font.path.display()
            );
            None
        }
        Err(error) => {
            tracing::warn!("Could not read the font `{}`: {error}", font.path.display());
            None
        }
    }
}

/// The font this context got from [`install_cjk_font`], remembered so the
/// file is read once per context.
#[derive(Clone)]
struct Installed(Option<Arc<Path>>);

/// Loads a CJK font (see [`find_cjk_font`]) into `ctx` as the last fallback
/// of both font families, once per context. Returns the file loaded, or
/// `None` (after a warning) when there is none.
pub fn install_cjk_font(ctx: &egui::Context) -> Option<PathBuf> {
    let id = egui::Id::unique(FONT_NAME);
    if let Some(Installed(done)) = ctx.data(|data| data.get_temp::<Installed>(id)) {
        return done.map(|path| path.to_path_buf());
    }
    let loaded = find_cjk_font().and_then(|font| {
        let bytes = read_font(&font)?;
        let data = FontData {
            index: font.index,
            ..FontData::from_owned(bytes)
        };
        let families = [FontFamily::Proportional, FontFamily::Monospace]
            .into_iter()
            .map(|family| InsertFontFamily {
                family,
                priority: FontPriority::Lowest,
            })
            .collect();
        ctx.add_font(FontInsert::new(FONT_NAME, data, families));
        tracing::debug!("CJK font: `{}` (face {})", font.path.display(), font.index);
        Some(font.path)
    });
    if loaded.is_none() {
        tracing::debug!("No CJK font found");
    }
    ctx.data_mut(|data| data.insert_temp(id, Installed(loaded.as_deref().map(Arc::from))));
    loaded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn font_files_are_recognised_by_their_magic() {
        assert!(looks_like_font(b"ttcf\0\x02"));
        assert!(looks_like_font(&[0, 1, 0, 0, 0, 12]));
        assert!(looks_like_font(b"OTTO...."));
        assert!(!looks_like_font(b"<html>"));
        assert!(!looks_like_font(b"tt"));
    }

    #[test]
    fn every_platform_has_candidates() {
        assert!(!candidates().is_empty());
    }
}
