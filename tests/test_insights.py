"""pyattrib.insights: the report file and the live server, unit-tested and driven in headless Chromium."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import matplotlib
import pytest
import torch
from torch import nn

matplotlib.use("Agg")
import pyattrib as pa  # noqa: E402
from pyattrib._core.errors import ArgumentError  # noqa: E402
from pyattrib.insights import Explorer, Method, report, serve  # noqa: E402

CLASSES = ["zero", "one", "two"]


def _image_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))


def _image_data(n=24):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


METHODS = {
    "saliency": pa.saliency,
    "IG": (pa.integrated_gradients, {"n_steps": 16}),
    "occlusion": (pa.occlusion, {"sliding_window_shapes": (1, 2, 2)}),
}


def test_report_holds_every_example_and_method_and_loads_nothing(tmp_path):
    model, (x, y) = _image_model(), _image_data()
    page = report(model, (x, y), METHODS, CLASSES, path=str(tmp_path / "r.html"))
    assert (tmp_path / "r.html").read_text(encoding="utf-8") == page
    data = json.loads(page.split('id="pa-data">')[1].split("</script>")[0].replace("<\\/", "</"))
    assert [r["index"] for r in data["rows"]] == list(range(24)) and data["classes"] == CLASSES
    assert [m["name"] for m in data["methods"]] == list(METHODS)
    assert data["methods"][1]["options"] == {"n_steps": 16}
    assert all(len(cells) == 24 for cells in data["cells"].values())
    pred = model(x).argmax(1)
    assert [r["pred"] for r in data["rows"]] == pred.tolist() and [r["label"] for r in data["rows"]] == y.tolist()
    for needle in ("http://", "https://", '<link rel="stylesheet', 'src="http', "@import", "url("):
        assert needle not in page
    assert '<meta charset="utf-8">' in page and "iframe srcdoc" in page._repr_html_()


def test_cells_are_the_methods_attributions_of_the_predicted_class():
    model, (x, y) = _image_model(), _image_data(6)
    explorer = Explorer(model, (x, y), METHODS, CLASSES)
    cells = explorer.attribute("IG", {"n_steps": 8}, [1, 4])
    direct = pa.integrated_gradients(model, n_steps=8)(x[[1, 4]], target=model(x[[1, 4]]).argmax(1).tolist())
    for k, i in enumerate([1, 4]):
        assert cells[i] == explorer.render_attribution(i, direct[k, 0].detach().numpy(), None)
    by_label = Explorer(model, (x, y), {"s": pa.saliency}, target="label").attribute("s", indices=[2])
    assert by_label[2] == explorer.render_attribution(
        2, pa.saliency(model)(x[2:3], target=int(y[2]))[0, 0].numpy(), None
    )


def test_text_and_tabular_examples():
    torch.manual_seed(0)
    text_model = nn.Sequential(nn.Embedding(20, 8), nn.Flatten(), nn.Linear(5 * 8, 2))
    ids, labels = torch.randint(0, 20, (4, 5)), torch.tensor([0, 1, 0, 1])
    vocab = [f"w{i}" for i in range(19)] + ["<b&>"]
    layer_ig = (lambda m, **o: pa.layer_integrated_gradients(m, m[0], **o), {"n_steps": 8})
    explorer = Explorer(text_model, (ids, labels), {"layer IG": layer_ig}, tokens=lambda t: [vocab[i] for i in t])
    cells = explorer.attribute("layer IG")
    assert explorer.kind == "text" and all(c.count('<mark class="pa-tok"') == 5 for c in cells.values())
    tab = nn.Linear(3, 2)
    explorer = Explorer(tab, (torch.randn(5, 3), torch.zeros(5, dtype=torch.long)), {"ixg": pa.input_x_gradient},
                        feature_names=["age", "bmi", "bp"])  # fmt: skip
    html = explorer.attribute("ixg", indices=[0])[0]
    assert explorer.kind == "tabular" and html.count("pa-bar-row") == 3 and "bmi" in html
    with pytest.raises(ArgumentError, match="tokens="):
        Explorer(text_model, (ids, labels), {"x": layer_ig})


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"methods": {}}, "methods is empty"),
        ({"methods": {"m": 3}}, "methods\\['m'\\] must be a transform"),
        ({"methods": {"m": (pa.saliency, {"f": nn.ReLU()})}}, "option 'f' must be a bool"),
        ({"target": "true"}, "target must be 'predicted' or 'label'"),
        ({"kind": "audio"}, "kind must be one of"),
        ({"classes": ["a"]}, "classes names 1 classes"),
        ({"dataset": (torch.rand(3, 1, 8, 8), torch.zeros(2))}, "give one label per input"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    args = {"model": _image_model(), "dataset": _image_data(4), "methods": {"s": pa.saliency}, **kwargs}
    with pytest.raises(ArgumentError, match=match):
        Explorer(**args)


def test_option_changes_are_checked():
    method = Method(pa.occlusion, {"sliding_window_shapes": (1, 2, 2), "show_progress": False})
    assert method.with_options({"sliding_window_shapes": [1, 4, 4]}).options["sliding_window_shapes"] == (1, 4, 4)
    for bad in ({"sliding_window_shapes": [1, 2]}, {"show_progress": 1}, {"strides": 2}):
        with pytest.raises(ArgumentError, match="option"):
            method.with_options(bad)


def test_model_is_left_as_it_was():
    model, data = _image_model(), _image_data(4)
    model.train()
    model[0].weight.requires_grad_(False)
    report(model, data, METHODS)
    assert model.training and not model[0].weight.requires_grad and model[3].weight.grad is None
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules())


def _request(url, body=None, raw=None, token=""):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    headers = {"Content-Type": "application/json", "X-Pyattrib-Token": token}
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_server_answers_and_rejects_malformed_requests():
    with serve(_image_model(), _image_data(6), METHODS, CLASSES, port=0) as server:
        assert server.url.startswith("http://127.0.0.1:") and server.url.endswith("?token=" + server.token)
        page = urllib.request.urlopen(server.url, timeout=30).read().decode()
        assert '"live": true' in page
        status, body = _request(
            server.base + "api/attribute",
            {"method": "IG", "options": {"n_steps": 4}, "indices": [0, 2]},
            token=server.token,
        )
        assert status == 200 and sorted(body["cells"]) == ["0", "2"] and body["options"] == {"n_steps": 4}
        for bad in (
            {"raw": b"{not json"},
            {"body": ["IG"]},
            {"body": {"method": "nope"}},
            {"body": {"method": "IG", "options": {"n_steps": "many"}}},
            {"body": {"method": "IG", "options": {"steps": 3}}},
            {"body": {"method": "IG", "options": [1]}},
            {"body": {"method": "IG", "indices": [0, 99]}},
            {"body": {"method": "IG", "indices": "all"}},
            {"body": {"method": "occlusion", "options": {"sliding_window_shapes": [1, 9, 9]}}},
        ):
            status, body = _request(server.base + "api/attribute", **bad, token=server.token)
            assert 400 <= status < 500 and body["error"], bad
        status, body = _request(server.base + "nowhere", token=server.token)
        assert status == 404 and "nowhere" in body["error"]
        status, body = _request(server.base + "api/examples", token=server.token)
        assert status == 200 and len(body["examples"]) == 6  # still serving after the bad requests


# ---- in a real browser ----


@pytest.fixture(scope="module")
def digits():
    """The digits CNN of examples/digits.py, its test images, and the methods of examples/insights.py."""
    import importlib.util

    examples = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
    spec = importlib.util.spec_from_file_location("insights_example", os.path.join(examples, "insights.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model, x, y, _ = module.train(epochs=4)
    return model, x, y, module.METHODS


def _shot(driver, name, tmp_path):
    folder = os.environ.get("PYATTRIB_SCREENSHOTS") or str(tmp_path)
    os.makedirs(folder, exist_ok=True)
    assert driver.save_screenshot(os.path.join(folder, name))


def _console_errors(driver):
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def _count(driver):
    return int(driver.find_element("id", "pa-count").text), len(driver.find_elements("css selector", "tr.pa-row"))


def _images_loaded(driver):
    return driver.execute_script(
        "const im = [...document.querySelectorAll('img.pa-img')];"
        "return im.length > 0 && im.every(i => i.complete && i.naturalWidth > 0);"
    )


def _select(driver, element_id, value):
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", element_id)).select_by_value(value)


def test_report_in_chromium_filters_sorts_and_switches_methods(browser, digits, tmp_path):
    model, x, y, methods = digits
    x, y = x[:30], y[:30]
    path = report(model, (x, y), methods, title="digits CNN").save(str(tmp_path / "report.html"))
    browser.get("file://" + path)
    pred = model(x).argmax(1)
    assert _count(browser) == (30, 30) and _images_loaded(browser)
    assert len(browser.find_elements("css selector", "img.pa-img")) == 30 * 5  # input + four methods
    _shot(browser, "insights_report.png", tmp_path)
    top = int(torch.bincount(pred, minlength=10).argmax())
    _select(browser, "pa-pred", str(top))
    assert _count(browser) == (int((pred == top).sum()),) * 2
    _select(browser, "pa-correct", "incorrect")
    wrong = int(((pred == top) & (pred != y)).sum())
    assert _count(browser) == (wrong, wrong)
    _select(browser, "pa-pred", "all")
    _select(browser, "pa-correct", "all")
    _select(browser, "pa-sort", "conf-desc")
    first = int(browser.find_element("css selector", "tr.pa-row").get_attribute("data-index"))
    assert first == int(torch.softmax(model(x), 1).max(1).values.argmax())
    browser.find_element("css selector", "input.pa-method-toggle[data-method='integrated gradients']").click()
    headers = [h.text.split("\n")[0] for h in browser.find_elements("css selector", "th.pa-method-col")]
    assert headers == ["saliency", "smoothgrad(IG)", "occlusion"]
    assert len(browser.find_elements("css selector", "td.pa-attr[data-method='integrated gradients']")) == 0
    assert _console_errors(browser) == []


def test_served_page_in_chromium_recomputes_with_new_options(browser, digits, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    model, x, y, methods = digits
    with serve(model, (x[:12], y[:12]), methods, port=0, title="digits CNN: live") as server:
        browser.get(server.url)
        assert _count(browser) == (12, 12) and _images_loaded(browser)
        _select(browser, "pa-correct", "correct")
        visible = _count(browser)[0]
        _select(browser, "pa-live-method", "integrated gradients")
        steps = browser.find_element("id", "pa-opt-n_steps")
        steps.clear()
        steps.send_keys("4")
        browser.find_element("id", "pa-live-run").click()
        WebDriverWait(browser, 60).until(
            lambda d: d.find_element("tag name", "body").get_attribute("data-updates") == "1"
        )
        assert f"updated {visible} examples" in browser.find_element("id", "pa-live-status").text
        header = browser.find_element("css selector", "th.pa-method-col:nth-of-type(6)").text
        assert header.startswith("integrated gradients") and "n_steps=4" in header
        assert _images_loaded(browser)
        _shot(browser, "insights_serve.png", tmp_path)
        assert _console_errors(browser) == []
        _select(browser, "pa-live-method", "occlusion")
        window = browser.find_element("id", "pa-opt-sliding_window_shapes")
        window.clear()
        window.send_keys("[1, 2]")
        browser.find_element("id", "pa-live-run").click()
        WebDriverWait(browser, 30).until(lambda d: "error" in d.find_element("id", "pa-live-status").text)
        assert "sliding_window_shapes" in browser.find_element("id", "pa-live-status").text
        assert _count(browser)[1] == visible  # the page is still there and usable
