//! [`OfferView`]: what the dialog shows of an offer.

use updraft_client::Offer;

/// What the dialog shows of an update offer. Build it from an
/// [`updraft_client::Offer`] (`OfferView::from(&offer)`), or by hand:
///
/// ```
/// use updraft_gui::OfferView;
/// let offer = OfferView {
///     file_size: 40_100_000,
///     changelog: "- Faster downloads".into(),
///     ..OfferView::new("1.1.0", "1.0.0")
/// };
/// assert_eq!(offer.notes(), [("1.1.0", "- Faster downloads")]);
/// ```
///
/// The dialog names the app by `display_name` ("What's new in Kuzflow"),
/// or by `app_id` when no display name is given:
///
/// ```
/// use updraft_gui::OfferView;
/// let offer = OfferView { app_id: "kuzflow".into(), ..OfferView::new("1.1.0", "1.0.0") };
/// assert_eq!(offer.app_name(), "kuzflow");
/// assert_eq!(offer.with_display_name("Kuzflow").app_name(), "Kuzflow");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OfferView {
    /// The app's id (`kuzflow`), the name shown when there is no display name.
    pub app_id: String,
    /// The app's name as users know it (`Kuzflow`); empty when unknown.
    pub display_name: String,
    /// The version offered.
    pub version: String,
    /// The installed version.
    pub current_version: String,
    /// A forced update: the user may install or quit, not skip or wait.
    pub force_update: bool,
    /// Download size in bytes (0 hides it).
    pub file_size: u64,
    /// Release date, RFC 3339 or a plain date (empty hides it).
    pub release_date: String,
    /// Markdown notes of the offered version.
    pub changelog: String,
    /// Markdown notes of every version between the installed and the
    /// offered one, newest first: (version, notes).
    pub changelogs: Vec<(String, String)>,
}

impl OfferView {
    /// An offer of `version` to an install of `current_version`, with no
    /// size, date or notes.
    pub fn new(version: impl Into<String>, current_version: impl Into<String>) -> Self {
        Self {
            version: version.into(),
            current_version: current_version.into(),
            ..Self::default()
        }
    }

    /// The same offer, naming the app `display_name` (a blank name is ignored).
    #[must_use]
    pub fn with_display_name(mut self, display_name: impl Into<String>) -> Self {
        let display_name = display_name.into();
        if !display_name.trim().is_empty() {
            display_name.trim().clone_into(&mut self.display_name);
        }
        self
    }

    /// The name the dialog calls the app: the display name, else the app
    /// id (empty when neither is known).
    pub fn app_name(&self) -> &str {
        [&self.display_name, &self.app_id]
            .into_iter()
            .map(|name| name.trim())
            .find(|name| !name.is_empty())
            .unwrap_or("")
    }

    /// The notes to show, newest first: every version's from `changelogs`,
    /// or else the offered version's `changelog`. Empty notes are left out.
    pub fn notes(&self) -> Vec<(&str, &str)> {
        let notes: Vec<(&str, &str)> = self
            .changelogs
            .iter()
            .map(|(version, notes)| (version.as_str(), notes.as_str()))
            .filter(|(_, notes)| !notes.trim().is_empty())
            .collect();
        if notes.is_empty() && !self.changelog.trim().is_empty() {
            return vec![(self.version.as_str(), self.changelog.as_str())];
        }
        notes
    }

    /// The release day (`2024-09-02` of `2024-09-02T10:00:00Z`), if known.
    pub fn release_day(&self) -> Option<&str> {
        let date = self.release_date.trim();
        if date.is_empty() {
            return None;
        }
        match date.get(..10) {
            Some(day)
                if date
                    .as_bytes()
                    .get(10)
                    .is_some_and(|c| matches!(c, b'T' | b't' | b' ')) =>
            {
                Some(day)
            }
            _ => Some(date),
        }
    }
}

impl From<&Offer> for OfferView {
    fn from(offer: &Offer) -> Self {
        Self {
            app_id: offer.app().to_owned(),
            display_name: String::new(),
            version: offer.version.clone(),
            current_version: offer.current_version.clone(),
            force_update: offer.force_update,
            file_size: offer.file_size,
            release_date: offer.release_date.clone(),
            changelog: offer.changelog.clone(),
            changelogs: offer.changelogs.clone(),
        }
    }
}

impl From<Offer> for OfferView {
    fn from(offer: Offer) -> Self {
        Self::from(&offer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_between_is_shown_and_the_single_changelog_is_the_fallback() {
        let mut offer = OfferView {
            changelog: "three".into(),
            changelogs: vec![
                ("1.3.0".into(), "three".into()),
                ("1.2.0".into(), "  ".into()),
                ("1.1.0".into(), "one".into()),
            ],
            ..OfferView::new("1.3.0", "1.0.0")
        };
        assert_eq!(offer.notes(), [("1.3.0", "three"), ("1.1.0", "one")]);
        offer.changelogs.clear();
        assert_eq!(offer.notes(), [("1.3.0", "three")]);
        offer.changelog.clear();
        assert!(offer.notes().is_empty());
    }

    #[test]
    fn the_display_name_wins_and_the_app_id_is_the_fallback() {
        let offer = OfferView {
            app_id: "kuzflow-demo".into(),
            ..OfferView::new("1.1.0", "1.0.0")
        };
        assert_eq!(offer.app_name(), "kuzflow-demo");
        let named = offer.clone().with_display_name(" Kuzflow ");
        assert_eq!(named.app_name(), "Kuzflow");
        assert_eq!(
            offer.clone().with_display_name("  ").app_name(),
            "kuzflow-demo"
        );
        assert_eq!(OfferView::new("1.1.0", "1.0.0").app_name(), "");
    }

    #[test]
    fn release_days_drop_the_time() {
        let day = |date: &str| {
            OfferView {
                release_date: date.into(),
                ..OfferView::default()
            }
            .release_day()
            .map(str::to_owned)
        };
        assert_eq!(day("2024-09-02T10:00:00Z").as_deref(), Some("2024-09-02"));
        assert_eq!(day("2024-09-02").as_deref(), Some("2024-09-02"));
        assert_eq!(day("soon").as_deref(), Some("soon"));
        assert_eq!(day(""), None);
    }
}
