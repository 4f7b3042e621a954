#!/usr/bin/env python3
"""Runs python-tuf's own TrustedMetadataSet over updraft's TUF fixtures
(crates/updraft-protocol/tests/data) and prints, per scenario, the step at
which python-tuf stopped: {"scenario": "step"}. The interop test compares
these steps with the ones updraft's verifier stops at (expected.json).

usage: pytuf_fixtures.py DATA_DIR
"""
import datetime
import json
import os
import sys

from tuf.api import exceptions
from tuf.ngclient.config import EnvelopeType
from tuf.ngclient._internal.trusted_metadata_set import TrustedMetadataSet


def run(folder: str, reference_time: datetime.datetime) -> str:
    def read(name):
        with open(os.path.join(folder, name), "rb") as handle:
            return handle.read()

    try:
        trusted = TrustedMetadataSet(read("root.json"), EnvelopeType.METADATA)
    except Exception:
        return "root"
    trusted.reference_time = reference_time
    version = 2
    while os.path.exists(os.path.join(folder, "roots", f"{version}.root.json")):
        try:
            trusted.update_root(read(f"roots/{version}.root.json"))
        except Exception:
            return "root"
        version += 1
    if os.path.exists(os.path.join(folder, "trusted", "timestamp.json")):
        try:
            trusted.update_timestamp(read("trusted/timestamp.json"))
        except exceptions.ExpiredMetadataError:
            pass
    try:
        trusted.update_timestamp(read("timestamp.json"))
    except Exception:
        return "timestamp"
    if os.path.exists(os.path.join(folder, "trusted", "snapshot.json")):
        try:
            trusted.update_snapshot(read("trusted/snapshot.json"), trusted=True)
        except Exception:
            pass
    try:
        trusted.update_snapshot(read("snapshot.json"))
    except Exception:
        return "snapshot"
    try:
        trusted.update_targets(read("targets.json"))
    except Exception:
        return "targets"
    return "done"


def main() -> int:
    data = sys.argv[1]
    steps = {}
    for name in sorted(os.listdir(data)):
        with open(os.path.join(data, name, "expected.json")) as handle:
            expected = json.load(handle)
        when = datetime.datetime.fromisoformat(expected["reference_time"].replace("Z", "+00:00"))
        steps[name] = run(os.path.join(data, name), when)
    print(json.dumps(steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
