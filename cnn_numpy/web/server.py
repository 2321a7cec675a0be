"""The web server: the page, and the JSON API the page uses (see api.py).

Starlette app, served by uvicorn on 127.0.0.1 unless told otherwise.  Every
answer is JSON or a static file; a bad request is 400 with {"error": ...},
a body over 1 MB is 413, an unknown path 404, a wrong method 405.  Nothing
is ever written to disk.
"""

from __future__ import annotations

import contextlib
from importlib import resources

import numpy as np

from ..interop.common import require
from ..net import Net
from . import api, live

MAX_BODY = 1 << 20
STATIC = {"app.js": "text/javascript", "style.css": "text/css", "index.html": "text/html",
          "favicon.svg": "image/svg+xml"}


def create_app(net: Net, test_images: np.ndarray, test_labels: np.ndarray, seed: int = 0,
               datasets: list[str] | None = None, load_data=None):
    """The Starlette application serving `net`; random images come from test_images.

    The Train panel trains on `datasets` (names; the first is the default), loaded with
    load_data(name) (default: the bundled sample only).
    """
    require("starlette", "web")
    orjson = require("orjson", "web")
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    model = api.Model(net)
    if load_data is None:
        datasets, load_data = ["mnist-sample"], _sample_loader()
    trainer = live.Trainer(model, list(datasets), load_data)
    rng = np.random.default_rng(seed)
    static = {name: resources.files(__package__).joinpath("static", name).read_bytes()
              for name in STATIC}

    def encode(data) -> bytes:
        return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)

    trainer.encode = encode

    def answer(data, status: int = 200) -> Response:
        if isinstance(data, Response):
            return data
        return Response(data if isinstance(data, bytes) else encode(data), status,
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
        if not body:
            return None  # no body: an endpoint that needs one says what it needs
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
                return error(getattr(exc, "status", 400), str(exc))
        return endpoint

    def download(kind: str):
        media = {"model.npz": "application/octet-stream", "history.csv": "text/csv",
                 "history.json": "application/json"}[kind]

        def compute(params) -> Response:
            number = params["number"]
            content = {"model.npz": trainer.model_file, "history.csv": trainer.history_csv,
                       "history.json": trainer.history_json}[kind](number)
            name = f"cnn-numpy-run-{number}-{kind}".replace("-model.npz", ".npz")
            return Response(content, media_type=media,
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})

        async def endpoint(request: Request) -> Response:
            try:
                return await run_in_threadpool(compute, request.path_params)
            except api.RequestError as exc:
                return error(getattr(exc, "status", 404), str(exc))
        return endpoint

    def set_probe(body) -> dict:
        image = api.read_image(body)
        label = body.get("label")
        if label is not None and (isinstance(label, bool) or not isinstance(label, int)
                                  or not 0 <= label < 10):
            raise api.RequestError("label must be a class number 0..9, or null for a drawing")
        trainer.set_probe(image[..., None], label)
        return {"probe": "set"}

    async def page(request: Request) -> Response:
        name = request.path_params.get("name", "index.html")
        if request.url.path == "/favicon.ico":
            name = "favicon.svg"
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
        Route("/favicon.ico", page, methods=["GET"]),
        Route("/api/model", handler(model.describe, body=False), methods=["GET"]),
        Route("/api/saliency", handler(model.explain_gradients, body=True), methods=["POST"]),
        Route("/api/train/start", handler(trainer.start, body=True), methods=["POST"]),
        Route("/api/train/step", handler(trainer.step, body=True), methods=["POST"]),
        Route("/api/train/set", handler(trainer.set, body=True), methods=["POST"]),
        Route("/api/train/probe", handler(set_probe, body=True), methods=["POST"]),
        *(Route(f"/api/train/{name}", handler(getattr(trainer, name), body=False),
                methods=["POST"]) for name in ("pause", "resume", "reset")),
        Route("/api/train/state", handler(trainer.state, body=False), methods=["GET"]),
        Route("/api/runs", handler(trainer.runs_list, body=False), methods=["GET"]),
        *(Route(f"/api/runs/{{number}}/{kind}", download(kind), methods=["GET"])
          for kind in ("model.npz", "history.csv", "history.json")),
        Route("/api/predict", handler(model.predict, body=True), methods=["POST"]),
        Route("/api/engines", handler(model.compare_engines, body=True), methods=["POST"]),
        Route("/api/stride-groups", handler(api.stride_groups, body=False), methods=["GET"]),
        Route("/api/random-image",
              handler(lambda _: api.random_test_image(test_images, test_labels, rng),
                      body=False), methods=["GET"]),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await run_in_threadpool(trainer.reset)  # a run in progress ends with the server

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error},
                    lifespan=lifespan)
    app.state.trainer = trainer
    return app


def _sample_loader():
    from ..data import load_dataset

    cache = {}

    def load(name: str):
        if name not in cache:
            cache[name] = load_dataset(name, progress=False)
        return cache[name]
    return load


def serve(app, host: str, port: int) -> None:
    """Run `app` with uvicorn until Ctrl-C."""
    uvicorn = require("uvicorn", "web")
    uvicorn.run(app, host=host, port=port, log_level="warning")
