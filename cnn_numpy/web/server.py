"""The web server: the page, and the JSON API the page uses (see api.py).

Starlette app, served by uvicorn on 127.0.0.1 unless told otherwise.  Every
answer is JSON or a static file; a bad request is 400 with {"error": ...},
a body over 1 MB is 413, an unknown path 404, a wrong method 405.  Nothing
is ever written to disk.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from ..interop.common import require
from ..net import Net
from . import api

MAX_BODY = 1 << 20
STATIC = {"app.js": "text/javascript", "style.css": "text/css", "index.html": "text/html"}


def create_app(net: Net, test_images: np.ndarray, test_labels: np.ndarray, seed: int = 0):
    """The Starlette application serving `net`; random images come from test_images."""
    require("starlette", "web")
    orjson = require("orjson", "web")
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    model = api.Model(net)
    description = api.describe_model(net)
    rng = np.random.default_rng(seed)
    static = {name: resources.files(__package__).joinpath("static", name).read_bytes()
              for name in STATIC}

    def answer(data, status: int = 200) -> Response:
        return Response(orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY), status,
                        media_type="application/json")

    def error(status: int, message: str) -> Response:
        return answer({"error": message}, status)

    async def read_json(request: Request):
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            raise HTTPException(413, f"the body is larger than {MAX_BODY:,} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise HTTPException(413, f"the body is larger than {MAX_BODY:,} bytes")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise api.RequestError(f"the body is not valid JSON ({exc})") from None

    def handler(compute, body: bool):
        async def endpoint(request: Request) -> Response:
            try:
                argument = await read_json(request) if body else request.query_params
                return answer(await run_in_threadpool(compute, argument))
            except api.RequestError as exc:
                return error(400, str(exc))
        return endpoint

    async def page(request: Request) -> Response:
        name = request.path_params.get("name", "index.html")
        if name not in static:
            raise HTTPException(404, f"no such file: {name}")
        return Response(static[name], media_type=STATIC[name])

    async def http_error(request: Request, exc: HTTPException) -> Response:
        messages = {404: f"no such page: {request.url.path}",
                    405: f"{request.method} is not allowed on {request.url.path}"}
        return error(exc.status_code, messages.get(exc.status_code, str(exc.detail)))

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/static/{name}", page, methods=["GET"]),
        Route("/api/model", handler(lambda _: description, body=False), methods=["GET"]),
        Route("/api/predict", handler(model.predict, body=True), methods=["POST"]),
        Route("/api/engines", handler(model.compare_engines, body=True), methods=["POST"]),
        Route("/api/stride-groups", handler(api.stride_groups, body=False), methods=["GET"]),
        Route("/api/random-image",
              handler(lambda _: api.random_test_image(test_images, test_labels, rng),
                      body=False), methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


def serve(app, host: str, port: int) -> None:
    """Run `app` with uvicorn until Ctrl-C."""
    uvicorn = require("uvicorn", "web")
    uvicorn.run(app, host=host, port=port, log_level="warning")
