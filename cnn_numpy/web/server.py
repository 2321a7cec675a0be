"""The web server: the page, and the JSON API the page uses (see api.py).

Starlette app, served by uvicorn on 127.0.0.1 unless told otherwise.  Every
answer is JSON or a static file; a bad request is 400 with {"error": ...},
a body over 1 MB is 413, an unknown path 404, a wrong method 405.  Nothing
is ever written to disk.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np

from ..data.datasets import Dataset
from ..extras import require
from ..files import PathLike
from ..net import Net
from . import api, errors, inspector, live, own

if TYPE_CHECKING:
    from starlette.applications import Starlette

MAX_BODY = 1 << 20
STATIC = {"app.js": "text/javascript", "inspector.js": "text/javascript",
          "share.js": "text/javascript", "style.css": "text/css", "index.html": "text/html",
          "favicon.svg": "image/svg+xml"}


def require_web() -> None:
    """ImportError naming the `web` extra unless its packages are installed."""
    for module in ("starlette", "uvicorn", "orjson"):
        require(module, "web")


def check_can_listen(host: str, port: int) -> None:
    """ValueError unless a server could listen on host:port now (before minutes of work)."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            probe.bind(address)
    except OSError as exc:
        raise ValueError(f"cannot listen on {host} port {port}: {exc.strerror or exc}; choose "
                         "another --port (or --host)") from None


def dataset_loader(data_dir: PathLike | None = None) -> Callable[[str], Dataset]:
    """load(name): the dataset, read once (from data_dir or where load_dataset looks; never
    downloaded) and kept."""
    from ..data import load_dataset

    cache = {}

    def load(name: str):
        if name not in cache:
            cache[name] = load_dataset(name, data_dir, download=False, progress=False)
        return cache[name]
    return load


def create_app(net: Net, test_images: np.ndarray, test_labels: np.ndarray, seed: int = 0,
               datasets: list[str] | None = None,
               data_dir: PathLike | None = None) -> Starlette:
    """The Starlette application serving `net`; random images come from test_images.

    The Train panel trains on `datasets` (names, found on this machine; the first is the
    default; default: the bundled sample only), read from data_dir or where
    load_dataset looks.
    """
    require("starlette", "web")
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    model = api.Model(net)
    drawn, loader = own.OwnClasses(), dataset_loader(data_dir)

    def load(name: str):
        return drawn.dataset() if name == own.DATASET else loader(name)

    trainer = live.Trainer(model, [*(datasets or ["mnist-sample"]), own.DATASET], load)
    endpoints = _Endpoints(model, trainer, drawn)
    trainer.encode = endpoints.encode
    rng = np.random.default_rng(seed)

    def random_image(_):
        """A test image of the dataset the net shown learned (the served set's for the
        served model)."""
        if model.dataset is not None:
            with model.lock:
                net = model.net
            data = live.shown_data(net, load, model.dataset)  # labels of the net's classes
            if len(data.x_test):
                return {**api.random_test_image(data.x_test, data.y_test, rng),
                        "dataset": model.dataset}
        return {**api.random_test_image(test_images, test_labels, rng), "dataset": None}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await run_in_threadpool(trainer.reset)  # a run in progress ends with the server

    app = Starlette(routes=endpoints.routes(random_image),
                    exception_handlers={HTTPException: endpoints.http_error},
                    lifespan=lifespan)
    app.state.trainer = trainer
    return app


class _Endpoints:
    """The HTTP side of the page: reading requests, answering JSON or files, the routes.
    What each answer holds is computed in api.py and live.py."""

    MEDIA = {"model.npz": "application/octet-stream", "history.csv": "text/csv",
             "history.json": "application/json"}

    def __init__(self, model: api.Model, trainer: live.Trainer, drawn: own.OwnClasses):
        self.orjson = require("orjson", "web")
        self.model, self.trainer, self.drawn = model, trainer, drawn
        self.inspector = inspector.Inspector(model, trainer)
        self.errors = errors.ErrorAnalysis(model, trainer.datasets[0], trainer.load_data)
        self.static = {name: resources.files(__package__).joinpath("static", name).read_bytes()
                       for name in STATIC}

    def encode(self, data) -> bytes:
        return self.orjson.dumps(data, option=self.orjson.OPT_SERIALIZE_NUMPY)

    def answer(self, data, status: int = 200):
        from starlette.responses import Response

        if isinstance(data, Response):
            return data
        return Response(data if isinstance(data, bytes) else self.encode(data), status,
                        media_type="application/json")

    def error(self, status: int, message: str):
        return self.answer({"error": message}, status)

    async def read_json(self, request):
        """The request's JSON body (None for none); 413 past MAX_BODY, 400 if not JSON."""
        from starlette.exceptions import HTTPException

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
            return self.orjson.loads(body)
        except self.orjson.JSONDecodeError as exc:
            raise api.RequestError(f"the body is not valid JSON ({exc})") from None

    def handler(self, compute, body: bool):
        """An endpoint answering compute(the JSON body, or the query) in a worker thread."""
        from starlette.concurrency import run_in_threadpool

        async def endpoint(request):
            try:
                argument = await self.read_json(request) if body else request.query_params
                return self.answer(await run_in_threadpool(compute, argument))
            except api.RequestError as exc:
                return self.error(getattr(exc, "status", 400), str(exc))
        return endpoint

    def download(self, kind: str):
        """GET /api/runs/N/<kind>: a run's model or history, as an attachment."""
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import Response

        def compute(params):
            number = params["number"]
            content = {"model.npz": self.trainer.model_file,
                       "history.csv": self.trainer.history_csv,
                       "history.json": self.trainer.history_json}[kind](number)
            name = f"cnn-numpy-run-{number}-{kind}".replace("-model.npz", ".npz")
            return Response(content, media_type=self.MEDIA[kind],
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})

        async def endpoint(request):
            try:
                return await run_in_threadpool(compute, request.path_params)
            except api.RequestError as exc:
                return self.error(getattr(exc, "status", 404), str(exc))
        return endpoint

    def own_download(self, kind: str):
        """GET /api/own/classes.zip or .npz: the drawn set, as an attachment."""
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import Response

        make = self.drawn.zip_bytes if kind == "zip" else self.drawn.npz_bytes

        async def endpoint(request):
            try:
                content = await run_in_threadpool(make)
            except api.RequestError as exc:
                return self.error(400, str(exc))
            return Response(content, media_type="application/zip" if kind == "zip" else
                            "application/octet-stream", headers={
                                "Content-Disposition":
                                    f'attachment; filename="cnn-numpy-classes.{kind}"'})
        return endpoint

    def set_probe(self, body) -> dict:
        image = api.read_image(body)
        label = body.get("label")
        if label is not None and (isinstance(label, bool) or not isinstance(label, int)
                                  or not 0 <= label < 10):
            raise api.RequestError("label must be a class number 0..9, or null for a drawing")
        dataset = body.get("dataset")
        if dataset is not None and not isinstance(dataset, str):
            raise api.RequestError("dataset must be the name of the test image's dataset")
        self.trainer.set_probe(image[..., None], label, dataset)
        return {"probe": "set"}

    async def page(self, request):
        from starlette.exceptions import HTTPException
        from starlette.responses import Response

        name = request.path_params.get("name", "index.html")
        if request.url.path == "/favicon.ico":
            name = "favicon.svg"
        if name not in self.static:
            raise HTTPException(404, f"no such file: {name}")
        return Response(self.static[name], media_type=STATIC[name])

    async def http_error(self, request, exc):
        messages = {404: f"no such page: {request.url.path}",
                    405: f"{request.method} is not allowed on {request.url.path}"}
        return self.error(exc.status_code, messages.get(exc.status_code, str(exc.detail)))

    def routes(self, random_image) -> list:
        from starlette.routing import Route

        model, trainer, handler = self.model, self.trainer, self.handler
        get, post = ["GET"], ["POST"]
        return [
            Route("/", self.page, methods=get),
            Route("/static/{name}", self.page, methods=get),
            Route("/favicon.ico", self.page, methods=get),
            Route("/api/model", handler(model.describe, body=False), methods=get),
            Route("/api/saliency", handler(model.explain_gradients, body=True), methods=post),
            Route("/api/train/start", handler(trainer.start, body=True), methods=post),
            Route("/api/train/step", handler(trainer.step, body=True), methods=post),
            Route("/api/train/set", handler(trainer.set, body=True), methods=post),
            Route("/api/train/probe", handler(self.set_probe, body=True), methods=post),
            *(Route(f"/api/train/{name}", handler(getattr(trainer, name), body=False),
                    methods=post) for name in ("pause", "resume", "reset")),
            Route("/api/train/state", handler(trainer.state, body=False), methods=get),
            Route("/api/runs", handler(trainer.runs_list, body=False), methods=get),
            *(Route(f"/api/runs/{{number}}/{kind}", self.download(kind), methods=get)
              for kind in self.MEDIA),
            Route("/api/predict", handler(model.predict, body=True), methods=post),
            Route("/api/engines", handler(model.compare_engines, body=True), methods=post),
            Route("/api/stride-groups", handler(api.stride_groups, body=False), methods=get),
            Route("/api/random-image", handler(random_image, body=False), methods=get),
            Route("/api/inspect", handler(self.inspector.last, body=False), methods=get),
            Route("/api/inspect/step", handler(self.inspector.step, body=True), methods=post),
            Route("/api/inspect/array", handler(self.inspector.array, body=False),
                  methods=get),
            Route("/api/inspect/explain", handler(self.inspector.explain, body=False),
                  methods=get),
            Route("/api/inspect/pixel", handler(self.inspector.pixel, body=True),
                  methods=post),
            Route("/api/confusion", handler(self.errors.confusion, body=False), methods=get),
            Route("/api/confusion/cell", handler(self.errors.cell, body=False), methods=get),
            Route("/api/own", handler(self.drawn.state, body=False), methods=get),
            Route("/api/own/classes", handler(self.drawn.set_classes, body=True), methods=post),
            Route("/api/own/examples", handler(self.drawn.add, body=True), methods=post),
            Route("/api/own/remove", handler(self.drawn.remove, body=True), methods=post),
            *(Route(f"/api/own/classes.{kind}", self.own_download(kind), methods=get)
              for kind in ("zip", "npz")),
        ]


def serve(app: Starlette, host: str, port: int) -> None:
    """Run `app` with uvicorn until Ctrl-C."""
    uvicorn = require("uvicorn", "web")
    uvicorn.run(app, host=host, port=port, log_level="warning")
