"""The HTTP layer: routes, JSON in and out, errors as {"error": ...}. No logic of its own."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from functools import partial
from importlib import resources
from typing import TYPE_CHECKING, cast

from flask import Blueprint, Flask, Request, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, RequestURITooLarge

from . import jsonio
from .dataplane import DataPlane
from .errors import ServiceError, UnsupportedMediaType
from .logs import log_request
from .metrics import Metrics
from .v2 import HEADER_LENGTH, InferenceRequest

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from werkzeug.local import LocalProxy

JSON = "application/json"
SERVER_NAME = "aiship"
SERVER_VERSION = "0.1.0"
STARTED = "app.started"  # WSGI environ key
# The longest path plus query string answered: longer gets a JSON 414 here. granian itself answers
# a URI over 64 KiB, a head over its 408 KiB buffer, over 100 header fields or a head it cannot
# parse, with a bare status and no body.
MAX_URI_BYTES = 8192

bp = Blueprint("rest", __name__)


def dataplane() -> DataPlane:
    plane: DataPlane = current_app.extensions["dataplane"]  # create_app put it there
    return plane


def json_body() -> object:
    """The request's JSON body; NaN and Infinity parse here and are refused by the data plane.
    A body without a Content-Type is read as JSON."""
    # The exact header every JSON client sends skips werkzeug's header parsing (bench/README.md,
    # "The app's own cost, third round"); anything else is parsed and judged.
    if request.environ.get("CONTENT_TYPE") != JSON and request.mimetype and not request.is_json:
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, not {request.mimetype or 'missing'!r}"
        )
    return jsonio.parse_body(request.get_data(cache=False))


@bp.get("/v2/health/live")
def live() -> dict[str, bool]:
    return dataplane().live()


@bp.get("/v2/health/ready")
def ready() -> dict[str, bool]:
    return dataplane().ready()


@bp.get("/v2")
def server_metadata() -> dict[str, object]:
    return dataplane().server_metadata(SERVER_NAME, SERVER_VERSION)


@bp.get("/v2/models/<name>")
@bp.get("/v2/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None) -> dict[str, object]:
    return dataplane().model_metadata(name, version)


@bp.get("/v2/models/<name>/ready")
@bp.get("/v2/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None) -> dict[str, object]:
    return dataplane().model_ready(name, version)


@bp.post("/v2/models/<name>/infer")
@bp.post("/v2/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None) -> tuple[bytes, dict[str, str]]:
    inference = InferenceRequest.decode(
        request.get_data(cache=False), request.mimetype, request.headers.get(HEADER_LENGTH)
    )
    return dataplane().infer(name, inference, version).encode()


@bp.post("/predict")
def predict() -> dict[str, object]:
    return dataplane().predict(json_body())


@bp.get("/version")
def version() -> dict[str, dict[str, str]]:
    return dataplane().version()


@bp.get("/metrics")
def metrics() -> Response:
    exposition: Metrics = current_app.extensions["metrics"]
    return Response(exposition.exposition(), content_type=exposition.content_type)


@bp.get("/openapi.json")
def openapi() -> Response:
    spec = resources.files(__package__).joinpath("openapi.json").read_bytes()
    return Response(spec, content_type="application/json")


def init_app(app: Flask) -> None:
    """Register the routes, the error handlers and the per-request log and metrics."""
    app.register_blueprint(bp)
    app.register_error_handler(ServiceError, _service_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    # Flask's documented way to add WSGI middleware, though it declares wsgi_app a method
    app.wsgi_app = _timed(app.wsgi_app)  # type: ignore[method-assign, assignment]
    app.before_request(_limit_uri)
    app.after_request(partial(_record, app.extensions["metrics"]))


def _service_error(exc: ServiceError) -> tuple[Response, int]:
    return jsonify(error=str(exc)), exc.status


def _http_error(exc: HTTPException) -> tuple[Response, int, dict[str, str]]:
    messages = {
        404: f"no route {request.path}: see /openapi.json",
        405: f"{request.method} is not allowed on {request.path}",
        413: "the request body is over the limit of "
        f"{current_app.config['MAX_CONTENT_LENGTH']} bytes (MAX_REQUEST_BYTES)",
        414: f"the path and query are over the limit of {MAX_URI_BYTES} bytes: send the data "
        "in the body",
    }
    message = messages.get(exc.code or 500, exc.description or exc.name)
    allowed = getattr(exc, "valid_methods", None)  # a 405 must say what is allowed (RFC 9110)
    headers = {"Allow": ", ".join(allowed)} if allowed else {}
    # Flask hands error handlers no HTTPException without a code (handle_http_exception)
    return jsonify(error=message), cast(int, exc.code), headers


def _limit_uri() -> None:
    environ = request.environ
    if len(environ["PATH_INFO"]) + len(environ.get("QUERY_STRING", "")) > MAX_URI_BYTES:
        raise RequestURITooLarge()


def _unexpected_error(exc: Exception) -> tuple[Response, int]:
    logging.getLogger("app").exception("unexpected error on %s %s", request.method, request.path)
    return jsonify(error="internal error: see the server log"), 500


def _record(metrics: Metrics, response: Response) -> Response:
    """Time, count and log every answer, errors included."""
    # One context lookup, not one per attribute; flask types `request` as the Request it proxies.
    req = cast("LocalProxy[Request]", request)._get_current_object()
    seconds = time.perf_counter() - req.environ[STARTED]
    route = req.url_rule.rule if req.url_rule else "<unmatched>"
    metrics.observe_request(req.method, route, response.status_code, seconds)
    log_request(req.method, req.path, response.status_code, seconds)
    return response


def _timed(wsgi_app: WSGIApplication) -> WSGIApplication:
    """WSGI middleware: the time a request reached the app, for _record."""

    def timed(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ[STARTED] = time.perf_counter()
        return wsgi_app(environ, start_response)

    return timed
