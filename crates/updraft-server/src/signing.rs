//! HMAC-SHA256 signed requests, accepted besides bearer tokens by the admin
//! API and the report endpoint (docs/server.md, "Signed requests").
//!
//! The client sends `X-Updraft-Key-Id`, `X-Updraft-Timestamp` (Unix
//! seconds), `X-Updraft-Nonce` and `X-Updraft-Signature`, the lowercase hex
//! HMAC-SHA256 under the key's secret of the canonical request:
//!
//! ```text
//! UPDRAFT-HMAC-SHA256
//! METHOD
//! /path/as/sent
//! sorted&query=pairs
//! TIMESTAMP
//! NONCE
//! hex(SHA-256(body))
//! ```
//!
//! Lines are joined with `\n` (no trailing newline); the query is the raw
//! query string split on `&`, sorted bytewise and joined with `&` (an empty
//! line when there is none). A timestamp more than five minutes off, a nonce
//! already used within that window, an unknown key or a wrong signature is
//! refused with 401.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Requests signed further from the server's clock than this are refused.
pub(crate) const WINDOW_SECONDS: i64 = 300;
/// Nonces remembered at once; beyond it signed requests wait (503) until
/// the oldest fall out of the window.
const MAX_NONCES: usize = 100_000;
const MIN_SECRET: usize = 32;

pub(crate) const KEY_ID: &str = "x-updraft-key-id";
pub(crate) const TIMESTAMP: &str = "x-updraft-timestamp";
pub(crate) const NONCE: &str = "x-updraft-nonce";
pub(crate) const SIGNATURE: &str = "x-updraft-signature";

/// The signing keys, by id (several at once, so a key can be rotated
/// without downtime: add the new one, move clients over, remove the old).
#[derive(Debug)]
pub(crate) struct SigningKeys {
    keys: HashMap<String, Vec<u8>>,
    nonces: Mutex<HashMap<(String, String), i64>>,
}

/// Why a signed request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 401 with this reason.
    Unauthorized(String),
    /// 503: too many nonces in the window.
    Busy,
}

impl SigningKeys {
    /// Reads `key_id:secret` lines (`#` comments and blank lines skipped).
    /// The file must not be readable by group or others.
    pub(crate) fn load(path: &Path) -> Result<Self> {
        refuse_if_readable_by_others(path)?;
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            action: "read the signing key file",
            target: path.display().to_string(),
            source,
        })?;
        let mut keys = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let problem = |what: &str| {
                Error::Config(format!(
                    "Line {} of the signing key file `{}` {what}",
                    number + 1,
                    path.display()
                ))
            };
            let (id, secret) = line
                .split_once(':')
                .ok_or_else(|| problem("is not `key_id:secret`"))?;
            let (id, secret) = (id.trim(), secret.trim());
            if id.is_empty()
                || id.len() > 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err(problem(
                    "has a key id that is not 1 to 64 letters, digits, `.`, `_` or `-`",
                ));
            }
            if secret.len() < MIN_SECRET {
                return Err(problem(&format!(
                    "has a secret shorter than {MIN_SECRET} characters; use `openssl rand -hex 32`"
                )));
            }
            if keys
                .insert(id.to_owned(), secret.as_bytes().to_vec())
                .is_some()
            {
                return Err(problem(&format!("repeats the key id `{id}`")));
            }
        }
        if keys.is_empty() {
            return Err(Error::Config(format!(
                "The signing key file `{}` holds no key",
                path.display()
            )));
        }
        Ok(Self {
            keys,
            nonces: Mutex::new(HashMap::new()),
        })
    }

    /// Checks a signed request; returns the key id it was signed with.
    pub(crate) fn verify(
        &self,
        method: &str,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
        now: i64,
    ) -> std::result::Result<String, Refusal> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Refusal::Unauthorized(format!("the `{name}` header is missing")))
        };
        let key_id = header(KEY_ID)?;
        let timestamp_text = header(TIMESTAMP)?;
        let nonce = header(NONCE)?;
        let signature = header(SIGNATURE)?;
        let timestamp: i64 = timestamp_text
            .parse()
            .ok()
            .filter(|_| timestamp_text.len() <= 12)
            .ok_or_else(|| {
                Refusal::Unauthorized(format!("`{TIMESTAMP}` is not a Unix time in seconds"))
            })?;
        if (timestamp - now).abs() > WINDOW_SECONDS {
            return Err(Refusal::Unauthorized(format!(
                "the request was signed at {timestamp}, more than {WINDOW_SECONDS} s from the server's time {now}; check the clock and sign it again"
            )));
        }
        if !(16..=64).contains(&nonce.len())
            || !nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Refusal::Unauthorized(format!(
                "`{NONCE}` must be 16 to 64 letters, digits, `-` or `_`"
            )));
        }
        let signature = hex::decode(signature)
            .ok()
            .filter(|s| s.len() == 32)
            .ok_or_else(|| Refusal::Unauthorized(format!("`{SIGNATURE}` is not 64 hex digits")))?;
        let Some(secret) = self.keys.get(key_id) else {
            return Err(Refusal::Unauthorized(
                "the key id is not known to this server".into(),
            ));
        };
        let canonical = canonical_request(method, path, query, timestamp_text, nonce, body);
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(canonical.as_bytes());
        // verify_slice compares in constant time.
        if mac.verify_slice(&signature).is_err() {
            return Err(Refusal::Unauthorized(
                "the signature does not match the request (see the canonical request in docs/server.md)".into(),
            ));
        }
        // Nonces are remembered only for requests that were signed with a
        // key, so nobody without one can fill the table.
        let mut nonces = self.nonces.lock().expect("nonce lock");
        if nonces.len() >= MAX_NONCES {
            nonces.retain(|_, expires| *expires >= now);
            if nonces.len() >= MAX_NONCES {
                return Err(Refusal::Busy);
            }
        }
        let expires = timestamp.max(now) + WINDOW_SECONDS;
        match nonces.entry((key_id.to_owned(), nonce.to_owned())) {
            std::collections::hash_map::Entry::Occupied(_) => Err(Refusal::Unauthorized(
                "this nonce was already used: a replayed request; sign every request with a new nonce".into(),
            )),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(expires);
                Ok(key_id.to_owned())
            }
        }
    }
}

/// True when the request carries any of the signature headers.
pub(crate) fn is_signed(headers: &HeaderMap) -> bool {
    [KEY_ID, TIMESTAMP, NONCE, SIGNATURE]
        .iter()
        .any(|name| headers.contains_key(*name))
}

/// The string that is signed (see the module documentation).
pub(crate) fn canonical_request(
    method: &str,
    path: &str,
    query: Option<&str>,
    timestamp: &str,
    nonce: &str,
    body: &[u8],
) -> String {
    let mut pairs: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .collect();
    pairs.sort_unstable();
    [
        "UPDRAFT-HMAC-SHA256",
        method,
        path,
        &pairs.join("&"),
        timestamp,
        nonce,
        &hex::encode(Sha256::digest(body)),
    ]
    .join("\n")
}

fn refuse_if_readable_by_others(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| Error::Io {
            action: "read the signing key file",
            target: path.display().to_string(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::Config(format!(
                "The signing key file `{}` has mode {mode:04o}: other users could read the secrets; run `chmod 600 {}`",
                path.display(),
                path.display()
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of docs/server.md.
    #[test]
    fn the_documented_example_verifies_once() {
        let body = br#"{"percent": 25}"#;
        let canonical = canonical_request(
            "POST",
            "/api/admin/releases/kuzflow/1.1.0/rollout",
            Some("b=2&a=1"),
            "1767225600",
            "4f2c0a9e1b7d4c3a8e6f5d2b1a0c9e8f",
            body,
        );
        assert_eq!(
            canonical,
            "UPDRAFT-HMAC-SHA256\nPOST\n/api/admin/releases/kuzflow/1.1.0/rollout\na=1&b=2\n\
             1767225600\n4f2c0a9e1b7d4c3a8e6f5d2b1a0c9e8f\n\
             1e0a4cb30fa8109dfcfcad55ce374a03eaebdf129f20bd58196ac08012b5cf2e"
        );
        let keys = SigningKeys {
            keys: HashMap::from([(
                "ci-2026".to_owned(),
                b"ci-2026-secret-0123456789abcdef0123456789".to_vec(),
            )]),
            nonces: Mutex::new(HashMap::new()),
        };
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (KEY_ID, "ci-2026"),
            (TIMESTAMP, "1767225600"),
            (NONCE, "4f2c0a9e1b7d4c3a8e6f5d2b1a0c9e8f"),
            (
                SIGNATURE,
                "4569e588670c014b0d8e0011de1f8939bba964f03c1b3ebb78aa4d869c16ed95",
            ),
        ] {
            headers.insert(name, value.parse().unwrap());
        }
        let verify = |now| {
            keys.verify(
                "POST",
                "/api/admin/releases/kuzflow/1.1.0/rollout",
                Some("b=2&a=1"),
                &headers,
                body,
                now,
            )
        };
        assert_eq!(verify(1_767_225_600 + 301).map_err(|_| ()), Err(()));
        assert_eq!(verify(1_767_225_600 + 299), Ok("ci-2026".to_owned()));
        assert!(
            matches!(verify(1_767_225_600), Err(Refusal::Unauthorized(r)) if r.contains("already used"))
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, "ci:0123456789abcdef0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let error = SigningKeys::load(&path).unwrap_err().to_string();
        assert!(error.contains("chmod 600"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        SigningKeys::load(&path).unwrap();
        std::fs::write(&path, "ci:short\n").unwrap();
        assert!(
            SigningKeys::load(&path)
                .unwrap_err()
                .to_string()
                .contains("shorter than 32")
        );
    }
}
