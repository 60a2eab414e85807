"""``serve``: the Insights page with live attribution, from a small local web server (bottle)."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from torch import nn

from .._core.errors import ArgumentError
from .explorer import Explorer
from .page import page
from .report import page_data

MAX_REQUEST = 1 << 20  # bytes; a request body is a method name, a few options and example numbers


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:  # no access log on the user's console
        pass


class Server:
    """A running Insights server: ``url``, ``stop()``, ``wait()``; a context manager."""

    def __init__(self, httpd: WSGIServer, host: str) -> None:
        self._httpd = httpd
        self.url = f"http://{host}:{httpd.server_port}/"
        self._thread = threading.Thread(target=httpd.serve_forever, name="pyattrib-insights", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def wait(self) -> None:
        """Block until Ctrl-C (for scripts), then stop."""
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"pyattrib Insights at {self.url}"


def application(explorer: Explorer, title: str):
    """The WSGI app: ``GET /`` the page, ``GET /api/examples``, ``POST /api/attribute``."""
    import bottle

    app = bottle.Bottle()
    document = page(page_data(explorer, live=True), title)

    def reply(status: int, body: dict[str, Any]) -> bottle.HTTPResponse:
        return bottle.HTTPResponse(json.dumps(body), status, {"Content-Type": "application/json"})

    @app.get("/")
    def index() -> str:
        return document

    @app.get("/api/examples")
    def examples() -> bottle.HTTPResponse:
        rows = [{k: v for k, v in row.items() if k != "input"} for row in explorer.rows]
        return reply(200, {"classes": explorer.classes, "examples": rows, "methods": list(explorer.methods)})

    @app.post("/api/attribute")
    def attribute() -> bottle.HTTPResponse:
        if (bottle.request.content_length or 0) > MAX_REQUEST:
            return reply(413, {"error": f"request body over {MAX_REQUEST} bytes"})
        try:
            request = json.loads(bottle.request.body.read() or b"null")
        except (ValueError, UnicodeDecodeError):
            return reply(400, {"error": "the body must be JSON: {method, options, indices}"})
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return reply(400, {"error": "the body must be a JSON object with a method name"})
        options = request.get("options") or {}
        if not isinstance(options, dict):
            return reply(400, {"error": "options must be a JSON object of option values"})
        try:
            cells = explorer.attribute(request["method"], options, request.get("indices"))
        except (ArgumentError, TypeError, ValueError, RuntimeError) as error:
            return reply(400, {"error": str(error)})
        method = explorer.methods[request["method"]].with_options(options)
        return reply(200, {"cells": {str(i): c for i, c in cells.items()}, "options": dict(method.options)})

    @app.error(404)
    @app.error(405)
    def not_found(error: bottle.HTTPError) -> str:
        bottle.response.content_type = "application/json"
        return json.dumps({"error": f"{bottle.request.method} {bottle.request.path}: {error.status_line}"})

    return app


def serve(
    model: nn.Module,
    dataset: Any,
    methods: Mapping[str, Any],
    classes: list[str] | None = None,
    port: int = 8600,
    host: str = "127.0.0.1",
    title: str = "pyattrib Insights",
    **options: Any,
) -> Server:
    """Serve the :func:`~pyattrib.insights.report` page with live attribution; returns a :class:`Server`.

    The page adds a panel: pick a method, edit its options, and attribute the examples the
    filters show; the server computes and returns the new maps. Binds to ``localhost`` by
    default (``host="0.0.0.0"`` to share on a network); ``port=0`` picks a free port. Runs in a
    background thread, so notebooks stay usable: ``server.url`` to open, ``server.stop()`` to
    end, ``server.wait()`` to block in a script. Malformed requests get a 4xx JSON error.
    Needs ``bottle`` (``pip install pyattrib[insights]``).
    """
    explorer = Explorer(model, dataset, methods, classes, **options)
    httpd = make_server(host, port, application(explorer, title), handler_class=_Quiet)
    return Server(httpd, host)
