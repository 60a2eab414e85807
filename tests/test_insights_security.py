"""The Insights server as an attacker meets it, driven over loopback: a token on every request,
Host and Origin checks, bounded options, hostile bodies, and 50 requests at once."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse

import pytest
import torch
from torch import nn

pytest.importorskip("bottle")
import pyattrib as pa  # noqa: E402
from pyattrib._core.errors import ArgumentError  # noqa: E402
from pyattrib.insights import serve  # noqa: E402
from pyattrib.insights.server import LIMITS  # noqa: E402


class Slow(nn.Module):
    """A small CNN whose forward can be made slow, to hold the model lock."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
        self.delay = 0.0

    def forward(self, x):
        time.sleep(self.delay)
        return self.net(x)


METHODS = {"saliency": pa.saliency, "IG": (pa.integrated_gradients, {"n_steps": 8})}


@pytest.fixture(scope="module")
def server():
    g = torch.Generator().manual_seed(1)
    data = torch.rand(6, 1, 8, 8, generator=g), torch.randint(0, 3, (6,), generator=g)
    model = Slow()
    with serve(model, data, METHODS, port=0) as running:
        running.model = model
        yield running


def call(server, method="GET", path="/api/examples", body=None, headers=None, token=True, raw=None):
    """(status, JSON body) of one request; ``token=True`` sends the server's token as a header."""
    parts = urllib.parse.urlsplit(server.base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    sent = {"Content-Type": "application/json", **(headers or {})}
    if token is True:
        sent["X-Pyattrib-Token"] = server.token
    elif token:
        sent["X-Pyattrib-Token"] = token
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    connection.request(method, path, body=data, headers=sent)
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    try:
        return response.status, json.loads(payload)
    except ValueError:
        return response.status, payload.decode()


def attribute(**body):
    return {"method": "IG", "options": {}, "indices": [0], **body}


def test_the_url_carries_a_random_token_and_every_route_needs_it(server):
    assert len(server.token) >= 24 and server.url.endswith("?token=" + server.token)
    for method, path, body in (
        ("GET", "/", None),
        ("GET", "/api/examples", None),
        ("POST", "/api/attribute", attribute()),
    ):
        assert call(server, method, path, body, token=False)[0] == 403
        assert call(server, method, path, body, token="not-the-token")[0] == 403
    assert call(server, "GET", "/?token=" + server.token, token=False)[0] == 200  # as the browser opens it
    status, body = call(server, "POST", "/api/attribute", attribute())
    assert status == 200 and list(body["cells"]) == ["0"]


def test_another_servers_token_does_not_open_this_one(server):
    g = torch.Generator().manual_seed(2)
    data = torch.rand(2, 1, 8, 8, generator=g), torch.randint(0, 3, (2,), generator=g)
    with serve(Slow(), data, METHODS, port=0) as other:
        assert other.token != server.token
        assert call(server, token=other.token)[0] == 403


def test_a_dns_rebinding_host_is_refused(server):
    status, body = call(server, headers={"Host": "attacker.example:80"})
    assert status == 403 and "Host" in body["error"]
    port = urllib.parse.urlsplit(server.base).port
    for ok in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert call(server, headers={"Host": ok})[0] == 200


def test_a_cross_origin_post_is_refused_even_with_a_simple_content_type(server):
    port = urllib.parse.urlsplit(server.base).port
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{port + 1}"):
        status, body = call(server, "POST", "/api/attribute", attribute(),
                            headers={"Origin": origin, "Content-Type": "text/plain"})  # fmt: skip
        assert status == 403 and "cross-origin" in body["error"]
    assert call(server, "POST", "/api/attribute", attribute(), headers={"Origin": f"http://127.0.0.1:{port}"})[0] == 200


@pytest.mark.parametrize("options, indices, limit", [
    ({"n_steps": 100_000_000}, [0], "512"),
    ({"n_steps": 1e300}, [0], "512"),
    ({"n_steps": -(10**9)}, [0], "512"),
])  # fmt: skip
def test_options_over_the_limits_get_a_4xx_naming_the_limit(server, options, indices, limit):
    status, body = call(server, "POST", "/api/attribute", attribute(options=options, indices=indices))
    assert status == 400 and limit in body["error"] and "n_steps" in body["error"]


def test_too_many_examples_in_one_request_is_refused():
    g = torch.Generator().manual_seed(3)
    data = torch.rand(5, 1, 8, 8, generator=g), torch.randint(0, 3, (5,), generator=g)
    with serve(Slow(), data, METHODS, port=0, limits={"examples": 2, "batch_size": 3}) as small:
        status, body = call(small, "POST", "/api/attribute", attribute(indices=[0, 1, 2]))
        assert status == 400 and "limit 2" in body["error"]
        status, body = call(small, "POST", "/api/attribute", attribute(options={"batch_size": 4}))
        assert status == 400 and "batch_size" in body["error"]


@pytest.mark.parametrize("raw", [
    b"", b"\xff\xfe", b"[" * 100_000, b'{"method": "IG", "options": {"n_steps": NaN}}', b"null",
    b'{"method": ["IG"]}', b'{"method": "IG", "indices": [true]}', b'{"method": "IG", "options": {"n_steps": 2.5}}',
])  # fmt: skip
def test_malformed_bodies_get_a_4xx_and_the_server_keeps_serving(server, raw):
    status, body = call(server, "POST", "/api/attribute", raw=raw)
    assert 400 <= status < 500 and body["error"]
    assert call(server)[0] == 200


def test_an_oversized_body_is_refused_before_it_is_read(server):
    parts = urllib.parse.urlsplit(server.base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    connection.putrequest("POST", "/api/attribute")
    for key, value in (("Content-Type", "application/json"), ("Content-Length", str((1 << 20) + 1)),
                       ("X-Pyattrib-Token", server.token)):  # fmt: skip
        connection.putheader(key, value)
    connection.endheaders()  # the body never comes: the answer must not wait for it
    response = connection.getresponse()
    status, body = response.status, json.loads(response.read())
    connection.close()
    assert status == 413 and "bytes" in body["error"]
    assert call(server)[0] == 200


def test_network_binding_needs_a_token_and_limits_are_checked():
    data = torch.rand(2, 1, 8, 8), torch.tensor([0, 1])
    with pytest.raises(ArgumentError, match="needs a token"):
        serve(Slow(), data, METHODS, port=0, host="0.0.0.0", token="")
    with pytest.raises(ArgumentError, match="unknown keys"):
        serve(Slow(), data, METHODS, port=0, limits={"n_step": 3})
    assert set(LIMITS) == {"steps", "samples", "batch_size", "int", "examples"}


def test_fifty_concurrent_requests_are_all_answered_and_a_slow_one_does_not_block_the_page(server):
    results: list[int] = []
    lock = threading.Lock()

    def one(k):
        hostile = k % 3 == 1
        status, _ = call(server, "POST", "/api/attribute", attribute(indices=[k % 6]), token=not hostile or "x")
        with lock:
            results.append((hostile, status))

    server.model.delay = 0.02
    try:
        threads = [threading.Thread(target=one, args=(k,)) for k in range(50)]
        for t in threads:
            t.start()
        started = time.perf_counter()
        status, body = call(server)  # the page's listing, while the model is busy
        listing = time.perf_counter() - started
        for t in threads:
            t.join(120)
    finally:
        server.model.delay = 0.0
    assert status == 200 and len(body["examples"]) == 6
    assert len(results) == 50 and all(s == (403 if hostile else 200) for hostile, s in results)
    assert listing < 5.0  # answered on its own thread, not after the 33 model calls queued before it
