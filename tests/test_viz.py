"""pyattrib.viz and pyattrib.compat.visualization: Captum's normalised values, self-contained HTML, snapshots."""

from __future__ import annotations

import html.parser
import os
import re

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
from captum.attr import visualization as captum_viz  # noqa: E402
from matplotlib import cm  # noqa: E402
from matplotlib.testing.compare import compare_images  # noqa: E402

import pyattrib.viz as viz  # noqa: E402
from pyattrib._core.errors import ArgumentError  # noqa: E402
from pyattrib.compat import visualization as compat_viz  # noqa: E402

SNAPSHOTS = os.path.join(os.path.dirname(__file__), "snapshots")
IMAGE_CASES = [
    (method, sign)
    for method in ("heat_map", "blended_heat_map", "original_image", "masked_image", "alpha_scaling")
    for sign in ("absolute_value", "positive", "negative", "all")
    if not (method in ("masked_image", "alpha_scaling") and sign == "all")
]


@pytest.fixture(autouse=True)
def _captum_timeseries_on_new_matplotlib(monkeypatch):
    # Captum 0.9 calls matplotlib.cm.get_cmap, removed in matplotlib 3.9; give it back for the reference runs
    if not hasattr(cm, "get_cmap"):
        monkeypatch.setattr(
            cm, "get_cmap", lambda c: matplotlib.colormaps[c] if isinstance(c, str) else c, raising=False
        )


def _drawn(ax):
    return [(np.asarray(im.get_array()), im.get_cmap().name, im.get_clim()) for im in ax.images]


@pytest.mark.parametrize("method,sign", IMAGE_CASES)
@pytest.mark.parametrize("outlier_perc", [2, 10])
def test_image_attr_draws_captums_normalised_arrays(method, sign, outlier_perc):
    rng = np.random.default_rng(0)
    attr, image = rng.normal(size=(9, 7, 3)), rng.random((9, 7, 3))
    _, ours = viz.image_attr(torch.tensor(attr).permute(2, 0, 1), torch.tensor(image).permute(2, 0, 1), method, sign,
                             outlier_perc=outlier_perc)  # fmt: skip
    _, theirs = captum_viz.visualize_image_attr(attr, image, method, sign, outlier_perc=outlier_perc, use_pyplot=False)
    assert len(ours.images) == len(theirs.images) >= 1
    for (a, cmap_a, clim_a), (b, cmap_b, clim_b) in zip(_drawn(ours), _drawn(theirs)):
        np.testing.assert_array_equal(a, b)
        assert (cmap_a, clim_a) == (cmap_b, clim_b)


def test_image_attr_multiple_and_compat_match_captum():
    rng = np.random.default_rng(1)
    attr, image = rng.normal(size=(6, 6, 1)), rng.random((6, 6, 1)) * 255
    methods, signs = ["original_image", "heat_map", "masked_image"], ["all", "all", "positive"]
    _, ours = compat_viz.visualize_image_attr_multiple(
        attr, image, methods, signs, titles=list("abc"), use_pyplot=False
    )
    _, theirs = captum_viz.visualize_image_attr_multiple(
        attr, image, methods, signs, titles=list("abc"), use_pyplot=False
    )
    for a, b in zip(ours, theirs):
        assert a.get_title() == b.get_title()
        for (x, *_), (y, *_) in zip(_drawn(a), _drawn(b)):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("method", ["overlay_individual", "overlay_combined", "colored_graph"])
@pytest.mark.parametrize("sign", ["absolute_value", "all", "negative"])
def test_timeseries_attr_matches_captum(method, sign):
    rng = np.random.default_rng(2)
    attr, data = rng.normal(size=(30, 3)), rng.normal(size=(30, 3))
    _, ours = compat_viz.visualize_timeseries_attr(attr, data, method=method, sign=sign, use_pyplot=False,
                                                   channel_labels=["a", "b", "c"])  # fmt: skip
    _, theirs = captum_viz.visualize_timeseries_attr(attr, data, method=method, sign=sign, use_pyplot=False,
                                                     channel_labels=["a", "b", "c"])  # fmt: skip
    for a, b in zip(np.atleast_1d(ours), np.atleast_1d(theirs)):
        np.testing.assert_allclose(
            [p.get_facecolor() for p in a.patches], [p.get_facecolor() for p in b.patches], atol=1e-6
        )
        assert len(a.collections) == len(b.collections)
        for x, y in zip(a.collections, b.collections):
            np.testing.assert_array_equal(x.get_array(), y.get_array())
        assert [line.get_ydata().tolist() for line in a.lines] == [line.get_ydata().tolist() for line in b.lines]


def _colours(page: str) -> list[str]:
    return re.findall(r"background-color: ?(hsl\([^)]*\))", page)


def test_text_colours_equal_captums_on_its_scale():
    scores = np.array([0.9, -0.3, 0.0, 0.05, -1.0, 1.7])
    words = ["a", "b", "c", "d", "e", "f"]
    ours = viz.text_attr(words, scores, scale=1.0)
    theirs = captum_viz.format_word_importances(words, scores)
    assert _colours(ours) == _colours(theirs)
    assert _colours(compat_viz.format_word_importances(words, scores)) == _colours(theirs)


class _Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.tags, self.attrs = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)
        if tag not in ("meta", "br"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"


def test_text_attr_is_a_self_contained_valid_page_with_a_shared_scale():
    page = viz.text_attr([["the", "film", "x<y&z"], ["the", "end"]], [torch.tensor([0.01, 2.0, -1.0]), [0.01, 0.02]],
                         labels=["pos", "neg"], title="reviews")  # fmt: skip
    parser = _Page()
    parser.feed(page)
    assert parser.stack == [] and parser.tags[:4] == ["html", "head", "meta", "title"]
    assert ("charset", "utf-8") in parser.attrs
    assert "script" not in parser.tags and "link" not in parser.tags and "img" not in parser.tags
    assert "http" not in page and "url(" not in page and "x&lt;y&amp;z" in page
    colours = _colours(page)
    # one scale for both rows (the largest |score|, 2.0): the second row's "the" and "end" stay near white
    assert colours[3] == colours[0] == "hsl(120, 75%, 100%)" and colours[4] == "hsl(120, 75%, 100%)"
    assert colours[1] == "hsl(120, 75%, 50%)" and colours[2] == "hsl(0, 75%, 80%)"
    assert "2" in page.split("Colour key")[1] and page._repr_html_() == str(page)


def test_compat_visualize_text_renders_records():
    record = compat_viz.VisualizationDataRecord(torch.tensor([0.5, -0.5]), 0.93, 1, 0, 1, 0.4, ["good", "bad"], 0.01)
    page = str(compat_viz.visualize_text([record]))
    assert "0.93" in page and _colours(page) == _colours(
        captum_viz.format_word_importances(["good", "bad"], [0.5, -0.5])
    )


def test_viz_never_shows_and_leaves_pyplot_alone(monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("pyattrib.viz called show()"))
    before = plt.get_fignums()
    viz.image_attr(np.ones((4, 4)), method="heat_map")
    viz.timeseries_attr(np.ones((5, 2)), np.ones((5, 2)))
    viz.text_attr_figure(["a"], [1.0])
    assert plt.get_fignums() == before


def test_every_attribution_figure_states_its_normalisation():
    attr = np.arange(16.0).reshape(4, 4)
    figure, _ = viz.image_attr(attr, np.ones((4, 4, 3)), "blended_heat_map", "all")
    labels = [ax.get_xlabel() for ax in figure.axes]
    assert any("attr / " in label and "clipped" in label for label in labels)
    figure, _ = viz.image_attr(attr, np.ones((4, 4, 3)), "masked_image", "positive")
    assert any("pixel kept" in ax.get_xlabel() for ax in figure.axes)
    figure, _ = viz.timeseries_attr(np.ones((5, 2)), np.ones((5, 2)), sign="all")
    assert any("attr / 1" in ax.get_xlabel() for ax in figure.axes)
    figure, _ = viz.image_attr(np.zeros((3, 3)))  # Captum fails here (division by zero scale)
    assert any("every attribution is 0" in ax.get_xlabel() for ax in figure.axes)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: viz.image_attr(np.ones((2, 5, 5, 3))), "attr must be one image"),
        (lambda: viz.image_attr(np.ones((5, 5)), sign="both"), "sign must be one of"),
        (lambda: viz.image_attr(np.ones((5, 5)), method="blended_heat_map"), "pass image="),
        (lambda: viz.image_attr(np.ones((5, 5)), np.ones((4, 4, 3)), "blended_heat_map"), "pass the image attributed"),
        (lambda: viz.image_attr(np.ones((5, 5)), np.ones((5, 5, 3)), "masked_image", "all"), "sign='positive'"),
        (lambda: viz.image_attr_multiple(np.ones((5, 5)), None, ["heat_map"], ["all", "all"]), "one sign per method"),
        (lambda: viz.text_attr(["a", "b"], [1.0]), "one score per token"),
        (lambda: viz.text_attr(["a"], [1.0], scale=0), "scale must be a positive"),
        (lambda: viz.timeseries_attr(np.ones(5), np.ones(5)), "attr must be 2-D"),
        (lambda: viz.timeseries_attr(np.ones((5, 2)), np.ones((5, 2)), x_values=np.ones(3)), "x_values must hold 5"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ArgumentError, match=re.escape(match)):
        call()


def _snapshot(name, figure, tmp_path):
    expected = os.path.join(SNAPSHOTS, name)
    actual = str(tmp_path / name)
    figure.savefig(actual, dpi=60)
    if os.environ.get("PYATTRIB_UPDATE_SNAPSHOTS"):
        figure.savefig(expected, dpi=60)
    assert compare_images(expected, actual, tol=6) is None


def test_snapshots_of_our_figures(tmp_path):
    rng = np.random.default_rng(3)
    image = np.clip(rng.random((3, 16, 16)) * 0.5 + np.linspace(0, 0.5, 16), 0, 1)
    attr = np.outer(np.hanning(16), np.hanning(16)) - 0.3
    figure, _ = viz.image_attr_multiple(attr, image, ["original_image", "blended_heat_map", "heat_map"],
                                        ["all", "all", "absolute_value"], titles=["image", "blend", "|attr|"],
                                        figsize=(9, 4))  # fmt: skip
    _snapshot("image_attr_multiple.png", figure, tmp_path)
    figure, _ = viz.text_attr_figure([["a", "fine", "film"], ["dull"]], [[0.1, 0.8, 0.3], [-0.6]], labels=["+", "-"])
    _snapshot("text_attr_figure.png", figure, tmp_path)
    t = np.linspace(0, 6, 40)
    figure, _ = viz.timeseries_attr(np.stack([np.sin(t), np.cos(t)], 1), np.stack([np.sin(t), t / 6], 1), sign="all")
    _snapshot("timeseries_attr.png", figure, tmp_path)


def test_feature_attr_shares_and_bad_input():
    attrs = {"a": torch.tensor([[1.0, -3.0, 0.0], [1.0, 1.0, 0.0]]), "b": np.array([0.0, 2.0, 2.0])}
    _, ax = viz.feature_attr(attrs, ["f0", "f1", "f2"], top=2)
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(
        heights, [2 / 3, 1 / 3, 0.5, 0.0], rtol=1e-6, atol=1e-9
    )  # ordered by "a": f1 then f0; "b" in that order
    assert [t.get_text() for t in ax.get_xticklabels()] == ["f1", "f0"] and "sums to 1" in ax.get_ylabel()
    with pytest.raises(ArgumentError, match="one per feature"):
        viz.feature_attr(attrs, ["f0"])
    with pytest.raises(ArgumentError, match="same features"):
        viz.feature_attr({"a": np.ones(3), "b": np.ones(4)})


def test_shap_style_plots_draw_the_numbers_they_are_given(tmp_path):
    rng = np.random.default_rng(7)
    values = rng.normal(size=(40, 6)) * np.array([3, 1, 0.5, 2, 0.1, 0.2])
    data = rng.normal(size=(40, 6))
    names = [f"f{j}" for j in range(6)]
    _, ax = viz.waterfall(values[0], 1.5, names, data=data[0], top=4)
    widths = [p.get_width() for p in ax.patches]
    assert len(widths) == 5 and np.isclose(sum(widths), values[0].sum())  # 4 features + the rest
    order = np.argsort(-np.abs(values[0]))[:4]
    assert np.allclose(widths[:4], values[0][order])
    _, ax = viz.bar(values, names, top=3)
    heights = sorted((p.get_width() for p in ax.patches), reverse=True)
    assert np.allclose(heights, np.sort(np.abs(values).mean(0))[::-1][:3])
    _, ax = viz.beeswarm(values, data, names, top=6)
    assert len(ax.collections) == 6
    xs = np.sort(np.concatenate([c.get_offsets()[:, 0] for c in ax.collections]))
    assert np.allclose(xs, np.sort(values.ravel()))
    _, ax = viz.heatmap(values, names, top=6)
    assert np.allclose(ax.images[0].get_array(), values[:, np.argsort(-np.abs(values).mean(0))].T)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 8))
    axes = figure.subplots(2, 2)
    viz.waterfall(values[0], 1.5, names, ax=axes[0, 0])
    viz.bar(values, names, ax=axes[0, 1])
    viz.beeswarm(values, data, names, ax=axes[1, 0])
    viz.heatmap(values[:12], names, ax=axes[1, 1])
    _snapshot("shap_plots.png", figure, tmp_path)
    with pytest.raises(ArgumentError, match="one example"):
        viz.waterfall(values, 0.0)
    with pytest.raises(ArgumentError, match="feature_names has 2 names"):
        viz.bar(values, ["a", "b"])


def test_force_plot_pushes_to_the_output_in_matplotlib_and_html(tmp_path):
    values = np.array([0.8, -0.5, 0.3, -0.1, 0.05])
    names = ["age", "<b>dose</b>", "bmi", "bp", "sex"]
    _, ax = viz.force(values, 2.0, names)
    bars = [(p.get_x(), p.get_x() + p.get_width(), p.get_facecolor()) for p in ax.patches]
    output = 2.0 + values.sum()
    red = [b for b in bars if b[2][0] > 0.9]
    blue = [b for b in bars if b[2][0] < 0.1]
    assert np.isclose(max(e for _, e, _ in red), output) and np.isclose(min(s for s, _, _ in red), output - 1.15)
    assert np.isclose(min(s for s, _, _ in blue), output) and np.isclose(max(e for _, e, _ in blue), output + 0.6)
    _snapshot("force.png", ax.figure, tmp_path)
    page = viz.force_html(values, 2.0, names)
    assert page.startswith("<!DOCTYPE html>") and page.count("<rect") == 5
    assert "<b>dose</b>" not in page and "&lt;b&gt;dose&lt;/b&gt;" in page  # names are escaped
    assert not any(s in page for s in ("<script", "http://", "https://", "<link", "@import"))  # self-contained
    with pytest.raises(ArgumentError, match="one example"):
        viz.force(np.ones((2, 3)), 0.0)
