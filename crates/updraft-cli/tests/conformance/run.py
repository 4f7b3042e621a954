#!/usr/bin/env python3
"""Drives `updraft-conformance` through the TUF conformance suite's client CLI
protocol against repositories written by python-tuf, honest and attacked.

usage: run.py PATH_TO_updraft-conformance

Each scenario builds a repository with python-tuf's Metadata API, serves it
over HTTP on 127.0.0.1, runs the client (init, refresh, download) and
compares its exit code with the expected one. Prints a JSON summary; exits 1
if any scenario ends differently.
"""
import copy
import functools
import hashlib
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
from datetime import datetime, timedelta, timezone

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer

CLIENT = sys.argv[1]
SERIALIZER = JSONSerializer(compact=False)


def future(days=7):
    return datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=days)


class Repo:
    """A consistent-snapshot repository on disk, re-signed on demand."""

    def __init__(self, folder, generate=CryptoSigner.generate_ed25519, hashes=("sha256",)):
        self.folder = folder
        self.meta = os.path.join(folder, "metadata")
        self.targets_dir = os.path.join(folder, "targets")
        self.hashes = list(hashes)
        os.makedirs(self.meta)
        os.makedirs(self.targets_dir)
        self.signers = {role: [generate()] for role in ("root", "targets", "snapshot", "timestamp")}
        self.root = Metadata(Root(expires=future(), consistent_snapshot=True))
        for role, signers in self.signers.items():
            for signer in signers:
                self.root.signed.add_key(signer.public_key, role)
        self.targets = Metadata(Targets(expires=future()))
        self.snapshot = Metadata(Snapshot(expires=future()))
        self.timestamp = Metadata(Timestamp(expires=future()))
        self.publish_root()
        self.publish()

    def sign(self, md, role):
        md.signatures.clear()
        for signer in self.signers[role]:
            md.sign(signer, append=True)

    def publish_root(self, extra_signers=()):
        self.sign(self.root, "root")
        for signer in extra_signers:
            self.root.sign(signer, append=True)
        self.root.to_file(os.path.join(self.meta, f"{self.root.signed.version}.root.json"), SERIALIZER)

    def add_target(self, path, data):
        info = TargetFile.from_data(path, data, self.hashes)
        self.targets.signed.targets[path] = info
        directory, name = os.path.split(path)
        os.makedirs(os.path.join(self.targets_dir, directory), exist_ok=True)
        with open(os.path.join(self.targets_dir, directory, f"{next(iter(info.hashes.values()))}.{name}"), "wb") as handle:
            handle.write(data)

    def publish(self, bump_targets=True):
        if bump_targets:
            self.targets.signed.version += 1 if os.path.exists(os.path.join(self.meta, f"{self.targets.signed.version}.targets.json")) else 0
            self.sign(self.targets, "targets")
            self.targets.to_file(os.path.join(self.meta, f"{self.targets.signed.version}.targets.json"), SERIALIZER)
        targets_data = self.read(f"{self.targets.signed.version}.targets.json")
        self.snapshot.signed.meta["targets.json"] = MetaFile(version=self.targets.signed.version, length=len(targets_data), hashes={name: hashlib.new(name, targets_data).hexdigest() for name in self.hashes})
        if os.path.exists(os.path.join(self.meta, f"{self.snapshot.signed.version}.snapshot.json")):
            self.snapshot.signed.version += 1
        self.sign(self.snapshot, "snapshot")
        path = os.path.join(self.meta, f"{self.snapshot.signed.version}.snapshot.json")
        self.snapshot.to_file(path, SERIALIZER)
        data = open(path, "rb").read()
        self.timestamp.signed.snapshot_meta = MetaFile(version=self.snapshot.signed.version, length=len(data), hashes={name: hashlib.new(name, data).hexdigest() for name in self.hashes})
        if os.path.exists(os.path.join(self.meta, "timestamp.json")):
            self.timestamp.signed.version += 1
        self.sign(self.timestamp, "timestamp")
        self.timestamp.to_file(os.path.join(self.meta, "timestamp.json"), SERIALIZER)

    def read(self, name):
        return open(os.path.join(self.meta, name), "rb").read()

    def write(self, name, data):
        with open(os.path.join(self.meta, name), "wb") as handle:
            handle.write(data)


class Server:
    def __init__(self, folder):
        self.requests = []
        log = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                log.append(self.path)
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=folder))
        self.httpd.handle_error = lambda *args: None  # clients that hang up on endless data are expected
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self):
        self.httpd.shutdown()


class Client:
    def __init__(self, work, server):
        self.metadata_dir = os.path.join(work, "client-metadata")
        self.target_dir = os.path.join(work, "client-targets")
        os.makedirs(self.metadata_dir)
        os.makedirs(self.target_dir)
        self.server = server

    def run(self, *args):
        result = subprocess.run([CLIENT, "--metadata-dir", self.metadata_dir, *args], capture_output=True, text=True, timeout=120)
        return result.returncode, result.stderr.strip()

    def init(self, root_path):
        return self.run("init", root_path)

    def refresh(self):
        return self.run("--metadata-url", f"{self.server.url}/metadata", "refresh")

    def download(self, *names):
        flags = []
        for name in names:
            flags += ["--target-name", name]
        return self.run("--metadata-url", f"{self.server.url}/metadata", *flags, "--target-base-url", f"{self.server.url}/targets", "--target-dir", self.target_dir, "download")


SCENARIOS = {}


def scenario(function):
    SCENARIOS[function.__name__] = function
    return function


def fresh(work, **options):
    repo = Repo(os.path.join(work, "repo"), **options)
    server = Server(repo.folder)
    client = Client(work, server)
    assert client.init(os.path.join(repo.meta, "1.root.json"))[0] == 0
    return repo, server, client


@scenario
def honest_refresh_and_download(work):
    repo, server, client = fresh(work)
    repo.add_target("files/a.txt", b"hello")
    repo.publish()
    steps = [client.refresh()[0], client.download("files/a.txt")[0]]
    stored = sorted(os.listdir(client.metadata_dir))
    downloaded = os.listdir(client.target_dir)
    before = len([r for r in server.requests if "a.txt" in r])
    steps.append(client.download("files/a.txt")[0])
    again = len([r for r in server.requests if "a.txt" in r]) - before
    ok = steps == [0, 0, 0] and stored == ["root.json", "snapshot.json", "targets.json", "timestamp.json"] and downloaded == ["files%2Fa.txt"] and again == 0
    return ok, {"steps": steps, "stored": stored, "downloaded": downloaded, "refetched": again}


def honest_with(work, **options):
    """python-tuf's own signers write the repository; updraft must accept it."""
    repo, server, client = fresh(work, **options)
    repo.add_target("files/a.txt", b"hello")
    repo.publish()
    steps = [client.refresh(), client.download("files/a.txt")]
    codes = [code for code, _ in steps]
    scheme = json.loads(repo.read("1.root.json"))["signed"]["keys"]
    schemes = sorted({key["scheme"] for key in scheme.values()})
    return codes == [0, 0] and os.listdir(client.target_dir) == ["files%2Fa.txt"], {"codes": codes, "schemes": schemes, "errors": [error for _, error in steps if error]}


@scenario
def ecdsa_p256_repository(work):
    return honest_with(work, generate=CryptoSigner.generate_ecdsa)


@scenario
def rsa_pss_repository(work):
    return honest_with(work, generate=CryptoSigner.generate_rsa)


@scenario
def rsa_pkcs1v15_repository(work):
    return honest_with(work, generate=lambda: CryptoSigner.generate_rsa(scheme="rsa-pkcs1v15-sha256"))


@scenario
def sha512_and_sha256_hashes(work):
    return honest_with(work, hashes=("sha256", "sha512"))


@scenario
def sha512_only_hashes(work):
    return honest_with(work, hashes=("sha512",))


@scenario
def sha512_mismatch_is_refused(work):
    repo, server, client = fresh(work, hashes=("sha256", "sha512"))
    repo.add_target("files/d.bin", b"d" * 64)
    repo.publish()
    # The sha256 still matches; only the sha512 is wrong. Every listed hash counts.
    info = repo.targets.signed.targets["files/d.bin"]
    info.hashes["sha512"] = "0" * 128
    repo.publish()
    code, error = client.download("files/d.bin")
    return code == 1 and not os.listdir(client.target_dir), {"code": code, "error": error}


@scenario
def fast_forward_recovery(work):
    """A stolen timestamp key signs version 1000; the publisher then changes the
    timestamp role in root 2 (adding a new key, keeping the old one listed):
    the client must drop its cached timestamp (spec 5.3.11) and accept version 2."""
    repo, server, client = fresh(work)
    assert client.refresh()[0] == 0
    honest_version = repo.timestamp.signed.version
    repo.timestamp.signed.version = 1000
    repo.sign(repo.timestamp, "timestamp")
    repo.timestamp.to_file(os.path.join(repo.meta, "timestamp.json"), SERIALIZER)
    attacked = client.refresh()[0]
    repo.timestamp.signed.version = honest_version
    new_key = CryptoSigner.generate_ed25519()
    repo.root.signed.add_key(new_key.public_key, "timestamp")
    repo.root.signed.version += 1
    repo.publish_root()
    repo.signers["timestamp"] = [new_key]
    repo.publish(bump_targets=False)
    code, error = client.refresh()
    kept = json.load(open(os.path.join(client.metadata_dir, "timestamp.json")))["signed"]["version"]
    return attacked == 0 and code == 0 and kept == honest_version + 1, {"attacked": attacked, "code": code, "kept_timestamp": kept, "error": error}


@scenario
def root_rotation(work):
    repo, server, client = fresh(work)
    new_root = CryptoSigner.generate_ed25519()
    old_root = repo.signers["root"][0]
    repo.root.signed.version += 1
    repo.root.signed.revoke_key(old_root.public_key.keyid, "root")
    repo.root.signed.add_key(new_root.public_key, "root")
    repo.signers["root"] = [new_root]
    repo.publish_root(extra_signers=[old_root])
    repo.publish()
    code, error = client.refresh()
    trusted = json.load(open(os.path.join(client.metadata_dir, "root.json")))["signed"]["version"]
    return code == 0 and trusted == 2, {"code": code, "trusted_root": trusted, "error": error}


@scenario
def root_rotation_without_old_signature(work):
    repo, server, client = fresh(work)
    new_root = CryptoSigner.generate_ed25519()
    repo.root.signed.version += 1
    repo.root.signed.revoke_key(repo.signers["root"][0].public_key.keyid, "root")
    repo.root.signed.add_key(new_root.public_key, "root")
    repo.signers["root"] = [new_root]
    repo.publish_root()
    code, error = client.refresh()
    trusted = json.load(open(os.path.join(client.metadata_dir, "root.json")))["signed"]["version"]
    return code == 1 and trusted == 1, {"code": code, "trusted_root": trusted, "error": error}


@scenario
def expired_timestamp(work):
    repo, server, client = fresh(work)
    repo.timestamp.signed.expires = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=5)
    repo.publish(bump_targets=False)
    code, error = client.refresh()
    return code == 1 and "expired" in error, {"code": code, "error": error}


@scenario
def timestamp_rollback(work):
    repo, server, client = fresh(work)
    old = repo.read("timestamp.json")
    repo.publish(bump_targets=False)
    assert client.refresh()[0] == 0
    repo.write("timestamp.json", old)
    code, error = client.refresh()
    kept = json.load(open(os.path.join(client.metadata_dir, "timestamp.json")))["signed"]["version"]
    return code == 1 and kept == 2, {"code": code, "kept_timestamp": kept, "error": error}


@scenario
def timestamp_signed_by_wrong_key(work):
    repo, server, client = fresh(work)
    repo.signers["timestamp"] = [CryptoSigner.generate_ed25519()]
    repo.publish(bump_targets=False)
    code, error = client.refresh()
    return code == 1 and not os.path.exists(os.path.join(client.metadata_dir, "timestamp.json")), {"code": code, "error": error}


@scenario
def endless_timestamp(work):
    repo, server, client = fresh(work)
    data = repo.read("timestamp.json")
    repo.write("timestamp.json", data + b" " * (10 * 1024 * 1024))
    code, error = client.refresh()
    return code == 1, {"code": code, "error": error}


@scenario
def mix_and_match_snapshot(work):
    repo, server, client = fresh(work)
    snapshot_name = f"{repo.snapshot.signed.version}.snapshot.json"
    good = repo.read(snapshot_name)
    repo.snapshot.signed.expires = future(30)
    repo.sign(repo.snapshot, "snapshot")
    repo.snapshot.to_file(os.path.join(repo.meta, snapshot_name), SERIALIZER)
    code, error = client.refresh()
    repo.write(snapshot_name, good)
    return code == 1, {"code": code, "error": error}


@scenario
def threshold_with_one_key_twice(work):
    repo, server, client = fresh(work)
    second = CryptoSigner.generate_ed25519()
    repo.root.signed.add_key(second.public_key, "targets")
    repo.root.signed.roles["targets"].threshold = 2
    repo.root.signed.version += 1
    repo.publish_root()
    # targets signed twice by the same key
    repo.targets.signed.version += 1
    repo.targets.signatures.clear()
    repo.targets.sign(repo.signers["targets"][0], append=True)
    sig = list(repo.targets.signatures.values())[0]
    repo.targets.to_file(os.path.join(repo.meta, f"{repo.targets.signed.version}.targets.json"), SERIALIZER)
    raw = json.loads(repo.read(f"{repo.targets.signed.version}.targets.json"))
    raw["signatures"].append(copy.deepcopy(raw["signatures"][0]))
    repo.write(f"{repo.targets.signed.version}.targets.json", json.dumps(raw).encode())
    repo.publish(bump_targets=False)
    code, error = client.refresh()
    return code == 1, {"code": code, "error": error, "sig": sig.keyid[:8]}


@scenario
def tampered_target(work):
    repo, server, client = fresh(work)
    repo.add_target("files/b.bin", b"x" * 5000)
    repo.publish()
    info = repo.targets.signed.targets["files/b.bin"]
    path = os.path.join(repo.targets_dir, "files", f"{info.hashes['sha256']}.b.bin")
    with open(path, "wb") as handle:
        handle.write(b"y" * 5000)
    code, error = client.download("files/b.bin")
    return code == 1 and not os.listdir(client.target_dir), {"code": code, "error": error}


@scenario
def endless_target(work):
    repo, server, client = fresh(work)
    repo.add_target("files/c.bin", b"z" * 100)
    repo.publish()
    info = repo.targets.signed.targets["files/c.bin"]
    with open(os.path.join(repo.targets_dir, "files", f"{info.hashes['sha256']}.c.bin"), "wb") as handle:
        handle.write(b"z" * 100 + b"!" * 10_000_000)
    code, error = client.download("files/c.bin")
    return code == 1 and not os.listdir(client.target_dir), {"code": code, "error": error}


@scenario
def unknown_target(work):
    repo, server, client = fresh(work)
    code, error = client.download("files/nope.txt")
    return code == 1, {"code": code, "error": error}


def main():
    results = {}
    failed = []
    for name, function in SCENARIOS.items():
        with tempfile.TemporaryDirectory() as work:
            try:
                ok, detail = function(work)
            except Exception as error:  # a broken scenario is a failure
                ok, detail = False, {"exception": repr(error)}
        results[name] = {"ok": ok, **detail}
        if not ok:
            failed.append(name)
    print(json.dumps({"scenarios": len(results), "failed": failed, "results": results}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
