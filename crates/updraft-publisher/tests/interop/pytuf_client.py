#!/usr/bin/env python3
"""Reads an updraft store with python-tuf's reference client (ngclient).

usage: pytuf_client.py STORE_DIR WORK_DIR TARGET_PATH...

Serves STORE_DIR over HTTP on 127.0.0.1 (an ephemeral port), bootstraps
trust from STORE_DIR/metadata/1.root.json, refreshes the metadata and
downloads each TARGET_PATH into WORK_DIR/targets. Prints one JSON object and
exits 0 when python-tuf accepted everything, 1 otherwise.
"""
import functools
import http.server
import json
import os
import sys
import threading

from tuf.ngclient import Updater


def main() -> int:
    store, work, *targets = sys.argv[1:]
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=store)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    metadata_dir = os.path.join(work, "metadata")
    target_dir = os.path.join(work, "targets")
    os.makedirs(metadata_dir, exist_ok=True)
    os.makedirs(target_dir, exist_ok=True)
    with open(os.path.join(store, "metadata", "1.root.json"), "rb") as handle:
        trusted_root = handle.read()
    result = {"downloaded": {}}
    try:
        updater = Updater(
            metadata_dir=metadata_dir,
            metadata_base_url=f"{base}/metadata/",
            target_base_url=f"{base}/",
            target_dir=target_dir,
            bootstrap=trusted_root,
        )
        updater.refresh()
        result["root_version"] = updater._trusted_set.root.version  # noqa: SLF001 (reported for the test)
        result["targets_version"] = updater._trusted_set.targets.version  # noqa: SLF001
        for path in targets:
            info = updater.get_targetinfo(path)
            if info is None:
                raise RuntimeError(f"target {path} is not in the signed targets")
            local = updater.download_target(info, os.path.join(target_dir, path.replace("/", "_")))
            result["downloaded"][path] = {"length": info.length, "file": local, "custom": info.custom}
    except Exception as error:  # any failure is a refusal
        result["error"] = f"{type(error).__name__}: {error}"
        print(json.dumps(result))
        return 1
    finally:
        server.shutdown()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
