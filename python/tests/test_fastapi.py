"""`updraft.fastapi` inside a FastAPI app served by uvicorn on 127.0.0.1: the
seed's endpoints answered by the server's own rules, Range, and a whole
update by the Rust client through the app."""

import threading
import time

import httpx
import pytest

fastapi = pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

import updraft
from conftest import current_version, edit_config, free_port
from updraft.fastapi import update_router


@pytest.fixture
def app_url(store):
    app = fastapi.FastAPI()

    @app.get("/hello")
    def hello():
        return {"app": "the integrator's own route"}

    app.include_router(update_router(store.path))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_the_check_endpoint_answers_with_the_seed_fields(app_url):
    answer = httpx.get(f"{app_url}/api/version/check",
                       params={"current_version": "1.0.0", "platform": "linux", "arch": "x86_64"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["update_available"] is True and body["latest_version"] == "1.1.0"
    assert body["update_type"] == "minor" and body["force_update"] is False
    assert httpx.get(f"{app_url}/hello").json() == {"app": "the integrator's own route"}


def test_bad_input_is_a_4xx_naming_the_field(app_url):
    answer = httpx.get(f"{app_url}/api/version/check", params={"current_version": "one", "platform": "linux",
                                                               "arch": "x86_64"})
    assert answer.status_code == 400 and "current_version" in answer.json()["error"]


def test_download_has_the_seed_filename_and_honours_range(app_url, store):
    params = {"version": "1.1.0", "platform": "linux", "arch": "x86_64"}
    whole = httpx.get(f"{app_url}/api/version/download", params=params)
    assert whole.status_code == 200
    assert "kuzflow_v1.1.0_linux_x86_64" in whole.headers["content-disposition"]
    assert whole.content == store.packages("1.1.0")[0].read_bytes()
    part = httpx.get(f"{app_url}/api/version/download", params=params, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    missing = httpx.get(f"{app_url}/api/version/download", params=dict(params, version="9.9.9"))
    assert missing.status_code == 404 and "error" in missing.json()


def test_the_client_updates_through_the_fastapi_app(app_url, install):
    edit_config(install, update_server={"base_url": app_url})
    manager = updraft.UpdateManager(install)
    info = manager.check()
    assert info.version == "1.1.0"
    manager.install(info)
    assert current_version(install) == "1.1.0"
