"""``serve``: the Insights page with live attribution, from a small local web server (bottle).

Safe by default, as Jupyter is: a random token in the URL that every request must carry, a
Host check against the bound name and loopback (DNS rebinding), an Origin check on POST
(cross-site requests), bounded options, and a threaded server with a socket timeout whose
model calls run one at a time.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from torch import nn

from .._core.errors import ArgumentError, needs
from .explorer import Explorer
from .page import page
from .report import page_data

MAX_REQUEST = 1 << 20  # bytes; a request body is a method name, a few options and example numbers
#: the largest value a request may give: options named like ``n_steps``/``n_samples``/``batch_size``,
#: any other int option (``"int"``), and the number of examples in one request (``"examples"``)
LIMITS: dict[str, int] = {"steps": 512, "samples": 512, "batch_size": 4096, "int": 4096, "examples": 256}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")
TOKEN_HEADER = "X-Pyattrib-Token"


class _Quiet(WSGIRequestHandler):
    timeout = 30  # seconds a connection may stay silent (a slow or stalled client) before it is dropped

    def log_message(self, *args: Any) -> None:  # no access log on the user's console
        pass


class _ThreadedServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a stalled connection never keeps the process alive
    request_queue_size = 128  # a burst of connections waits in the backlog instead of being reset


class Server:
    """A running Insights server: ``url`` (with its token), ``token``, ``stop()``, ``wait()``; a context manager.

    Args:
        httpd: The running HTTP server.
        host: The interface to listen on.
        token: The secret the page must present; default a random one (printed in the URL).

    Example:
        >>> methods = {"saliency": pa.saliency, "IG": (pa.integrated_gradients, {"n_steps": 8})}
        >>> server = pa.insights.serve(cnn, (images, torch.tensor([0, 1])), methods, port=0)
        pyattrib Insights: open http://127.0.0.1:...
        >>> isinstance(server, pa.insights.Server)
        True
        >>> server.stop()
    """

    def __init__(self, httpd: WSGIServer, host: str, token: str) -> None:
        self._httpd = httpd
        self.token = token
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{httpd.server_port}/" + (f"?token={token}" if token else "")
        self._thread = threading.Thread(target=httpd.serve_forever, name="pyattrib-insights", daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        """The URL without the token (append ``api/...`` to it)."""
        return self.url.split("?", 1)[0]

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


def check_limits(options: Mapping[str, Any], indices: Any, limits: Mapping[str, int]) -> None:
    """Refuse a request whose options or example count pass ``limits`` (an ``ArgumentError`` naming both)."""
    for key, value in options.items():
        kind = next((k for k in ("steps", "samples", "batch_size") if k in key), "int")
        for v in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not abs(v) <= limits[kind]:
                raise ArgumentError(
                    f"option {key!r} = {v!r} is over this server's limit {limits[kind]} "
                    f"(serve(..., limits={{{kind!r}: ...}}) raises it)"
                )
    if isinstance(indices, list) and len(indices) > limits["examples"]:
        raise ArgumentError(
            f"indices: {len(indices)} examples in one request is over this server's limit {limits['examples']}; "
            "filter the page to fewer examples, or raise serve(..., limits={'examples': ...})"
        )


def application(explorer: Explorer, title: str, limits: Mapping[str, int] = LIMITS) -> Callable[..., Any]:
    """The WSGI app: ``GET /`` the page, ``GET /api/examples``, ``POST /api/attribute``."""
    import bottle

    app = bottle.Bottle()
    document = page(page_data(explorer, live=True), title)
    model_lock = threading.Lock()  # model calls one at a time: eval switching is not thread-safe

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
        except (ValueError, UnicodeDecodeError, RecursionError):
            return reply(400, {"error": "the body must be JSON: {method, options, indices}"})
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return reply(400, {"error": "the body must be a JSON object with a method name"})
        options = request.get("options") or {}
        if not isinstance(options, dict):
            return reply(400, {"error": "options must be a JSON object of option values"})
        try:
            check_limits(options, request.get("indices"), limits)
            if not model_lock.acquire(timeout=60):
                return reply(503, {"error": "the model is busy with another request; try again"})
            try:
                cells = explorer.attribute(request["method"], options, request.get("indices"))
            finally:
                model_lock.release()
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


def guarded(app: Callable[..., Any], token: str, hosts: Iterable[str] | None) -> Callable[..., Any]:
    """``app`` behind the checks every request passes: the Host header names an allowed host
    (``hosts``: names without port; ``None`` accepts any, for a wildcard bind), a POST's Origin
    is the page's own, and the token is given (``?token=`` or the ``X-Pyattrib-Token`` header)."""
    allowed = None if hosts is None else {h.lower().strip("[]") for h in hosts}

    def refuse(start_response: Callable[..., Any], why: str) -> list[bytes]:
        start_response("403 Forbidden", [("Content-Type", "application/json")])
        return [json.dumps({"error": why}).encode()]

    def checked(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        host = environ.get("HTTP_HOST", "")
        name = urllib.parse.urlsplit("//" + host).hostname or ""
        if allowed is not None and name.lower() not in allowed:
            return refuse(start_response, f"Host {host!r} is not this server's; open the URL serve() printed")
        origin = environ.get("HTTP_ORIGIN")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD") and origin is not None and origin != f"http://{host}":
            return refuse(start_response, f"cross-origin request from {origin!r} refused")
        if token:
            given = urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).get("token", [""])[0]
            given = environ.get("HTTP_X_PYATTRIB_TOKEN") or given
            if not hmac.compare_digest(given.encode(), token.encode()):
                why = "missing or wrong token; open the URL serve() printed (it ends in ?token=)"
                return refuse(start_response, why)
        return app(environ, start_response)

    return checked


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@needs("bottle", "insights")
@needs("matplotlib", "insights")
def serve(
    model: nn.Module,
    dataset: Any,
    methods: Mapping[str, Any],
    classes: list[str] | None = None,
    port: int = 8600,
    host: str = "127.0.0.1",
    title: str = "pyattrib Insights",
    token: str | None = None,
    limits: Mapping[str, int] | None = None,
    allowed_hosts: Iterable[str] = (),
    **options: Any,
) -> Server:
    """Serve the :func:`~pyattrib.insights.report` page with live attribution; returns a :class:`Server`.

    The page adds a panel: pick a method, edit its options, and attribute the examples the
    filters show; the server computes and returns the new maps. Runs in a background thread,
    so notebooks stay usable: open ``server.url``, ``server.stop()`` to end, ``server.wait()``
    to block in a script. Needs ``bottle`` (``pip install "pyattrib[insights]"``).

    Security, as Jupyter's: ``token`` (default a fresh random one; ``""`` turns it off, which
    only a loopback ``host`` allows) must come with every request, as ``?token=`` (it is in
    ``server.url``) or the ``X-Pyattrib-Token`` header; any other request gets 403. The Host
    header must name the bound host, a loopback name or one of ``allowed_hosts`` (a
    DNS-rebinding page names its own); with ``host="0.0.0.0"`` any Host is accepted and the
    token is what protects. A POST whose ``Origin`` is not the page's own is refused (a web
    page open in the browser cannot drive the server). Options are bounded by ``limits``
    (defaults ``LIMITS``: 512 steps or samples, batch size 4096, 256 examples a request)
    with a 400 naming the limit; malformed requests get a 4xx JSON error. Requests are served
    on threads, each connection dropped after 30 s of silence; model calls run one at a time.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        dataset: The examples: a sequence of ``(input, label)`` pairs, or a ``(inputs, labels)`` pair of
            tensors.
        methods: The attribution methods: a mapping from a display name to a transform or a ``Method``.
        classes: The class names, by index.
        port: The port (0: any free port).
        host: The interface to listen on.
        title: A title.
        token: The secret the page must present; default a random one (printed in the URL).
        limits: Upper bounds of the options a request may set (defaults: ``LIMITS`` in
            ``pyattrib/insights/server.py``).
        allowed_hosts: Further Host header values accepted (a name the server is reached by).
        **options: Keyword configuration of the class it builds (see there).

    Returns:
        Server: running in a background thread; ``url`` (with the token), ``stop()``.

    Example:
        >>> methods = {"saliency": pa.saliency, "IG": (pa.integrated_gradients, {"n_steps": 8})}
        >>> server = pa.insights.serve(cnn, (images, torch.tensor([0, 1])), methods, port=0)
        pyattrib Insights: open http://127.0.0.1:...
        >>> server.url.startswith("http://127.0.0.1:")
        True
        >>> server.stop()
    """
    if token is None:
        token = secrets.token_urlsafe(24)
    if not isinstance(token, str):
        raise ArgumentError(f"token must be a string (or None for a random one); got {type(token).__name__}")
    if not token and not is_loopback(host):
        raise ArgumentError(
            f"host={host!r} serves the network: it needs a token (leave token=None for a random one); "
            "token='' is only for loopback hosts"
        )
    bounds = {**LIMITS, **(limits or {})}
    if set(bounds) != set(LIMITS):
        unknown = sorted(set(bounds) - set(LIMITS))
        raise ArgumentError(f"limits has unknown keys {unknown}; the keys are {sorted(LIMITS)}")
    explorer = Explorer(model, dataset, methods, classes, **options)
    wildcard = host in ("0.0.0.0", "::", "")
    hosts = None if wildcard else {host, *LOOPBACK_NAMES, socket.gethostname(), *allowed_hosts}
    app = guarded(application(explorer, title, bounds), token, hosts)
    httpd = make_server(host, port, app, server_class=_ThreadedServer, handler_class=_Quiet)
    server = Server(httpd, "127.0.0.1" if wildcard else host, token)
    print(f"pyattrib Insights: open {server.url}", flush=True)  # the token is in the URL, as Jupyter prints it
    return server
