"""The seed's update endpoints inside an existing FastAPI app.

>>> from fastapi import FastAPI
>>> from updraft.fastapi import update_router
>>> app = FastAPI()
>>> app.include_router(update_router("/srv/updates/store"))   # doctest: +SKIP

The router answers ``/api/version/check``, ``/api/version/info``,
``/api/version/download`` (and ``report``) and serves the signed repository
clients read (``/metadata/...``, ``/releases/...``). Nothing is decided in
Python: every request is passed, with its query, body and ``Range`` /
``If-Range`` / ``If-None-Match`` headers, to ``updraft serve``'s own code
running in this process on a loopback port (:class:`updraft.EmbeddedServer`),
and its answer is streamed back as it is (206, 304, 404 with a JSON error,
``Content-Disposition``, ``ETag``). Needs the ``fastapi`` extra
(``pip install './python[fastapi]'``: FastAPI and httpx).
"""

from typing import Optional

import httpx
from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

from updraft._updraft import EmbeddedServer

__all__ = ["update_router", "EmbeddedServer"]

# Request headers the server's answers depend on; everything else stays in the app.
FORWARDED_REQUEST = ("range", "if-range", "if-none-match", "if-modified-since", "content-type",
                     "user-agent", "accept", "accept-encoding", "host")
# Hop-by-hop headers are this hop's, not the answer's.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authenticate", "proxy-authorization"}


def update_router(store, public_url: Optional[str] = None, server: Optional[EmbeddedServer] = None) -> APIRouter:
    """An ``APIRouter`` with the seed's endpoints answered from the signed store in ``store``.

    ``public_url`` is the base URL put into answers (``download_url``); by
    default the request's ``Host``. The embedded server starts now and
    stops with the app (the router's shutdown event).
    """
    server = server or EmbeddedServer(str(store), public_url)
    client = httpx.AsyncClient(base_url=server.url, timeout=httpx.Timeout(60.0, connect=5.0))
    router = APIRouter(on_shutdown=[client.aclose, server.stop])
    router.embedded_server = server  # for tests and health pages

    async def forward(request: Request) -> StreamingResponse:
        headers = {name: value for name, value in request.headers.items() if name in FORWARDED_REQUEST}
        upstream = client.build_request(request.method, request.url.path,
                                        params=request.url.query, headers=headers,
                                        content=await request.body())
        answer = await client.send(upstream, stream=True)
        out_headers = {name: value for name, value in answer.headers.items() if name not in HOP_BY_HOP}
        return StreamingResponse(answer.aiter_raw(), status_code=answer.status_code, headers=out_headers,
                                 background=BackgroundTask(answer.aclose))

    for path, methods in (("/api/version/{endpoint}", ["GET", "POST"]),
                          ("/metadata/{path:path}", ["GET"]),
                          ("/releases/{path:path}", ["GET"])):
        router.add_api_route(path, forward, methods=methods, include_in_schema=path.startswith("/api"))
    return router
