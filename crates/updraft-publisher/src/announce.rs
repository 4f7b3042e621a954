//! Release announcements: an HTML changelog per app and an Atom 1.0 feed per
//! app and channel, rendered from the signed release info (notes are
//! Markdown). `publish`, `rollout` and `repo refresh` write them into the
//! store (`changelog/{app}/index.html`, `feeds/{app}/{channel}.atom`) so a
//! static host serves them; the server renders the same pages live.
//!
//! Notes are untrusted text: raw HTML in them is shown as text, and links
//! other than `http`, `https`, `mailto` and relative ones are dropped.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};
use sha2::{Digest, Sha256};
use updraft_protocol::{AppId, Channel, ReleaseInfo, Version};

/// One version of an app on one channel, over all its platforms.
#[derive(Debug, Clone)]
pub struct Announcement<'a> {
    /// The release (of its first platform).
    pub info: &'a ReleaseInfo,
    /// Every `platform/arch` it was published for.
    pub platforms: Vec<String>,
}

/// Groups `releases` of `app` by channel, newest version first, leaving out
/// yanked ones.
pub fn by_channel<'a>(
    releases: impl IntoIterator<Item = &'a ReleaseInfo>,
    app: &AppId,
) -> BTreeMap<Channel, Vec<Announcement<'a>>> {
    let mut grouped: BTreeMap<Channel, BTreeMap<Version, Announcement<'a>>> = BTreeMap::new();
    for info in releases {
        if info.app != *app || info.yanked {
            continue;
        }
        let entry = grouped
            .entry(info.channel.clone())
            .or_default()
            .entry(info.version.clone())
            .or_insert_with(|| Announcement {
                info,
                platforms: Vec::new(),
            });
        entry
            .platforms
            .push(format!("{}/{}", info.platform, info.arch));
    }
    grouped
        .into_iter()
        .map(|(channel, versions)| {
            let mut list: Vec<Announcement<'a>> = versions.into_values().rev().collect();
            for item in &mut list {
                item.platforms.sort();
                item.platforms.dedup();
            }
            (channel, list)
        })
        .collect()
}

/// Escapes text for HTML and XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0.
            c if c.is_control() && c != '\n' && c != '\t' && c != '\r' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    match lower.find(':') {
        // A scheme comes before any `/`, `?` or `#`.
        Some(colon) if !lower[..colon].contains(['/', '?', '#']) => {
            ["http", "https", "mailto"].contains(&&lower[..colon])
        }
        _ => true,
    }
}

/// Markdown to HTML with raw HTML shown as text and unsafe links dropped.
pub fn notes_html(markdown: &str) -> String {
    let events = Parser::new_ext(
        markdown,
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH,
    )
    .map(|event| match event {
        Event::Html(html) | Event::InlineHtml(html) => Event::Text(html),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe_url(&dest_url) => Event::Start(Tag::Link {
            link_type,
            dest_url: CowStr::Borrowed("#"),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe_url(&dest_url) => Event::Start(Tag::Image {
            link_type,
            dest_url: CowStr::Borrowed("#"),
            title,
            id,
        }),
        other => other,
    });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events);
    out
}

/// The anchor of a release on the changelog page.
pub fn anchor(channel: &Channel, version: &Version) -> String {
    format!("{channel}-v{version}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A stable `urn:uuid:` from `parts` (a SHA-256 name-based UUID, version 8).
fn urn(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let mut bytes: [u8; 16] = hasher.finalize()[..16].try_into().expect("16 bytes");
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Where the pages link to: absolute under a base URL (the server) or
/// relative to the files in the store (a static host).
#[derive(Debug, Clone, Copy)]
pub enum Links<'a> {
    /// `https://updates.example.com` (no trailing slash).
    Absolute(&'a str),
    /// Relative links between `changelog/{app}/index.html` and `feeds/{app}/*.atom`.
    Relative,
}

impl Links<'_> {
    fn changelog_from_feed(self, app: &AppId) -> String {
        match self {
            Links::Absolute(base) => format!("{base}/changelog/{app}"),
            Links::Relative => format!("../../changelog/{app}/index.html"),
        }
    }

    fn feed_from_feed(self, app: &AppId, channel: &Channel) -> String {
        match self {
            Links::Absolute(base) => format!("{base}/feeds/{app}/{channel}.atom"),
            Links::Relative => format!("{channel}.atom"),
        }
    }

    fn feed_from_changelog(self, app: &AppId, channel: &Channel) -> String {
        match self {
            Links::Absolute(base) => format!("{base}/feeds/{app}/{channel}.atom"),
            Links::Relative => format!("../../feeds/{app}/{channel}.atom"),
        }
    }
}

/// The changelog page of `app`: every channel, newest release first.
pub fn changelog_page<'a>(
    releases: impl IntoIterator<Item = &'a ReleaseInfo>,
    app: &AppId,
    links: Links<'_>,
) -> String {
    let channels = by_channel(releases, app);
    let app_text = escape(app.as_str());
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{app_text} release notes</title>\n"
    );
    for channel in channels.keys() {
        let _ = writeln!(
            out,
            "<link rel=\"alternate\" type=\"application/atom+xml\" title=\"{app_text} ({}) releases\" href=\"{}\">",
            escape(channel.as_str()),
            escape(&links.feed_from_changelog(app, channel))
        );
    }
    out.push_str(
        "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;color:#222}\
         h2{border-bottom:1px solid #ccc}article{margin:1.5rem 0}.meta{color:#666;font-size:.9em}</style>\n\
         </head>\n<body>\n",
    );
    let _ = writeln!(out, "<h1>{app_text} release notes</h1>");
    if channels.is_empty() {
        out.push_str("<p>No releases yet.</p>\n");
    }
    for (channel, list) in &channels {
        let channel_text = escape(channel.as_str());
        let _ = writeln!(
            out,
            "<section id=\"{channel_text}\">\n<h2>{channel_text} <a class=\"meta\" href=\"{}\">Atom feed</a></h2>",
            escape(&links.feed_from_changelog(app, channel))
        );
        for item in list {
            let info = item.info;
            let _ = writeln!(
                out,
                "<article id=\"{}\">\n<h3>{app_text} {}</h3>\n<p class=\"meta\">{} · {}</p>\n{}</article>",
                escape(&anchor(channel, &info.version)),
                escape(&info.version.to_string()),
                escape(&info.release_date),
                escape(&item.platforms.join(", ")),
                notes_html(&info.notes)
            );
        }
        out.push_str("</section>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// The Atom 1.0 feed of `app` on `channel`, newest release first.
pub fn atom_feed<'a>(
    releases: impl IntoIterator<Item = &'a ReleaseInfo>,
    app: &AppId,
    channel: &Channel,
    links: Links<'_>,
) -> String {
    let channels = by_channel(releases, app);
    let list = channels.get(channel).map_or(&[][..], Vec::as_slice);
    let updated = list
        .iter()
        .map(|item| item.info.release_date.as_str())
        .max()
        .unwrap_or("1970-01-01T00:00:00Z");
    let app_text = escape(app.as_str());
    let changelog = links.changelog_from_feed(app);
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n\
         <id>{}</id>\n<title>{app_text} releases ({})</title>\n<updated>{}</updated>\n\
         <author><name>{app_text}</name></author>\n<generator>updraft</generator>\n\
         <link rel=\"self\" type=\"application/atom+xml\" href=\"{}\"/>\n\
         <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>\n",
        urn(&["updraft feed", app.as_str(), channel.as_str()]),
        escape(channel.as_str()),
        escape(updated),
        escape(&links.feed_from_feed(app, channel)),
        escape(&changelog),
    );
    for item in list {
        let info = item.info;
        let version = info.version.to_string();
        let _ = write!(
            out,
            "<entry>\n<id>{}</id>\n<title>{app_text} {}</title>\n<updated>{date}</updated>\n\
             <published>{date}</published>\n<link rel=\"alternate\" type=\"text/html\" href=\"{}#{}\"/>\n\
             <summary>{}</summary>\n<content type=\"html\">{}</content>\n</entry>\n",
            urn(&["updraft release", app.as_str(), channel.as_str(), &version]),
            escape(&version),
            escape(&changelog),
            escape(&anchor(channel, &info.version)),
            escape(&format!(
                "{app} {version} for {}",
                item.platforms.join(", ")
            )),
            escape(&notes_html(&info.notes)),
            date = escape(&info.release_date),
        );
    }
    out.push_str("</feed>\n");
    out
}

/// Every announcement file for the store, by store-relative path.
pub fn store_files(releases: &[&ReleaseInfo]) -> BTreeMap<String, Vec<u8>> {
    let releases = releases.iter().copied();
    let mut out = BTreeMap::new();
    let mut apps: Vec<&AppId> = releases.clone().map(|r| &r.app).collect();
    apps.sort();
    apps.dedup();
    for app in apps {
        out.insert(
            format!("changelog/{app}/index.html"),
            changelog_page(releases.clone(), app, Links::Relative).into_bytes(),
        );
        for channel in by_channel(releases.clone(), app).keys() {
            out.insert(
                format!("feeds/{app}/{channel}.atom"),
                atom_feed(releases.clone(), app, channel, Links::Relative).into_bytes(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_notes_are_shown_as_text_and_unsafe_links_dropped() {
        let html = notes_html(
            "# Fixes\n<script>alert(1)</script>\n\nclick [me](javascript:alert(2)) or [docs](https://example.com/a?b=1&c=2) \
             <img src=x onerror=alert(3)> ![i](data:text/html,x)",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<img src=\"x\""), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(!html.contains("data:text"), "{html}");
        assert!(
            html.contains("href=\"https://example.com/a?b=1&amp;c=2\""),
            "{html}"
        );
        assert!(html.contains("<h1>Fixes</h1>"), "{html}");
    }

    #[test]
    fn ids_are_stable_uuids() {
        let a = urn(&["x", "y"]);
        assert_eq!(a, urn(&["x", "y"]));
        assert_ne!(a, urn(&["xy", ""]));
        assert_eq!(a.len(), "urn:uuid:".len() + 36);
        assert_eq!(&a[9 + 14..9 + 15], "8");
    }
}
