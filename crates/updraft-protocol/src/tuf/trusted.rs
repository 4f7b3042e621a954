//! The client's view of a repository, advanced one verified file at a time
//! in the order of the TUF client workflow (spec section 5).

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::{Envelope, Lookup, Role, RoleName, Root, Snapshot, TargetFile, Targets, Timestamp};
use crate::error::Error;

/// Metadata that passed every check, with one fixed reference time for all
/// expiry checks (so a slow update cannot straddle an expiry).
///
/// Feed it in this order: [`new`](Self::new) with the trusted root,
/// [`update_root`](Self::update_root) for each newer root, then timestamp,
/// snapshot and targets. Each call either accepts the file completely or
/// leaves the set as it was; callers persist a file only after it was accepted.
#[derive(Debug, Clone)]
pub struct TrustedSet {
    reference_time: OffsetDateTime,
    root: Envelope<Root>,
    timestamp: Option<Envelope<Timestamp>>,
    snapshot: Option<Envelope<Snapshot>>,
    targets: Option<Envelope<Targets>>,
    delegated: BTreeMap<String, Envelope<Targets>>,
}

impl TrustedSet {
    /// Starts from a root the caller already trusts (shipped with the app or
    /// persisted earlier). It must be signed by its own threshold; it may be
    /// expired, since a newer root may follow.
    pub fn new(root_bytes: &[u8], reference_time: OffsetDateTime) -> Result<Self, Error> {
        let root = Envelope::<Root>::from_slice("root.json", root_bytes)?;
        root.verify(&root.signed)?;
        Ok(Self {
            reference_time,
            root,
            timestamp: None,
            snapshot: None,
            targets: None,
            delegated: BTreeMap::new(),
        })
    }

    /// The trusted root.
    pub fn root(&self) -> &Envelope<Root> {
        &self.root
    }

    /// The trusted timestamp, if loaded.
    pub fn timestamp(&self) -> Option<&Envelope<Timestamp>> {
        self.timestamp.as_ref()
    }

    /// The trusted snapshot, if loaded.
    pub fn snapshot(&self) -> Option<&Envelope<Snapshot>> {
        self.snapshot.as_ref()
    }

    /// The trusted targets, if loaded.
    pub fn targets(&self) -> Option<&Envelope<Targets>> {
        self.targets.as_ref()
    }

    /// The reference time used for every expiry check.
    pub fn reference_time(&self) -> OffsetDateTime {
        self.reference_time
    }

    /// Accepts root version N+1, signed by the threshold of both the trusted
    /// root's root keys and its own (spec 5.3).
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.timestamp.is_some() {
            return Err(Error::OutOfOrder(
                "root cannot change after the timestamp was loaded",
            ));
        }
        let what = format!("{}.root.json", self.root.signed.version + 1);
        let new = Envelope::<Root>::from_slice(&what, bytes)?;
        new.verify(&self.root.signed)?;
        let expected = self.root.signed.version + 1;
        if new.signed.version != expected {
            return Err(Error::BadVersion {
                role: "root".into(),
                found: new.signed.version,
                reason: format!("expected exactly {expected}, one more than the trusted root"),
            });
        }
        new.verify(&new.signed)?;
        self.root = new;
        Ok(())
    }

    /// Accepts a timestamp (spec 5.4). A timestamp with the same version as
    /// the trusted one returns [`Error::EqualVersion`]: keep the trusted one.
    pub fn update_timestamp(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.snapshot.is_some() {
            return Err(Error::OutOfOrder(
                "timestamp cannot change after the snapshot was loaded",
            ));
        }
        self.check_not_expired(&self.root)?;
        let new = Envelope::<Timestamp>::from_slice("timestamp.json", bytes)?;
        new.verify(&self.root.signed)?;
        if let Some(old) = &self.timestamp {
            if new.signed.version < old.signed.version {
                return Err(rollback(
                    "timestamp",
                    new.signed.version,
                    old.signed.version,
                ));
            }
            if new.signed.version == old.signed.version {
                return Err(Error::EqualVersion {
                    role: "timestamp".into(),
                    version: new.signed.version,
                });
            }
            let (new_snapshot, old_snapshot) = (
                new.signed.snapshot_meta().version,
                old.signed.snapshot_meta().version,
            );
            if new_snapshot < old_snapshot {
                return Err(rollback("snapshot", new_snapshot, old_snapshot));
            }
        }
        // Kept even when expired, so it still guards against rollback; the
        // expiry is reported to the caller, who must not go further.
        self.timestamp = Some(new);
        self.check_final_timestamp()
    }

    /// Loads a previously persisted timestamp for rollback protection,
    /// checking signatures but not expiry.
    pub fn load_trusted_timestamp(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let new = Envelope::<Timestamp>::from_slice("timestamp.json", bytes)?;
        new.verify(&self.root.signed)?;
        self.timestamp = Some(new);
        Ok(())
    }

    /// Accepts a snapshot (spec 5.5). `trusted` skips the length/hash check
    /// against the timestamp, for a snapshot loaded from the local cache.
    pub fn update_snapshot(&mut self, bytes: &[u8], trusted: bool) -> Result<(), Error> {
        if self.targets.is_some() {
            return Err(Error::OutOfOrder(
                "snapshot cannot change after targets were loaded",
            ));
        }
        let timestamp = self
            .timestamp
            .as_ref()
            .ok_or(Error::OutOfOrder("snapshot needs a timestamp first"))?;
        self.check_not_expired(timestamp)?;
        let pinned = timestamp.signed.snapshot_meta();
        if !trusted {
            pinned.verify_bytes("snapshot.json", bytes)?;
        }
        let new = Envelope::<Snapshot>::from_slice("snapshot.json", bytes)?;
        new.verify(&self.root.signed)?;
        if let Some(old) = &self.snapshot {
            for (name, old_meta) in &old.signed.meta {
                let Some(new_meta) = new.signed.meta.get(name) else {
                    return Err(Error::Invalid {
                        what: "snapshot.json".into(),
                        reason: format!("it no longer lists `{name}`"),
                    });
                };
                if new_meta.version < old_meta.version {
                    return Err(rollback(
                        name.trim_end_matches(".json"),
                        new_meta.version,
                        old_meta.version,
                    ));
                }
            }
        }
        self.snapshot = Some(new);
        self.check_final_snapshot()
    }

    /// Accepts the top-level targets (spec 5.6).
    pub fn update_targets(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let snapshot = self
            .snapshot
            .as_ref()
            .ok_or(Error::OutOfOrder("targets needs a snapshot first"))?;
        self.check_final_snapshot()?;
        let pinned = snapshot
            .signed
            .meta
            .get("targets.json")
            .ok_or_else(|| Error::Invalid {
                what: "snapshot.json".into(),
                reason: "it does not list `targets.json`".into(),
            })?;
        pinned.verify_bytes("targets.json", bytes)?;
        let new = Envelope::<Targets>::from_slice("targets.json", bytes)?;
        new.verify(&self.root.signed)?;
        if new.signed.version != pinned.version {
            return Err(Error::BadVersion {
                role: "targets".into(),
                found: new.signed.version,
                reason: format!("the snapshot pins version {}", pinned.version),
            });
        }
        self.check_not_expired(&new)?;
        self.targets = Some(new);
        Ok(())
    }

    /// Accepts the metadata of delegated role `role`, delegated by `parent`
    /// (`targets` or a delegated role already accepted) (spec 5.6 applied to
    /// a delegation): listed in and pinned by the snapshot, signed by the
    /// threshold of the keys `parent` delegates to it, the pinned version,
    /// not expired.
    pub fn update_delegated_targets(
        &mut self,
        bytes: &[u8],
        role: &str,
        parent: &str,
    ) -> Result<(), Error> {
        let what = format!("{role}.json");
        let snapshot = self
            .snapshot
            .as_ref()
            .ok_or(Error::OutOfOrder("delegated targets need a snapshot first"))?;
        let parent_targets = if parent == "targets" {
            self.targets.as_ref()
        } else {
            self.delegated.get(parent)
        }
        .ok_or(Error::OutOfOrder(
            "a delegated role needs its delegator first",
        ))?;
        let delegations =
            parent_targets
                .signed
                .delegations
                .as_ref()
                .ok_or_else(|| Error::Invalid {
                    what: what.clone(),
                    reason: format!("`{parent}` delegates to no role"),
                })?;
        let delegated = delegations
            .roles
            .iter()
            .find(|r| r.name == role)
            .ok_or_else(|| Error::Invalid {
                what: what.clone(),
                reason: format!("`{parent}` does not delegate to `{role}`"),
            })?;
        let pinned = snapshot
            .signed
            .meta
            .get(&what)
            .ok_or_else(|| Error::Invalid {
                what: "snapshot.json".into(),
                reason: format!("it does not list `{what}`"),
            })?;
        pinned.verify_bytes(&what, bytes)?;
        let new = Envelope::<Targets>::from_slice(&what, bytes)?;
        new.verify_named(role, &delegations.keys, &delegated.role_keys())?;
        if new.signed.version != pinned.version {
            return Err(Error::BadVersion {
                role: role.into(),
                found: new.signed.version,
                reason: format!("the snapshot pins version {}", pinned.version),
            });
        }
        let expires = new.signed.expires;
        if expires.is_expired(self.reference_time) {
            return Err(Error::Expired {
                role: role.into(),
                expires: expires.to_string(),
            });
        }
        self.delegated.insert(role.to_owned(), new);
        Ok(())
    }

    /// A delegated role's accepted metadata.
    pub fn delegated(&self, role: &str) -> Option<&Envelope<Targets>> {
        self.delegated.get(role)
    }

    /// Every delegated role accepted so far, by name.
    pub fn delegated_roles(&self) -> &BTreeMap<String, Envelope<Targets>> {
        &self.delegated
    }

    /// Looks `path` up as spec 5.6.7 says, through the roles accepted so far.
    pub fn find_target(&self, path: &str) -> Lookup<'_> {
        let Some(top) = self.targets.as_ref() else {
            return Lookup::Unavailable("targets".into());
        };
        super::find_target(path, &top.signed, |name| {
            self.delegated.get(name).map(|e| &e.signed)
        })
    }

    /// Every target path some accepted role lists, resolved through the
    /// delegation search: only the role the search trusts for a path
    /// provides it, so a delegated role listing a path outside its
    /// delegation, or one shadowed by a higher-priority role, provides
    /// nothing. Paths whose search needs a role that was not accepted are
    /// left out and returned second.
    pub fn resolved_targets(&self) -> (BTreeMap<String, TargetFile>, Vec<(String, String)>) {
        let mut out = BTreeMap::new();
        let mut unavailable = Vec::new();
        let Some(top) = self.targets.as_ref() else {
            return (out, unavailable);
        };
        let candidates = top.signed.targets.keys().chain(
            self.delegated
                .values()
                .flat_map(|e| e.signed.targets.keys()),
        );
        for path in candidates {
            if out.contains_key(path) {
                continue;
            }
            match self.find_target(path) {
                Lookup::Found(target, _) => {
                    out.insert(path.clone(), target.clone());
                }
                Lookup::NotFound => {}
                Lookup::Unavailable(role) => unavailable.push((path.clone(), role)),
            }
        }
        (out, unavailable)
    }

    /// The roles to load after the top-level targets, `(role, parent)`, in
    /// search order, given those loaded so far (call again after loading).
    pub fn delegations_to_load(&self) -> Vec<(String, String)> {
        let Some(top) = self.targets.as_ref() else {
            return Vec::new();
        };
        super::reachable_roles(&top.signed, |name| {
            self.delegated.get(name).map(|e| &e.signed)
        })
        .into_iter()
        .filter(|(name, _)| !self.delegated.contains_key(name))
        .collect()
    }

    /// True when the root's timestamp or snapshot keys differ from `old`'s,
    /// in which case a client must discard its cached timestamp and snapshot
    /// (spec 5.3.11, recovery from a fast-forward attack).
    pub fn online_keys_rotated(old: &Root, new: &Root) -> bool {
        [RoleName::Timestamp, RoleName::Snapshot]
            .into_iter()
            .any(|role| old.role_keys(role) != new.role_keys(role))
    }

    fn check_final_timestamp(&self) -> Result<(), Error> {
        let timestamp = self
            .timestamp
            .as_ref()
            .ok_or(Error::OutOfOrder("no timestamp"))?;
        self.check_not_expired(timestamp)
    }

    fn check_final_snapshot(&self) -> Result<(), Error> {
        let snapshot = self
            .snapshot
            .as_ref()
            .ok_or(Error::OutOfOrder("no snapshot"))?;
        self.check_not_expired(snapshot)?;
        let pinned = self
            .timestamp
            .as_ref()
            .ok_or(Error::OutOfOrder("no timestamp"))?
            .signed
            .snapshot_meta()
            .version;
        if snapshot.signed.version != pinned {
            return Err(Error::BadVersion {
                role: "snapshot".into(),
                found: snapshot.signed.version,
                reason: format!("the timestamp pins version {pinned}"),
            });
        }
        Ok(())
    }

    fn check_not_expired<T: Role>(&self, envelope: &Envelope<T>) -> Result<(), Error> {
        let expires = envelope.signed.expires();
        if expires.is_expired(self.reference_time) {
            return Err(Error::Expired {
                role: T::NAME.as_str().into(),
                expires: expires.to_string(),
            });
        }
        Ok(())
    }
}

fn rollback(role: &str, found: u64, trusted: u64) -> Error {
    Error::BadVersion {
        role: role.into(),
        found,
        reason: format!("it is older than the trusted version {trusted}"),
    }
}
