#!/usr/bin/env python3
"""Writes a TUF repository with python-tuf's Metadata API, laid out the way
updraft's verifier reads one: metadata in OUT/metadata, targets relative to OUT.

usage: pytuf_write_repo.py OUT_DIR [--no-consistent-snapshot]

The repository has two targets, two root rotations (1.root.json ->
2.root.json, the new root adding a second root key with threshold 2 and a
new timestamp key; 2.root.json -> 3.root.json, revoking the first root key
(threshold 1 again) and replacing the targets key, which signs the targets),
and metadata that expires in a week.
"""
import copy
import hashlib
import os
import sys
from datetime import datetime, timedelta, timezone

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer


def main() -> int:
    out = sys.argv[1]
    consistent = "--no-consistent-snapshot" not in sys.argv
    meta_dir = os.path.join(out, "metadata")
    os.makedirs(meta_dir, exist_ok=True)
    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=7)
    signers = {role: CryptoSigner.generate_ed25519() for role in ("root", "targets", "snapshot", "timestamp")}

    root = Metadata(Root(expires=expires, consistent_snapshot=consistent))
    for role, signer in signers.items():
        root.signed.add_key(signer.public_key, role)
    root.sign(signers["root"])

    files = {
        "releases/v1.0.0/demo_v1.0.0_linux_x86_64_full.tar.zst": b"not really a package, but bytes all the same\n" * 100,
        "notes/readme.txt": "unicode é and a newline\n".encode(),
    }
    targets = Metadata(Targets(expires=expires))
    for path, data in files.items():
        info = TargetFile.from_data(path, data, ["sha256"])
        if path.endswith(".tar.zst"):
            info.unrecognized_fields["custom"] = {"written_by": "python-tuf", "n": 1}
        targets.signed.targets[path] = info
        directory, name = os.path.split(path)
        os.makedirs(os.path.join(out, directory), exist_ok=True)
        with open(os.path.join(out, path), "wb") as handle:
            handle.write(data)
        if consistent:
            digest = hashlib.sha256(data).hexdigest()
            with open(os.path.join(out, directory, f"{digest}.{name}"), "wb") as handle:
                handle.write(data)
    new_targets_key = CryptoSigner.generate_ecdsa()
    targets.sign(new_targets_key)

    # Root rotation: version 2 adds a second root key (threshold 2) and a new
    # timestamp key, signed by the old root key and both new root keys.
    new_root_key = CryptoSigner.generate_ed25519()
    new_timestamp = CryptoSigner.generate_ed25519()
    root2 = Metadata(Root.from_dict(copy.deepcopy(root.signed.to_dict())))
    root2.signed.version = 2
    root2.signed.add_key(new_root_key.public_key, "root")
    root2.signed.roles["root"].threshold = 2
    root2.signed.revoke_key(signers["timestamp"].public_key.keyid, "timestamp")
    root2.signed.add_key(new_timestamp.public_key, "timestamp")
    root2.sign(signers["root"], append=True)
    root2.sign(new_root_key, append=True)

    # Version 3 revokes the first root key and replaces the targets key:
    # signed by root 2's threshold (both root keys) and its own (the new one).
    root3 = Metadata(Root.from_dict(copy.deepcopy(root2.signed.to_dict())))
    root3.signed.version = 3
    root3.signed.revoke_key(signers["root"].public_key.keyid, "root")
    root3.signed.roles["root"].threshold = 1
    root3.signed.revoke_key(signers["targets"].public_key.keyid, "targets")
    root3.signed.add_key(new_targets_key.public_key, "targets")
    root3.sign(signers["root"], append=True)
    root3.sign(new_root_key, append=True)

    serializer = JSONSerializer(compact=False)
    targets_name = "1.targets.json" if consistent else "targets.json"
    targets.to_file(os.path.join(meta_dir, targets_name), serializer)

    snapshot = Metadata(Snapshot(expires=expires))
    snapshot.signed.meta["targets.json"] = MetaFile(version=1)
    snapshot.sign(signers["snapshot"])
    snapshot_name = "1.snapshot.json" if consistent else "snapshot.json"
    snapshot.to_file(os.path.join(meta_dir, snapshot_name), serializer)

    timestamp = Metadata(Timestamp(expires=expires))
    with open(os.path.join(meta_dir, snapshot_name), "rb") as handle:
        snapshot_bytes = handle.read()
    timestamp.signed.snapshot_meta = MetaFile(
        version=1, length=len(snapshot_bytes), hashes={"sha256": hashlib.sha256(snapshot_bytes).hexdigest()}
    )
    timestamp.sign(new_timestamp)
    timestamp.to_file(os.path.join(meta_dir, "timestamp.json"), serializer)

    root.to_file(os.path.join(meta_dir, "1.root.json"), serializer)
    root2.to_file(os.path.join(meta_dir, "2.root.json"), serializer)
    root3.to_file(os.path.join(meta_dir, "3.root.json"), serializer)
    root3.to_file(os.path.join(meta_dir, "root.json"), serializer)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
