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
from tuf.api.metadata import DelegatedRole, Delegations, Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp
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
        self.delegated = {}  # name -> Metadata[Targets], signed by self.signers[name]
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

    def delegate(self, parent, name, signers=None, paths=None, prefixes=None, terminating=False, threshold=1):
        """`parent` ("targets" or a delegated role) delegates `paths` to `name`."""
        parent_md = self.targets if parent == "targets" else self.delegated[parent]
        if parent_md.signed.delegations is None:
            parent_md.signed.delegations = Delegations(keys={}, roles={})
        signers = signers or self.signers.get(name) or [CryptoSigner.generate_ed25519()]
        self.signers.setdefault(name, signers)
        parent_md.signed.delegations.roles[name] = DelegatedRole(name, [], threshold, terminating, paths, prefixes)
        for signer in signers:
            parent_md.signed.add_key(signer.public_key, name)
        self.delegated.setdefault(name, Metadata(Targets(expires=future())))

    def add_target(self, path, data, role="targets"):
        info = TargetFile.from_data(path, data, self.hashes)
        (self.targets if role == "targets" else self.delegated[role]).signed.targets[path] = info
        directory, name = os.path.split(path)
        os.makedirs(os.path.join(self.targets_dir, directory), exist_ok=True)
        with open(os.path.join(self.targets_dir, directory, f"{next(iter(info.hashes.values()))}.{name}"), "wb") as handle:
            handle.write(data)

    def publish(self, bump_targets=True):
        if bump_targets:
            self.targets.signed.version += 1 if os.path.exists(os.path.join(self.meta, f"{self.targets.signed.version}.targets.json")) else 0
            self.sign(self.targets, "targets")
            self.targets.to_file(os.path.join(self.meta, f"{self.targets.signed.version}.targets.json"), SERIALIZER)
        for name, md in self.delegated.items():
            # Clients ask for `{version}.{quote(name, safe='')}.json`; a static
            # server decodes that URL path, so the file has the plain name
            # (a role name with `/` lives in a subfolder).
            file = f"{md.signed.version}.{name}.json"
            if os.path.exists(os.path.join(self.meta, file)):
                md.signed.version += 1
                file = f"{md.signed.version}.{name}.json"
            self.sign(md, name)
            os.makedirs(os.path.dirname(os.path.join(self.meta, file)), exist_ok=True)
            md.to_file(os.path.join(self.meta, file), SERIALIZER)
            self.snapshot.signed.meta[f"{name}.json"] = MetaFile(version=md.signed.version)
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


def delegation_outcome(work, setup, wanted):
    """Builds delegations with python-tuf, then downloads each path in
    `wanted` (path -> expected success) with a fresh client."""
    repo, server, client = fresh(work)
    setup(repo)
    repo.publish()
    outcomes = {}
    for path, ok in wanted.items():
        code, error = client.download(path)
        outcomes[path] = {"code": code, "ok": (code == 0) == ok, "error": error[-300:]}
    return all(o["ok"] for o in outcomes.values()), {"outcomes": outcomes}


@scenario
def delegation_basic(work):
    def setup(repo):
        repo.delegate("targets", "beta", paths=["beta/*"])
        repo.add_target("beta/a.txt", b"beta build", role="beta")
    return delegation_outcome(work, setup, {"beta/a.txt": True, "beta/none.txt": False})


@scenario
def delegation_outside_its_paths_is_ignored(work):
    def setup(repo):
        repo.delegate("targets", "beta", paths=["beta/*"])
        repo.add_target("stable/app.bin", b"evil", role="beta")
        repo.add_target("beta/sub/deep.txt", b"too deep for beta/*", role="beta")
    return delegation_outcome(work, setup, {"stable/app.bin": False, "beta/sub/deep.txt": False})


@scenario
def delegation_multi_level(work):
    def setup(repo):
        repo.delegate("targets", "a", paths=["x/*"])
        repo.delegate("a", "b", paths=["x/*.txt"])
        repo.add_target("x/f.txt", b"from b", role="b")
    return delegation_outcome(work, setup, {"x/f.txt": True})


@scenario
def delegation_terminating(work):
    def setup(repo):
        repo.delegate("targets", "first", paths=["t/*"], terminating=True)
        repo.delegate("targets", "second", paths=["t/*"])
        repo.add_target("t/only-in-second.txt", b"unreachable", role="second")
        repo.delegate("targets", "third", paths=["u/*"])
        repo.add_target("u/fine.txt", b"reachable", role="third")
    return delegation_outcome(work, setup, {"t/only-in-second.txt": False, "u/fine.txt": True})


@scenario
def delegation_non_terminating_falls_through(work):
    def setup(repo):
        repo.delegate("targets", "first", paths=["t/*"])
        repo.delegate("targets", "second", paths=["t/*"])
        repo.add_target("t/in-second.txt", b"found", role="second")
    return delegation_outcome(work, setup, {"t/in-second.txt": True})


@scenario
def delegation_priority_first_role_wins(work):
    def setup(repo):
        repo.delegate("targets", "first", paths=["t/*"])
        repo.delegate("targets", "second", paths=["t/*"])
        repo.add_target("t/both.txt", b"first", role="first")
        repo.add_target("t/both.txt", b"second says otherwise", role="second")
        # The file served is the first role's; the second's hash would not match.
        info = repo.delegated["first"].signed.targets["t/both.txt"]
        os.makedirs(os.path.join(repo.targets_dir, "t"), exist_ok=True)
        with open(os.path.join(repo.targets_dir, "t", f"{info.hashes['sha256']}.both.txt"), "wb") as handle:
            handle.write(b"first")
    return delegation_outcome(work, setup, {"t/both.txt": True})


@scenario
def delegation_hash_prefixes(work):
    def setup(repo):
        good = hashlib.sha256(b"h/in.txt").hexdigest()[:2]
        bad = "%02x" % ((int(good, 16) + 1) % 256)
        repo.delegate("targets", "bin-good", prefixes=[good])
        repo.delegate("targets", "bin-bad", prefixes=[bad])
        repo.add_target("h/in.txt", b"prefixed", role="bin-good")
        repo.add_target("h/out.txt", b"wrong bin", role="bin-bad" if hashlib.sha256(b"h/out.txt").hexdigest()[:2] != bad else "bin-good")
    return delegation_outcome(work, setup, {"h/in.txt": True, "h/out.txt": False})


@scenario
def delegation_cycle(work):
    def setup(repo):
        repo.delegate("targets", "a", paths=["c/*"])
        repo.delegate("a", "b", paths=["c/*"])
        repo.delegate("b", "a", paths=["c/*"])
        repo.add_target("c/in-b.txt", b"b", role="b")
    return delegation_outcome(work, setup, {"c/in-b.txt": True, "c/nowhere.txt": False})


@scenario
def delegation_two_roles_to_a_third(work):
    def setup(repo):
        shared = [CryptoSigner.generate_ed25519()]
        repo.delegate("targets", "a", paths=["s/*"])
        repo.delegate("targets", "b", paths=["s/*"])
        repo.delegate("a", "shared", signers=shared, paths=["s/*"])
        repo.delegate("b", "shared", signers=shared, paths=["s/*"])
        repo.add_target("s/file.txt", b"shared", role="shared")
    return delegation_outcome(work, setup, {"s/file.txt": True})


@scenario
def delegation_threshold_of_one_key_twice(work):
    def setup(repo):
        one, two = CryptoSigner.generate_ed25519(), CryptoSigner.generate_ed25519()
        repo.delegate("targets", "pair", signers=[one, two], paths=["p/*"], threshold=2)
        repo.signers["pair"] = [one, one]
        repo.add_target("p/x.txt", b"x", role="pair")
    return delegation_outcome(work, setup, {"p/x.txt": False})


@scenario
def delegation_threshold_met(work):
    def setup(repo):
        one, two = CryptoSigner.generate_ed25519(), CryptoSigner.generate_ed25519()
        repo.delegate("targets", "pair", signers=[one, two], paths=["p/*"], threshold=2)
        repo.add_target("p/x.txt", b"x", role="pair")
    return delegation_outcome(work, setup, {"p/x.txt": True})


@scenario
def delegation_max_roles_visited(work):
    def setup(repo):
        parent = "targets"
        for n in range(40):
            repo.delegate(parent, f"r{n}", paths=["m/*"])
            parent = f"r{n}"
        repo.add_target("m/near.txt", b"near", role="r3")
        repo.add_target("m/far.txt", b"far", role="r38")
    return delegation_outcome(work, setup, {"m/near.txt": True, "m/far.txt": False})


@scenario
def delegation_role_name_needs_encoding(work):
    def setup(repo):
        repo.delegate("targets", "ci/beta builds", paths=["e/*"])
        repo.add_target("e/x.txt", b"encoded", role="ci/beta builds")
    repo_result = delegation_outcome(work, setup, {"e/x.txt": True})
    stored = sorted(os.listdir(os.path.join(work, "client-metadata")))
    return repo_result[0] and "ci%2Fbeta%20builds.json" in stored, {**repo_result[1], "stored": stored}


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
def root_rotated_twice_with_new_online_keys(work):
    """A client that refreshed at root 1 walks 1 -> 2 (new root key) -> 3 (new
    targets and timestamp keys) and accepts targets and timestamp signed by the
    new keys only; its cached timestamp, signed by the old key, is dropped."""
    repo, server, client = fresh(work)
    repo.add_target("a.txt", b"first")
    repo.publish()
    first, error = client.refresh()
    old_root = repo.signers["root"][0]
    new_root = CryptoSigner.generate_ecdsa()
    repo.root.signed.version += 1
    repo.root.signed.revoke_key(old_root.public_key.keyid, "root")
    repo.root.signed.add_key(new_root.public_key, "root")
    repo.signers["root"] = [new_root]
    repo.publish_root(extra_signers=[old_root])
    repo.root.signed.version += 1
    for role in ("targets", "timestamp"):
        old = repo.signers[role][0]
        new = CryptoSigner.generate_ecdsa()
        repo.root.signed.revoke_key(old.public_key.keyid, role)
        repo.root.signed.add_key(new.public_key, role)
        repo.signers[role] = [new]
    repo.publish_root()
    repo.add_target("b.txt", b"second")
    repo.publish()
    code, error = client.refresh()
    trusted = json.load(open(os.path.join(client.metadata_dir, "root.json")))["signed"]["version"]
    downloaded = client.download("b.txt")[0] if code == 0 else None
    return first == 0 and code == 0 and trusted == 3 and downloaded == 0, {
        "first": first, "code": code, "trusted_root": trusted, "download": downloaded, "error": error,
    }


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
