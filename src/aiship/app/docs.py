"""/docs: Swagger UI over the service's own /openapi.json, for people trying the API by hand.

Everything the page loads comes from the service itself: Swagger UI's files from the pinned
flask-swagger-ui wheel (its dist/ folder, byte for byte the swagger-ui-dist release of the same
version), which the image installs from the locked wheelhouse like any dependency, and docs.js,
which starts it. So the page works with no internet, and its Content-Security-Policy can refuse
every other origin and every inline script.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, cast

from flask import Blueprint, Response, abort, send_file

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

bp = Blueprint("docs", __name__)

SWAGGER_UI_FILES = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"})
STARTER = "docs.js"

# Swagger UI renders with React, which sets styles through the DOM (allowed) and injects no
# <style>; the images it draws are data: URIs.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@bp.get("/docs")
def page() -> Response:
    response = send_file(_on_disk(resources.files(__package__) / "docs.html"), mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


@bp.get("/docs/<name>")
def asset(name: str) -> Response:
    """Only the named files: nothing else of either package is reachable."""
    if name == STARTER:
        return send_file(_on_disk(resources.files(__package__) / STARTER))
    if name in SWAGGER_UI_FILES:
        return send_file(_on_disk(resources.files("flask_swagger_ui") / "dist" / name))
    abort(404)


def _on_disk(file: Traversable) -> Path:
    """FILE as the path send_file takes: both packages are installed as folders, never zipped,
    and resources.files gives a folder's files as Paths."""
    return cast(Path, file)
