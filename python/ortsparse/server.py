"""`ortsparse server`: the image pipelines over HTTP (FastAPI on uvicorn; `ortsparse[server]`).

Each endpoint serves one pipeline under its route prefix (none for a single endpoint):

    POST {route}/predict/from_files   multipart, field `request`: one or more image files
    POST {route}/predict              JSON: {"images": [base64, ...], <the task's options>}
    GET  /health                      {"status": "ok"}
    GET  /v2/models                   every endpoint's model
    GET  /v2/models/{name}            one model's metadata (task, inputs, outputs, engine)
    GET  /v2/models/{name}/ready
    GET  /docs, /openapi.json         FastAPI's OpenAPI documentation

Requests run on a bounded pool of threads (ORT sessions run concurrently); an upload that is not
an image, empty, too large or sent in another field is a 4xx with a message, and the server goes
on serving. uvicorn shuts down gracefully on SIGINT and SIGTERM: requests under way finish.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ortsparse.pipelines import ImageError, Pipeline
from ortsparse.pipelines.images import load_rgb

try:
    # At module level: FastAPI reads the handlers' annotations (strings here) in this namespace.
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import JSONResponse
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "ortsparse's server needs FastAPI and uvicorn: pip install 'ortsparse[server]'"
    ) from error

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5543
DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024
UPLOAD_FIELD = "request"
# What an endpoint's kwargs may pass to its pipeline besides the endpoint's own fields.
PIPELINE_KWARGS = {"class_names", "image_size", "cache_dir"}


class ConfigError(ValueError):
    """A server configuration that cannot be served."""


@dataclass
class Endpoint:
    """One pipeline to serve; ``kwargs`` go to Pipeline.create (class_names, image_size)."""

    task: str
    model: str
    route: str = ""
    name: str = ""
    batch_size: int = 1
    num_cores: int | None = None
    engine_type: str = "ortsparse"
    verify: bool = True
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.kwargs) - PIPELINE_KWARGS
        if unknown:
            raise ConfigError(
                f"kwargs: unknown {sorted(unknown)}; known: {sorted(PIPELINE_KWARGS)}"
            )
        if self.route and not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", self.route):
            raise ConfigError(f"route {self.route!r} must look like /name or /a/b")
        if not self.name:
            self.name = self.route.strip("/").replace("/", "_") or Path(self.model).stem


@dataclass
class ServerConfig:
    endpoints: list[Endpoint]
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    workers: int = 0  # threads serving requests; 0: one per core
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise ConfigError("no endpoints to serve")
        if len(self.endpoints) > 1 and any(not endpoint.route for endpoint in self.endpoints):
            raise ConfigError("with several endpoints each needs its own route")
        for key in ("route", "name"):
            values = [getattr(endpoint, key) for endpoint in self.endpoints]
            shared = sorted({value for value in values if values.count(value) > 1})
            if shared:
                raise ConfigError(f"two endpoints share the {key} {shared[0]!r}")


def load_config(path: str | os.PathLike) -> ServerConfig:
    """A ServerConfig from a YAML file:

    host: 127.0.0.1          # optional, as port, workers and max_upload_bytes
    port: 5543
    endpoints:
      - task: yolo
        model: yolov8n_pruned.onnx
        route: /detect       # optional for a single endpoint
        batch_size: 1
        kwargs: {class_names: names.json}
    """
    import yaml

    try:
        document = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping with an 'endpoints' list")
    endpoint_keys = {f.name for f in fields(Endpoint)}
    server_keys = {f.name for f in fields(ServerConfig)}
    unknown = set(document) - server_keys
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; known: {sorted(server_keys)}")
    entries = document.get("endpoints")
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: 'endpoints' must be a list of endpoints")
    endpoints = []
    base = Path(path).resolve().parent
    for index, entry in enumerate(entries):
        where = f"{path}: endpoints[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping")
        unknown = set(entry) - endpoint_keys
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(endpoint_keys)}"
            )
        missing = {"task", "model"} - set(entry)
        if missing:
            raise ConfigError(f"{where}: missing {sorted(missing)}")
        entry = {**entry, "model": str(base / entry["model"])}
        try:
            endpoints.append(Endpoint(**entry))
        except (ConfigError, TypeError) as error:
            raise ConfigError(f"{where}: {error}") from None
    try:
        return ServerConfig(endpoints, **{k: v for k, v in document.items() if k != "endpoints"})
    except (ConfigError, TypeError) as error:
        raise ConfigError(f"{path}: {error}") from None


def create_app(config: ServerConfig, pipelines: Sequence[Pipeline] | None = None):
    """The FastAPI application serving ``config``'s endpoints (``pipelines``: already created,
    one per endpoint, else created here)."""
    if pipelines is None:
        pipelines = [
            Pipeline.create(
                endpoint.task,
                endpoint.model,
                batch_size=endpoint.batch_size,
                num_cores=endpoint.num_cores,
                engine_type=endpoint.engine_type,
                verify=endpoint.verify,
                **endpoint.kwargs,
            )
            for endpoint in config.endpoints
        ]
    pool = ThreadPoolExecutor(
        max_workers=config.workers or os.cpu_count() or 1, thread_name_prefix="ortsparse-serve"
    )

    @asynccontextmanager
    async def lifespan(app):
        yield
        pool.shutdown(wait=True)

    app = FastAPI(
        title="ortsparse server",
        description="Image pipelines on ortsparse's sparse execution of ONNX Runtime",
        lifespan=lifespan,
    )

    async def run(pipeline: Pipeline, images: list[tuple[str, bytes]], options: dict) -> dict:
        """The pipeline's answer for ``images`` (name, encoded image), on the pool."""

        def decode_and_run():
            decoded = []
            for name, data in images:
                try:
                    decoded.append(load_rgb(data))
                except ImageError as error:
                    raise ImageError(f"{name}: {error}") from None
            return pipeline(decoded, **options)

        loop = asyncio.get_running_loop()
        try:
            output = await loop.run_in_executor(pool, decode_and_run)
        except ImageError as error:
            raise HTTPException(400, str(error)) from None
        except ValueError as error:  # a bad option value
            raise HTTPException(422, str(error)) from None
        return {**output.to_dict(), "timings_ms": output.timings}

    def too_large(request: Request) -> bool:
        length = request.headers.get("content-length")
        return length is not None and length.isdigit() and int(length) > config.max_upload_bytes

    def add_routes(endpoint: Endpoint, pipeline: Pipeline) -> None:
        @app.post(f"{endpoint.route}/predict/from_files", name=f"{endpoint.name}_from_files")
        async def predict_from_files(request: Request) -> JSONResponse:
            """Images as multipart files in the field `request` (one or more)."""
            if too_large(request):
                raise HTTPException(413, f"the upload exceeds {config.max_upload_bytes} bytes")
            try:
                form = await request.form()
            except Exception as error:  # starlette raises several kinds for a bad body
                raise HTTPException(400, f"expected a multipart/form-data body ({error})") from None
            uploads = [item for item in form.getlist(UPLOAD_FIELD) if hasattr(item, "read")]
            if not uploads:
                sent = ", ".join(sorted(set(form.keys()))) or "none"
                raise HTTPException(
                    400,
                    f"send the images as files in the multipart field "
                    f"'{UPLOAD_FIELD}' (fields sent: {sent})",
                )
            images = []
            for upload in uploads:
                data = await upload.read()
                if not data:
                    raise HTTPException(400, f"the file {upload.filename!r} is empty")
                if len(data) > config.max_upload_bytes:
                    raise HTTPException(
                        413, f"{upload.filename!r} exceeds {config.max_upload_bytes} bytes"
                    )
                images.append((upload.filename or "an upload", data))
            options = {key: _number(value) for key, value in request.query_params.items()}
            return JSONResponse(await run(pipeline, images, options))

        @app.post(f"{endpoint.route}/predict", name=f"{endpoint.name}_predict")
        async def predict(request: Request) -> JSONResponse:
            """JSON {"images": [base64-encoded image files], plus the task's options}."""
            if too_large(request):
                raise HTTPException(413, f"the body exceeds {config.max_upload_bytes} bytes")
            try:
                body = await request.json()
            except ValueError:
                raise HTTPException(400, "expected a JSON body") from None
            if not isinstance(body, dict) or not isinstance(body.get("images"), list):
                raise HTTPException(400, 'expected {"images": [base64 image, ...], ...}')
            try:
                images = [
                    (f"images[{index}]", base64.b64decode(image, validate=True))
                    for index, image in enumerate(body.pop("images"))
                ]
            except (binascii.Error, TypeError, ValueError):
                raise HTTPException(400, "every entry of images must be a base64 string") from None
            return JSONResponse(await run(pipeline, images, body))

        @app.get(f"/v2/models/{endpoint.name}", name=f"{endpoint.name}_metadata")
        async def metadata() -> dict:
            return _metadata(endpoint, pipeline)

        @app.get(f"/v2/models/{endpoint.name}/ready", name=f"{endpoint.name}_ready")
        async def ready() -> dict:
            return {"ready": True}

    for endpoint, pipeline in zip(config.endpoints, pipelines):
        add_routes(endpoint, pipeline)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/v2/models")
    async def models() -> dict:
        return {
            "models": [
                _metadata(endpoint, pipeline)
                for endpoint, pipeline in zip(config.endpoints, pipelines)
            ]
        }

    return app


def _metadata(endpoint: Endpoint, pipeline: Pipeline) -> dict:
    session = pipeline.session

    def tensors(values) -> list[dict]:
        return [{"name": v.name, "datatype": v.type, "shape": v.shape} for v in values]

    return {
        "name": endpoint.name,
        "task": pipeline.task,
        "model_path": pipeline.model_path,
        "engine_type": pipeline.engine_type,
        "batch_size": pipeline.batch_size,
        "num_cores": pipeline.num_cores,
        "image_size": [pipeline.image_height, pipeline.image_width],
        "routes": [f"{endpoint.route}/predict/from_files", f"{endpoint.route}/predict"],
        "inputs": tensors(session.get_inputs()),
        "outputs": tensors(session.get_outputs()),
    }


def _number(text: str) -> Any:
    """A query parameter's value: an int or float where it reads as one."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def serve(config: ServerConfig) -> None:
    """Serves until SIGINT or SIGTERM."""
    import uvicorn

    app = create_app(config)
    uvicorn.run(app, host=config.host, port=config.port, log_level="info")
