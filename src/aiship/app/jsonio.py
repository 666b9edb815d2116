"""JSON in and out of the service: orjson on the hot path, the standard library for the odd cases.

orjson parses and encodes a /predict body several times faster than the json module, which is a
measurable share of a request's CPU (bench/README.md, "Where the time goes").
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import orjson
from flask import Response
from flask.json.provider import JSONProvider

from .errors import BadRequest

if TYPE_CHECKING:
    from flask import Flask


def loads(data: bytes | str) -> object:
    """Parse a JSON document.

    orjson refuses NaN and Infinity, which the json module reads: the slow parser then gets its
    turn, so that the data plane can name such values precisely, and a body that is not JSON at
    all gets the json module's error message. A body nested deeper than the json module can
    recurse is a ValueError too, never a RecursionError (a 500).
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        try:
            return json.loads(data)
        except RecursionError:
            raise ValueError(f"it is nested too deeply ({exc})") from None


def parse_body(data: bytes) -> object:
    """A request body's JSON, or BadRequest saying why it is not JSON."""
    try:
        return loads(data)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


def dumps(obj: object) -> bytes:
    """Compact UTF-8 JSON. numpy arrays and scalars become JSON numbers and lists; anything else
    orjson cannot encode (a Path in a log line, say) is written as its str()."""
    return orjson.dumps(obj, default=str, option=orjson.OPT_SERIALIZE_NUMPY)


class OrjsonProvider(JSONProvider):
    """Flask's JSON (jsonify, returned dicts, request.get_json) through loads and dumps above."""

    _app: Flask  # the app create_app hands it; the base class types it as the sans-IO App

    def dumps(self, obj: object, **kwargs: object) -> str:
        return dumps(obj).decode()

    def loads(self, s: str | bytes, **kwargs: object) -> object:
        return loads(s)

    def response(self, *args: object, **kwargs: object) -> Response:
        body = dumps(self._prepare_response_obj(args, kwargs))
        return self._app.response_class(body, mimetype="application/json")
