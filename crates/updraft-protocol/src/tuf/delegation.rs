//! Delegated targets (spec §5.6.7): which roles may sign which paths, and
//! the pre-order depth-first search that finds the one role trusted for a
//! target path.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{PublicKey, RoleKeys, RoleName, Targets};

/// Most roles (top-level targets included) visited in one search, as python-tuf.
pub const MAX_DELEGATIONS: usize = 32;

/// The `delegations` object of a targets role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegations {
    /// Keys of the delegated roles, by id.
    pub keys: BTreeMap<String, PublicKey>,
    /// The delegated roles, in priority order.
    #[serde(default)]
    pub roles: Vec<DelegatedRole>,
    /// Unknown fields (`succinct_roles` among them, which updraft does not follow).
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}

/// One delegation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegatedRole {
    /// The role's name (its metadata is `{name}.json`, percent-encoded on disk).
    pub name: String,
    /// Keys that may sign for it.
    pub keyids: Vec<String>,
    /// How many distinct keys must sign.
    pub threshold: u64,
    /// When true, a search that reaches this role for a path it matches goes no further.
    #[serde(default)]
    pub terminating: bool,
    /// Shell-style patterns of the paths it may sign (`*` does not cross `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Hex prefixes of the SHA-256 of the paths it may sign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hash_prefixes: Option<Vec<String>>,
    /// Unknown fields, kept verbatim.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}

impl DelegatedRole {
    /// True when this role may sign `path` (python-tuf's `is_delegated_path`).
    pub fn is_delegated_path(&self, path: &str) -> bool {
        if let Some(patterns) = &self.paths {
            return patterns.iter().any(|p| path_matches(path, p));
        }
        if let Some(prefixes) = &self.path_hash_prefixes {
            let digest = hex::encode(Sha256::digest(path.as_bytes()));
            return prefixes.iter().any(|p| digest.starts_with(p.as_str()));
        }
        false
    }

    /// The keys and threshold, as a top-level role lists them.
    pub fn role_keys(&self) -> RoleKeys {
        RoleKeys {
            keyids: self.keyids.clone(),
            threshold: self.threshold,
            unrecognized: Map::new(),
        }
    }
}

impl Delegations {
    /// Schema rules python-tuf enforces: unique names that are not top-level
    /// roles, known key ids, a threshold of at least 1, and exactly one of
    /// `paths` and `path_hash_prefixes`.
    pub(crate) fn check(&self) -> Result<(), String> {
        let mut names = HashSet::new();
        for role in &self.roles {
            let name = &role.name;
            if name.is_empty() || RoleName::ALL.iter().any(|r| r.as_str() == name) {
                return Err(format!("`{name}` cannot be the name of a delegated role"));
            }
            if !names.insert(name.as_str()) {
                return Err(format!("the delegated role `{name}` is listed twice"));
            }
            if role.threshold == 0 {
                return Err(format!("the delegated role `{name}` has a threshold of 0"));
            }
            let mut seen = HashSet::new();
            for id in &role.keyids {
                if !seen.insert(id) {
                    return Err(format!(
                        "the delegated role `{name}` lists key `{id}` twice"
                    ));
                }
                if !self.keys.contains_key(id) {
                    return Err(format!(
                        "the delegated role `{name}` names key `{id}`, which is not in `keys`"
                    ));
                }
            }
            if role.paths.is_some() == role.path_hash_prefixes.is_some() {
                return Err(format!(
                    "the delegated role `{name}` must have exactly one of `paths` and `path_hash_prefixes`"
                ));
            }
        }
        Ok(())
    }

    /// The roles trusted for `path`, in order, each with its `terminating`
    /// flag; the list stops after the first terminating one.
    pub fn roles_for_target(&self, path: &str) -> Vec<(&DelegatedRole, bool)> {
        let mut out = Vec::new();
        for role in &self.roles {
            if role.is_delegated_path(path) {
                out.push((role, role.terminating));
                if role.terminating {
                    break;
                }
            }
        }
        out
    }
}

/// python-tuf's `_is_target_in_pathpattern`: the path and the pattern have
/// the same number of `/`-separated parts, and each part matches with
/// `fnmatch` rules (`*`, `?`, `[seq]`, `[!seq]`), case-sensitively.
pub fn path_matches(path: &str, pattern: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let patterns: Vec<&str> = pattern.split('/').collect();
    parts.len() == patterns.len()
        && parts
            .iter()
            .zip(&patterns)
            .all(|(part, pattern)| fnmatch(part.as_bytes(), pattern.as_bytes()))
}

fn fnmatch(text: &[u8], pattern: &[u8]) -> bool {
    // Iterative glob with single-star backtracking over bytes; `[` sets are
    // matched on bytes too (python matches code points; a non-ASCII set
    // member is rare in target paths and never matches more here).
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    t += 1;
                    p += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = match_set(text[t], &pattern[p..]) {
                        if matched {
                            t += 1;
                            p += next;
                            continue;
                        }
                    } else if text[t] == b'[' {
                        // No closing `]`: a literal `[`.
                        t += 1;
                        p += 1;
                        continue;
                    }
                }
                literal if literal == text[t] => {
                    t += 1;
                    p += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((star_p, star_t)) => {
                p = star_p + 1;
                t = star_t + 1;
                star = Some((star_p, star_t + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// Matches `byte` against the set at the start of `pattern` (which begins
/// with `[`); returns whether it matched and the set's length, or None when
/// the set is not closed.
fn match_set(byte: u8, pattern: &[u8]) -> Option<(bool, usize)> {
    let mut i = 1;
    let negated = matches!(pattern.get(i), Some(b'!'));
    if negated {
        i += 1;
    }
    let start = i;
    let mut matched = false;
    loop {
        let &c = pattern.get(i)?;
        if c == b']' && i > start {
            return Some((matched != negated, i + 1));
        }
        if pattern.get(i + 1) == Some(&b'-') && pattern.get(i + 2).is_some_and(|&e| e != b']') {
            let end = pattern[i + 2];
            if c <= byte && byte <= end {
                matched = true;
            }
            i += 3;
        } else {
            if c == byte {
                matched = true;
            }
            i += 1;
        }
    }
}

/// A role name as it appears in a file name: percent-encoded like Python's
/// `quote(name, safe="")` (python-tuf's rule), so `/`, `..` tricks and
/// control characters never reach the file system or a URL path.
pub fn role_file_stem(role: &str) -> String {
    let mut out = String::with_capacity(role.len());
    for byte in role.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The outcome of looking a path up through the delegations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// Found in role `.1`.
    Found(&'a super::TargetFile, &'a str),
    /// No trusted role lists it.
    NotFound,
    /// The search needed role `.0`, whose metadata is missing or not trusted.
    Unavailable(String),
}

/// Spec §5.6.7's pre-order depth-first search for `path`, over roles
/// already loaded: `roles(name)` gives a delegated role's verified targets.
/// Each role is visited once (cycles end), at most [`MAX_DELEGATIONS`] in all.
pub fn find_target<'a>(
    path: &str,
    top: &'a Targets,
    roles: impl Fn(&str) -> Option<&'a Targets>,
) -> Lookup<'a> {
    let mut to_visit: Vec<&'a str> = vec!["targets"];
    let mut visited: HashSet<&str> = HashSet::new();
    while visited.len() < MAX_DELEGATIONS {
        let Some(name) = to_visit.pop() else {
            break;
        };
        if visited.contains(name) {
            continue;
        }
        let targets = if name == "targets" {
            top
        } else {
            match roles(name) {
                Some(targets) => targets,
                None => return Lookup::Unavailable(name.to_owned()),
            }
        };
        if let Some(target) = targets.targets.get(path) {
            return Lookup::Found(target, name);
        }
        visited.insert(name);
        if let Some(delegations) = &targets.delegations {
            let mut children = Vec::new();
            for (role, terminating) in delegations.roles_for_target(path) {
                children.push(role.name.as_str());
                if terminating {
                    to_visit.clear();
                    break;
                }
            }
            to_visit.extend(children.into_iter().rev());
        }
    }
    Lookup::NotFound
}

/// Every delegated role name reachable from `top` (any path), in search
/// order, at most [`MAX_DELEGATIONS`] - 1 of them; `roles` gives those
/// already loaded, so their own delegations are followed.
pub fn reachable_roles<'a>(
    top: &'a Targets,
    roles: impl Fn(&str) -> Option<&'a Targets>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut to_visit: Vec<(&'a str, &'a Targets)> = vec![("targets", top)];
    let mut seen: HashSet<&str> = HashSet::from(["targets"]);
    while let Some((parent, targets)) = to_visit.pop() {
        let Some(delegations) = &targets.delegations else {
            continue;
        };
        for role in delegations.roles.iter().rev() {
            if out.len() + 1 >= MAX_DELEGATIONS {
                return out;
            }
            if !seen.insert(role.name.as_str()) {
                continue;
            }
            out.push((role.name.clone(), parent.to_owned()));
            if let Some(child) = roles(&role.name) {
                to_visit.push((role.name.as_str(), child));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_python_tuf_does() {
        for (path, pattern, expected) in [
            (
                "releases/v1.2.0-beta.1/app.tar.zst",
                "releases/*-beta*/*",
                true,
            ),
            ("releases/v1.2.0/app.tar.zst", "releases/*-beta*/*", false),
            ("a/b/c.txt", "a/*", false), // `*` never crosses `/`
            ("a/b/c.txt", "a/*/*", true),
            ("file.txt", "*", true),
            ("dir/file.txt", "*", false),
            ("file.txt", "file.tx?", true),
            ("file.txt", "file.t[a-x]t", true),
            ("file.txt", "file.t[!x]t", false),
            ("file.t]t", "file.t[]]t", true),
            ("a[b", "a[b", true),
            ("", "", true),
            ("abc", "a*c*", true),
            ("abc", "a*d", false),
            ("Abc", "abc", false),
        ] {
            assert_eq!(path_matches(path, pattern), expected, "{path} ~ {pattern}");
        }
    }

    #[test]
    fn role_names_are_percent_encoded_in_file_names() {
        assert_eq!(role_file_stem("beta"), "beta");
        assert_eq!(role_file_stem("ci/beta builds"), "ci%2Fbeta%20builds");
        assert_eq!(role_file_stem("../root"), "..%2Froot");
        assert_eq!(role_file_stem("é"), "%C3%A9");
    }

    #[test]
    fn hash_prefixes_match_the_sha256_of_the_path() {
        let digest = hex::encode(Sha256::digest(b"files/a.txt"));
        let role = DelegatedRole {
            name: "bin-0".into(),
            keyids: vec![],
            threshold: 1,
            terminating: false,
            paths: None,
            path_hash_prefixes: Some(vec![digest[..2].to_owned()]),
            unrecognized: Map::new(),
        };
        assert!(role.is_delegated_path("files/a.txt"));
        let other = if &digest[..2] == "00" { "01" } else { "00" };
        let role = DelegatedRole {
            path_hash_prefixes: Some(vec![other.to_owned()]),
            ..role
        };
        assert!(!role.is_delegated_path("files/a.txt"));
    }
}
