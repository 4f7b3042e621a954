//! The client's view of a repository, advanced one verified file at a time
//! in the order of the TUF client workflow (spec section 5).

use time::OffsetDateTime;

use super::{Envelope, Role, RoleName, Root, Snapshot, Targets, Timestamp};
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
