"""The answer's attribution matrix with step scores: HTML and matplotlib carry the values."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib")
transformers = pytest.importorskip("transformers")

import pyattrib as pa  # noqa: E402
from pyattrib._core.errors import ArgumentError  # noqa: E402


@pytest.fixture(scope="module")
def result(gpt2, tokenizer):
    llm = pa.text.llm_attribution(gpt2, tokenizer, pa.feature_ablation)
    return llm(pa.text.TextTemplateInput("{} lives in {}", ["Dave", "Paris"]), "and works there",
               step_scores=["probability", "entropy"])  # fmt: skip


def test_html_matrix_holds_every_value_and_loads_nothing(result):
    page = str(pa.viz.token_matrix_html(result, title="who said it"))
    assert "<script" not in page and "http" not in page and "@import" not in page
    for name in [*result.input_tokens, *result.output_tokens, "probability", "entropy", "who said it"]:
        assert name in page
    cells = [float(v) for v in re.findall(r">(-?\d+\.\d{3})</td>", page)]
    values = [*result.token_attr.T.reshape(-1).tolist(), *result.step_scores["probability"].tolist(),
              *result.step_scores["entropy"].tolist()]  # fmt: skip
    np.testing.assert_allclose(cells, values, atol=6e-4)


def test_matplotlib_matrix_draws_the_values(result):
    figure = pa.viz.token_matrix(result)
    main, probability, entropy = figure.axes[:3]
    np.testing.assert_allclose(main.images[0].get_array(), result.token_attr.T.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(probability.images[0].get_array()[0], result.step_scores["probability"].numpy(), atol=1e-7)
    assert [t.get_text() for t in entropy.get_yticklabels()] == ["entropy"]
    assert [t.get_text() for t in main.get_yticklabels()] == result.input_tokens


def test_matrix_needs_token_attributions(gpt2, tokenizer):
    whole = pa.text.llm_attribution(gpt2, tokenizer, pa.kernel_shap, n_samples=8)(
        pa.text.TextTemplateInput("{} lives in {}", ["Dave", "Paris"]), "and works",
        generator=torch.Generator().manual_seed(0))  # fmt: skip
    with pytest.raises(ArgumentError, match="token_attr"):
        pa.viz.token_matrix_html(whole)


def test_target_side_rows_follow_the_prompt_and_leave_later_tokens_blank(gpt2, tokenizer):
    llm = pa.text.llm_attribution(gpt2, tokenizer, pa.feature_ablation)
    both = llm(pa.text.TextTemplateInput("{} lives in {}", ["Dave", "Paris"]), "and works there",
               attribute_target=True)  # fmt: skip
    n, t = len(both.input_tokens), len(both.output_tokens)
    page = str(pa.viz.token_matrix_html(both))
    assert page.count("(answer)</th>") == t and page.count("<td></td>") == t * (t + 1) // 2
    image = pa.viz.token_matrix(both).axes[0].images[0].get_array()
    drawn = np.where(np.ma.getmaskarray(image) | np.isnan(np.ma.getdata(image)), np.nan, np.ma.getdata(image))
    np.testing.assert_allclose(drawn[:n], both.token_attr.T.numpy(), rtol=1e-6, atol=1e-7)
    below = drawn[n:]
    for j in range(t):
        for k in range(t):
            if j < k:  # answer token j seen by token k
                np.testing.assert_allclose(below[j, k], float(both.target_attr[k, j]), rtol=1e-6, atol=1e-7)
            else:
                assert np.isnan(below[j, k])
