#!/usr/bin/env python3
"""Regenerates crates/updraft-protocol/tests/data/<scenario>/, the TUF
metadata fixtures that pin down every verification rule.

usage: python3 scripts/gen-tuf-fixtures.py   (needs `pip install tuf`, which
brings securesystemslib and cryptography)

The metadata is written and signed here in Python, independently of updraft's
Rust code, from fixed keys: Ed25519 and ECDSA from fixed seeds, RSA from
scripts/fixture-keys/rsa-3072.pem (created on the first run). Ed25519 and
PKCS #1 v1.5 signatures are deterministic, so those scenarios are
byte-for-byte reproducible; ECDSA and RSA-PSS signatures are randomised and
differ at each run (every run is as valid). Each scenario folder holds:

  root.json                 the root the client already trusts
  roots/N.root.json         newer roots, applied in order (optional)
  trusted/timestamp.json    metadata persisted by an earlier update (optional)
  trusted/snapshot.json
  timestamp.json, snapshot.json, targets.json   what the repository serves now
  expected.json             {"step": ..., "error": ...} or {"step": "done"}

All scenarios are checked at the reference time in REFERENCE_TIME.
"""
import hashlib
import json
import os
import shutil
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from securesystemslib.formats import encode_canonical

REFERENCE_TIME = "2026-06-01T00:00:00Z"
VALID = "2030-01-01T00:00:00Z"
EXPIRED = "2026-01-01T00:00:00Z"
SPEC = "1.0.31"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "updraft-protocol", "tests", "data")


RSA_PEM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixture-keys", "rsa-3072.pem")


def rsa_private():
    if not os.path.exists(RSA_PEM):
        os.makedirs(os.path.dirname(RSA_PEM), exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        with open(RSA_PEM, "wb") as handle:
            handle.write(key.private_bytes(Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with open(RSA_PEM, "rb") as handle:
        return serialization.load_pem_private_key(handle.read(), password=None)


class Key:
    """A fixture key; `scheme` as in TUF, `keytype` as securesystemslib writes it."""

    def __init__(self, seed: int, scheme: str = "ed25519", keytype: str | None = None):
        self.scheme = scheme
        if scheme == "ed25519":
            self.private = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
            public = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
            keytype = keytype or "ed25519"
        else:
            if scheme == "ecdsa-sha2-nistp256":
                self.private = ec.derive_private_key(seed * 1_000_003, ec.SECP256R1())
                keytype = keytype or "ecdsa"
            else:
                self.private = rsa_private()
                keytype = keytype or "rsa"
            public = self.private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
        self.public = {"keytype": keytype, "scheme": scheme, "keyval": {"public": public}}
        self.keyid = hashlib.sha256(encode_canonical(self.public).encode()).hexdigest()

    def raw_sign(self, data: bytes) -> bytes:
        if self.scheme == "ed25519":
            return self.private.sign(data)
        if self.scheme == "ecdsa-sha2-nistp256":
            return self.private.sign(data, ec.ECDSA(hashes.SHA256()))  # DER, as securesystemslib
        if self.scheme == "rsassa-pss-sha256":
            return self.private.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH), hashes.SHA256())
        return self.private.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def sign(self, signed: dict, keyid: str | None = None) -> dict:
        sig = self.raw_sign(encode_canonical(signed).encode()).hex()
        return {"keyid": keyid or self.keyid, "sig": sig}


ROOT, ROOT2, TARGETS, SNAPSHOT, TIMESTAMP, TIMESTAMP2, OTHER = (Key(n) for n in range(1, 8))
ROOT3, TARGETS2 = Key(8), Key(9)


def root(version=1, expires=VALID, root_keys=(ROOT,), root_threshold=1, timestamp_key=TIMESTAMP, targets_keys=(TARGETS,), targets_threshold=1, snapshot_key=None):
    keys = {}
    roles = {}

    def add(role, role_keys, threshold):
        for key in role_keys:
            keys[key.keyid] = key.public
        roles[role] = {"keyids": [key.keyid for key in role_keys], "threshold": threshold}

    add("root", root_keys, root_threshold)
    add("targets", targets_keys, targets_threshold)
    add("snapshot", [snapshot_key or SNAPSHOT], 1)
    add("timestamp", [timestamp_key], 1)
    return {"_type": "root", "spec_version": SPEC, "version": version, "expires": expires, "consistent_snapshot": True, "keys": keys, "roles": roles}


def targets(version=1, expires=VALID):
    data = b"hello updraft\n"
    return {
        "_type": "targets", "spec_version": SPEC, "version": version, "expires": expires,
        "targets": {"releases/v1.0.0/app.tar.zst": {"length": len(data), "hashes": {"sha256": hashlib.sha256(data).hexdigest()}, "custom": {"updraft": {"note": "é\n"}}}},
    }


def envelope(signed: dict, *signers, keyids=None) -> bytes:
    signatures = [key.sign(signed, keyid) for key, keyid in zip(signers, keyids or [None] * len(signers))]
    return (json.dumps({"signatures": signatures, "signed": signed}, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


HASHES = ("sha256",)


def pin(version: int, data: bytes, algorithms=None) -> dict:
    algorithms = algorithms or HASHES
    return {"version": version, "length": len(data), "hashes": {name: hashlib.new(name, data).hexdigest() for name in algorithms}}


def snapshot(targets_bytes: bytes, version=1, targets_version=1, expires=VALID, algorithms=None):
    return {"_type": "snapshot", "spec_version": SPEC, "version": version, "expires": expires, "meta": {"targets.json": pin(targets_version, targets_bytes, algorithms)}}


def timestamp(snapshot_bytes: bytes, version=1, snapshot_version=1, expires=VALID, algorithms=None):
    return {"_type": "timestamp", "spec_version": SPEC, "version": version, "expires": expires, "meta": {"snapshot.json": pin(snapshot_version, snapshot_bytes, algorithms)}}


def chain(targets_signed=None, t_version=1, s_version=1, ts_version=1, s_expires=VALID, ts_expires=VALID, targets_signers=(TARGETS,), timestamp_signer=TIMESTAMP, snapshot_signer=None, algorithms=None):
    targets_signed = targets_signed or targets(version=t_version)
    targets_bytes = envelope(targets_signed, *targets_signers)
    snapshot_bytes = envelope(snapshot(targets_bytes, version=s_version, targets_version=targets_signed["version"], expires=s_expires, algorithms=algorithms), snapshot_signer or SNAPSHOT)
    timestamp_bytes = envelope(timestamp(snapshot_bytes, version=ts_version, snapshot_version=s_version, expires=ts_expires, algorithms=algorithms), timestamp_signer)
    return {"targets.json": targets_bytes, "snapshot.json": snapshot_bytes, "timestamp.json": timestamp_bytes}


def write(name: str, files: dict, expected: dict, trusted_root: bytes | None = None):
    folder = os.path.join(OUT, name)
    os.makedirs(folder)
    files = {"root.json": trusted_root or envelope(root(), ROOT), **files}
    for path, data in files.items():
        full = os.path.join(folder, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as handle:
            handle.write(data)
    with open(os.path.join(folder, "expected.json"), "w") as handle:
        json.dump({"reference_time": REFERENCE_TIME, **expected}, handle, indent=1, sort_keys=True)
        handle.write("\n")


def main() -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    done = {"step": "done"}

    write("valid", chain(), done)

    # Expiry, checked against one fixed reference time.
    write("expired-root", chain(), {"step": "timestamp", "error": "Expired"}, trusted_root=envelope(root(expires=EXPIRED), ROOT))
    write("expired-timestamp", chain(ts_expires=EXPIRED), {"step": "timestamp", "error": "Expired"})
    write("expired-snapshot", chain(s_expires=EXPIRED), {"step": "snapshot", "error": "Expired"})
    write("expired-targets", chain(targets_signed=targets(expires=EXPIRED)), {"step": "targets", "error": "Expired"})

    # Thresholds count distinct keys.
    two_targets_root = envelope(root(targets_keys=(TARGETS, OTHER), targets_threshold=2), ROOT)
    write("below-threshold", chain(), {"step": "targets", "error": "Threshold"}, trusted_root=two_targets_root)
    files = chain()
    signed = json.loads(files["targets.json"])
    signed["signatures"] = signed["signatures"] * 2
    files = chain()
    targets_bytes = (json.dumps(signed, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()
    snapshot_bytes = envelope(snapshot(targets_bytes), SNAPSHOT)
    files = {"targets.json": targets_bytes, "snapshot.json": snapshot_bytes, "timestamp.json": envelope(timestamp(snapshot_bytes), TIMESTAMP)}
    # Two signatures by one key id: refused outright, as python-tuf does.
    write("duplicate-signatures", files, {"step": "targets", "error": "Invalid"}, trusted_root=two_targets_root)
    # One key listed under two key ids, both "signing".
    twin = root(targets_threshold=2)
    twin["keys"]["twin-of-targets-key"] = TARGETS.public
    twin["roles"]["targets"]["keyids"].append("twin-of-targets-key")
    write(
        "duplicate-key-ids",
        chain(targets_signers=(TARGETS, TARGETS)) | {"targets.json": envelope(targets(), TARGETS, TARGETS, keyids=[TARGETS.keyid, "twin-of-targets-key"])},
        {"step": "targets", "error": "Threshold"},
        trusted_root=envelope(twin, ROOT),
    )
    # The previous scenario's snapshot must pin the re-signed targets file.
    fix_pins(os.path.join(OUT, "duplicate-key-ids"))
    zero = root()
    zero["roles"]["timestamp"]["threshold"] = 0
    write("zero-threshold", chain(), {"step": "root", "error": "Invalid"}, trusted_root=envelope(zero, ROOT))

    # Wrong role key: the timestamp signed with the targets key.
    write("wrong-role-key", chain(timestamp_signer=TARGETS), {"step": "timestamp", "error": "Threshold"})
    write("wrong-type", chain() | {"timestamp.json": chain()["snapshot.json"]}, {"step": "timestamp", "error": "WrongType"})

    # Bad canonical form: a float in the signed part; and a signature over
    # a non-canonical serialisation.
    signed = snapshot(chain()["targets.json"])
    sig = SNAPSHOT.sign(signed)
    float_file = json.loads(json.dumps({"signatures": [sig], "signed": signed}))
    float_file["signed"]["x-weight"] = 0.5
    float_bytes = json.dumps(float_file, indent=1).encode()
    write("bad-canonical-form", chain() | {"snapshot.json": float_bytes, "timestamp.json": envelope(timestamp(float_bytes), TIMESTAMP)}, {"step": "snapshot", "error": "BadCanonicalForm"})
    pretty_sig = {"keyid": SNAPSHOT.keyid, "sig": SNAPSHOT.private.sign(json.dumps(signed, indent=2).encode()).hex()}
    pretty_bytes = json.dumps({"signatures": [pretty_sig], "signed": signed}, indent=1).encode()
    write("non-canonical-signature", chain() | {"snapshot.json": pretty_bytes, "timestamp.json": envelope(timestamp(pretty_bytes), TIMESTAMP)}, {"step": "snapshot", "error": "Threshold"})

    # Rollback: older timestamp, older snapshot pinned, older targets listed.
    newer = chain(t_version=3, s_version=3, ts_version=3)
    older = chain(t_version=2, s_version=2, ts_version=2)
    write("rollback-timestamp", older | {"trusted/timestamp.json": newer["timestamp.json"]}, {"step": "timestamp", "error": "BadVersion"})
    older_snapshot = chain(t_version=2, s_version=2, ts_version=4)
    write("rollback-snapshot", older_snapshot | {"trusted/timestamp.json": newer["timestamp.json"]}, {"step": "timestamp", "error": "BadVersion"})
    older_targets = chain(t_version=2, s_version=4, ts_version=4)
    write(
        "rollback-targets",
        older_targets | {"trusted/timestamp.json": newer["timestamp.json"], "trusted/snapshot.json": newer["snapshot.json"]},
        {"step": "snapshot", "error": "BadVersion"},
    )
    write("same-timestamp-again", newer | {"trusted/timestamp.json": newer["timestamp.json"]}, {"step": "timestamp", "error": "EqualVersion"})

    # Mix-and-match: a snapshot that is not the one the timestamp pins.
    other_snapshot = envelope(snapshot(chain()["targets.json"], version=1, expires="2031-01-01T00:00:00Z"), SNAPSHOT)
    write("mix-and-match", chain() | {"snapshot.json": other_snapshot}, {"step": "snapshot", "error": "HashMismatch"})
    tampered = bytearray(chain()["targets.json"])
    tampered[tampered.index(b'"version"') + 11] = ord("9")
    write("tampered-targets", chain() | {"targets.json": bytes(tampered)}, {"step": "targets", "error": "HashMismatch"})

    # Root rotation: 1 -> 2 signed by the old and the new root keys, moving
    # the timestamp role to a new key.
    rotated = root(version=2, root_keys=(ROOT2,), timestamp_key=TIMESTAMP2)
    write("root-rotation", chain(timestamp_signer=TIMESTAMP2) | {"roots/2.root.json": envelope(rotated, ROOT, ROOT2)}, done)
    write("root-rotation-without-old-signature", chain(timestamp_signer=TIMESTAMP2) | {"roots/2.root.json": envelope(rotated, ROOT2)}, {"step": "root", "error": "Threshold"})
    write("root-rotation-without-new-signature", chain(timestamp_signer=TIMESTAMP2) | {"roots/2.root.json": envelope(rotated, ROOT)}, {"step": "root", "error": "Threshold"})
    skipped = root(version=3, root_keys=(ROOT2,))
    write("root-skips-a-version", chain() | {"roots/2.root.json": envelope(skipped, ROOT, ROOT2)}, {"step": "root", "error": "BadVersion"})
    # After rotation the old timestamp key no longer counts (fast-forward recovery).
    write("root-rotation-revokes-old-timestamp-key", chain() | {"roots/2.root.json": envelope(rotated, ROOT, ROOT2)}, {"step": "timestamp", "error": "Threshold"})
    # Two rotations in one refresh: 1 -> 2 (new root and timestamp keys) -> 3
    # (root key replaced again, new targets key), as `updraft repo rotate-root`
    # and `repo rotate --role targets` write them; the old targets key no
    # longer counts.
    third = root(version=3, root_keys=(ROOT3,), timestamp_key=TIMESTAMP2, targets_keys=(TARGETS2,))
    twice = {"roots/2.root.json": envelope(rotated, ROOT, ROOT2), "roots/3.root.json": envelope(third, ROOT2, ROOT3)}
    write("root-rotated-twice", chain(timestamp_signer=TIMESTAMP2, targets_signers=(TARGETS2,)) | twice, done)
    write("root-rotated-twice-old-targets-key", chain(timestamp_signer=TIMESTAMP2) | twice, {"step": "targets", "error": "Threshold"})
    threshold_two = root(version=2, root_keys=(ROOT, ROOT2), root_threshold=2)
    write("root-threshold-two-signed-by-one", chain() | {"roots/2.root.json": envelope(threshold_two, ROOT)}, {"step": "root", "error": "Threshold"})
    schemes_and_hashes(done)
    print(f"wrote {len(os.listdir(OUT))} scenarios to {os.path.normpath(OUT)}")
    return 0


def schemes_and_hashes(done: dict):
    """Every signature scheme, both hash algorithms, and the spec's edge cases."""
    for name, scheme, keytype in [
        ("valid-ecdsa", "ecdsa-sha2-nistp256", None),
        ("valid-ecdsa-legacy-keytype", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256"),
        ("valid-rsa-pss", "rsassa-pss-sha256", None),
        ("valid-rsa-pkcs1v15", "rsa-pkcs1v15-sha256", None),
    ]:
        r, t, s, ts = (Key(seed, scheme, keytype) for seed in (11, 12, 13, 14))
        trusted = envelope(root(root_keys=(r,), targets_keys=(t,), timestamp_key=ts, snapshot_key=s), r)
        write(name, chain(targets_signers=(t,), snapshot_signer=s, timestamp_signer=ts), done, trusted_root=trusted)

    # An unknown scheme is ignored: it neither blocks a threshold met by known
    # keys, nor counts towards one.
    unknown = {"keytype": "x-quantum", "scheme": "x-quantum-1", "keyval": {"public": "00ff"}}
    for name, threshold, expected in [("unknown-scheme-ignored", 1, done), ("unknown-scheme-does-not-count", 2, {"step": "targets", "error": "Threshold"})]:
        mixed = root(targets_threshold=threshold)
        mixed["keys"]["unknown-key"] = unknown
        mixed["roles"]["targets"]["keyids"].insert(0, "unknown-key")
        targets_signed = targets()
        signatures = [{"keyid": "unknown-key", "sig": "00" * 64}, TARGETS.sign(targets_signed)]
        targets_bytes = (json.dumps({"signatures": signatures, "signed": targets_signed}, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()
        write(name, chain() | {"targets.json": targets_bytes}, expected, trusted_root=envelope(mixed, ROOT))
        fix_pins(os.path.join(OUT, name))

    # Hashes: every listed hash must match; unknown algorithms are ignored
    # unless no known one is listed.
    write("sha512-pins", chain(algorithms=("sha256", "sha512")), done)
    write("sha512-only-pins", chain(algorithms=("sha512",)), done)
    files = chain(algorithms=("sha256", "sha512"))
    snap = json.loads(files["snapshot.json"])["signed"]
    snap["meta"]["targets.json"]["hashes"]["sha512"] = "0" * 128
    snap_bytes = envelope(snap, SNAPSHOT)
    write("sha512-mismatch", files | {"snapshot.json": snap_bytes, "timestamp.json": envelope(timestamp(snap_bytes), TIMESTAMP)}, {"step": "targets", "error": "HashMismatch"})
    files = chain()
    snap = json.loads(files["snapshot.json"])["signed"]
    snap["meta"]["targets.json"]["hashes"]["x-blake9"] = "ab"
    snap_bytes = envelope(snap, SNAPSHOT)
    write("unknown-hash-ignored", files | {"snapshot.json": snap_bytes, "timestamp.json": envelope(timestamp(snap_bytes), TIMESTAMP)}, done)
    snap["meta"]["targets.json"]["hashes"] = {"x-blake9": "ab"}
    snap_bytes = envelope(snap, SNAPSHOT)
    write("only-unknown-hash", files | {"snapshot.json": snap_bytes, "timestamp.json": envelope(timestamp(snap_bytes), TIMESTAMP)}, {"step": "targets", "error": "Invalid"})

    # The timestamp pins the snapshot's length: a longer file is refused
    # even though its signature is valid.
    files = chain()
    longer = files["snapshot.json"] + b" "
    write("snapshot-length-mismatch", files | {"snapshot.json": longer}, {"step": "snapshot", "error": "LengthMismatch"})
    # A version pinned without hashes must still be the file's own version.
    files = chain(targets_signed=targets(version=2))
    snap = {"_type": "snapshot", "spec_version": SPEC, "version": 1, "expires": VALID, "meta": {"targets.json": {"version": 1}}}
    snap_bytes = envelope(snap, SNAPSHOT)
    write("targets-version-differs-from-pin", files | {"snapshot.json": snap_bytes, "timestamp.json": envelope(timestamp(snap_bytes), TIMESTAMP)}, {"step": "targets", "error": "BadVersion"})
    # spec_version major must be 1.
    future_targets = targets()
    future_targets["spec_version"] = "2.0.0"
    write("spec-version-2", chain(targets_signed=future_targets), {"step": "targets", "error": "UnsupportedFormat"})


def fix_pins(folder: str):
    """Re-pins snapshot and timestamp after a scenario replaced targets.json."""
    with open(os.path.join(folder, "targets.json"), "rb") as handle:
        targets_bytes = handle.read()
    snapshot_bytes = envelope(snapshot(targets_bytes), SNAPSHOT)
    with open(os.path.join(folder, "snapshot.json"), "wb") as handle:
        handle.write(snapshot_bytes)
    with open(os.path.join(folder, "timestamp.json"), "wb") as handle:
        handle.write(envelope(timestamp(snapshot_bytes), TIMESTAMP))


if __name__ == "__main__":
    sys.exit(main())
