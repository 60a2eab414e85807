"""Contrastive targets (Yin & Neubig, 2022): every text method attributes
``log p(target_t) - log p(foil_t)`` in the target's context, perturbation and gradient alike."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

import pyattrib as pa  # noqa: E402
from pyattrib._core.errors import ArgumentError  # noqa: E402
from pyattrib.text import TextTemplateInput, TextTokenInput, llm_attribution, llm_gradient_attribution  # noqa: E402

TEMPLATE, VALUES = "{} lives in {} and likes {}", ["Dave", "Paris", "cheese"]


def _ids(tokenizer, text):
    return torch.tensor(tokenizer.encode(text, add_special_tokens=False))


def test_one_token_contrast_is_the_difference_of_two_attributions(gpt2, tokenizer):
    """With one answer token the context is the same for target and foil: the contrastive
    attribution of a linear method is the difference of the two attributions."""
    target, foil = _ids(tokenizer, "cat"), _ids(tokenizer, "dog")
    inp = TextTemplateInput(TEMPLATE, VALUES)
    ablation = llm_attribution(gpt2, tokenizer, pa.feature_ablation)
    both = ablation(inp, target, contrast=foil)
    torch.testing.assert_close(both.seq_attr, ablation(inp, target).seq_attr - ablation(inp, foil).seq_attr,
                               atol=1e-5, rtol=1e-5)  # fmt: skip
    tokens = TextTokenInput("dave lives in paris", tokenizer)
    ig = llm_gradient_attribution(gpt2, tokenizer, n_steps=16)
    torch.testing.assert_close(ig(tokens, target, contrast=foil).seq_attr,
                               ig(tokens, target).seq_attr - ig(tokens, foil).seq_attr, atol=1e-5, rtol=1e-4)  # fmt: skip


def test_contrast_per_token_by_hand(gpt2, tokenizer):
    """Feature ablation of the contrast, per answer token, against the log-probabilities read off
    the model by hand (teacher forcing on the target; the foil token read at each position)."""
    target, foil = _ids(tokenizer, "the big cat"), _ids(tokenizer, "a small dog")
    inp = TextTemplateInput(TEMPLATE, VALUES)
    got = llm_attribution(gpt2, tokenizer, pa.feature_ablation)(inp, target, contrast=foil)

    def contrast(values):
        prompt = torch.tensor(tokenizer.encode(TEMPLATE.format(*values)))  # the prompt with its special tokens
        with torch.no_grad():
            logp = gpt2(torch.cat([prompt, target])[None]).logits[0].log_softmax(-1)
        rows = logp[len(prompt) - 1 : len(prompt) - 1 + len(target)]
        return rows.gather(1, target[:, None])[:, 0] - rows.gather(1, foil[:, None])[:, 0]

    full = contrast(VALUES)
    for f in range(3):
        ablated = list(VALUES)
        ablated[f] = ""  # TextTemplateInput's default baseline: the empty string
        torch.testing.assert_close(got.token_attr[:, f], full - contrast(ablated), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got.seq_attr, got.token_attr.sum(0), atol=1e-4, rtol=1e-4)


def test_contrast_bad_input(gpt2, tokenizer):
    inp = TextTemplateInput(TEMPLATE, VALUES)
    with pytest.raises(ArgumentError, match="same number of tokens"):
        llm_attribution(gpt2, tokenizer)(inp, _ids(tokenizer, "the big cat"), contrast=_ids(tokenizer, "dog"))
    with pytest.raises(ArgumentError, match="contrast has 1 entries for 2 prompts"):
        llm_attribution(gpt2, tokenizer)([inp, inp], ["cat", "cat"], contrast=["dog"])

    class Provider(pa.text.RemoteLLMProvider):
        def get_logprobs(self, input_prompt, target_str, tokenizer):
            return [-1.0] * len(tokenizer.tokenize(target_str))

        def generate(self, prompt, **gen_args):
            return "cat"

    with pytest.raises(ArgumentError, match="remote provider"):
        pa.text.remote_llm_attribution(Provider(), tokenizer)(inp, "cat", contrast="dog")


def test_step_scores_by_hand(gpt2, tokenizer):
    """Step scores read off one teacher-forced forward: probability, log-probability, entropy, the
    contrast's probability difference, the KL divergence to a contrast prompt and a callable, for
    perturbation and gradient methods alike."""
    target, foil = _ids(tokenizer, "the big cat"), _ids(tokenizer, "a small dog")
    other = TextTemplateInput(TEMPLATE, ["Anna", "Rome", "tea"])

    def next_logp(text):
        prompt = torch.tensor(tokenizer.encode(text))
        with torch.no_grad():
            logp = gpt2(torch.cat([prompt, target])[None]).logits[0].log_softmax(-1)
        return logp[len(prompt) - 1 : len(prompt) - 1 + len(target)]

    p, q = next_logp(TEMPLATE.format(*VALUES)), next_logp(TEMPLATE.format(*other.values))
    chosen = p.gather(1, target[:, None])[:, 0]

    def top_margin(log_probs, answer):
        return log_probs.max(-1).values - log_probs.gather(1, answer[:, None])[:, 0]

    asked = ["probability", "log_probability", "entropy", "contrast_prob_diff", "kl_divergence", top_margin]
    expected = {"probability": chosen.exp(), "log_probability": chosen, "entropy": -(p.exp() * p).sum(-1),
                "contrast_prob_diff": chosen.exp() - p.gather(1, foil[:, None])[:, 0].exp(),
                "kl_divergence": (p.exp() * (p - q)).sum(-1), "top_margin": p.max(-1).values - chosen}  # fmt: skip
    inp = TextTemplateInput(TEMPLATE, VALUES)
    got = llm_attribution(gpt2, tokenizer)(inp, target, contrast=foil, step_scores=asked, contrast_prompt=other)
    assert set(got.step_scores) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(got.step_scores[name], value, atol=1e-5, rtol=1e-5)
    tokens = TextTokenInput(TEMPLATE.format(*VALUES), tokenizer)
    grad = llm_gradient_attribution(gpt2, tokenizer, n_steps=4)(tokens, target, step_scores=["entropy"])
    torch.testing.assert_close(grad.step_scores["entropy"], expected["entropy"], atol=1e-5, rtol=1e-5)
    assert llm_attribution(gpt2, tokenizer)(inp, target).step_scores is None
    with pytest.raises(ArgumentError, match="unknown score"):
        llm_attribution(gpt2, tokenizer)(inp, target, step_scores=["perplexity"])
    with pytest.raises(ArgumentError, match="needs contrast="):
        llm_attribution(gpt2, tokenizer)(inp, target, step_scores=["contrast_prob_diff"])
    with pytest.raises(ArgumentError, match="needs contrast_prompt="):
        llm_attribution(gpt2, tokenizer)(inp, target, step_scores=["kl_divergence"])


def _forwards(model, call):
    """How many rows (sequences) ``model`` ran during ``call()``, and its result."""
    count = [0]

    def rows(module, args, kwargs, output):
        first = kwargs.get("input_ids", kwargs.get("inputs_embeds", args[0] if args else None))
        count[0] += first.shape[0]

    handle = model.register_forward_hook(rows, with_kwargs=True)
    try:
        result = call()
    finally:
        handle.remove()
    return count[0], result


@pytest.mark.parametrize(
    "method", ["feature_ablation", "shapley_value_sampling", "attention", "attention_seq2seq", "gradient",
               "gradient_seq2seq"]
)  # fmt: skip
def test_step_scores_come_from_the_methods_own_forward(gpt2, tokenizer, method):
    """Perturbation methods read the unperturbed prompt's rows from the forward that gives the step
    scores (once, however often the method evaluates it), attention and gradient x embedding from
    their own forward: asking for step scores adds no row to what the model runs and changes no
    attribution."""
    import copy

    model = copy.deepcopy(gpt2)
    model.set_attn_implementation("eager")
    inp = TextTokenInput("the cat sat on", tokenizer)
    if method.endswith("seq2seq"):
        from .test_text_seq2seq import _models

        model = _models(tokenizer.vocab_size)["bart"]
        model.set_attn_implementation("eager")
    if method.startswith("attention"):
        explain = pa.text.attention_attribution(model, tokenizer)
    elif method.startswith("gradient"):
        explain = pa.text.llm_gradient_attribution(model, tokenizer, pa.layer_gradient_x_activation)
    else:
        options = {"n_samples": 2} if method == "shapley_value_sampling" else {}
        explain = llm_attribution(model, tokenizer, getattr(pa, method), **options)
    kwargs = {"generator": torch.Generator().manual_seed(0)} if method == "shapley_value_sampling" else {}
    explain(inp, "the mat", **kwargs)  # the first call also probes the model (three small forwards, once)
    kwargs = {"generator": torch.Generator().manual_seed(0)} if method == "shapley_value_sampling" else {}
    plain_count, plain = _forwards(model, lambda: explain(inp, "the mat", **kwargs))
    kwargs = {"generator": torch.Generator().manual_seed(0)} if method == "shapley_value_sampling" else {}
    steps = ["probability", "entropy", "log_probability"]
    count, scored = _forwards(model, lambda: explain(inp, "the mat", step_scores=steps, **kwargs))
    assert count <= plain_count
    torch.testing.assert_close(scored.token_attr, plain.token_attr, atol=1e-5, rtol=1e-4)
    # the scores are the model's own: one teacher-forced forward by hand
    target = torch.tensor(tokenizer.encode("the mat", add_special_tokens=False))
    reference = pa.text.llm_attribution(model, tokenizer)(inp, target, step_scores=steps)
    for name in steps:
        torch.testing.assert_close(scored.step_scores[name], reference.step_scores[name], atol=1e-5, rtol=1e-4)


def test_target_side_shapley_values_are_efficient_per_answer_token(gpt2, tokenizer):
    """Exact Shapley values over the template's slots and the answer's earlier tokens: row t sums to
    log p(y_t) with everything present minus with every slot at its baseline and every earlier
    answer token the unknown token; later tokens get nothing."""
    inp = TextTemplateInput("{} lives in {}", ["Dave", "Paris"], baselines=["someone", "somewhere"])
    target = torch.tensor(tokenizer.encode("and likes cheese", add_special_tokens=False))
    got = llm_attribution(gpt2, tokenizer, pa.shapley_values)(inp, target, attribute_target=True)
    assert got.target_attr.shape == (3, 3) and got.target_attr.triu().abs().max() == 0

    def log_p(prompt, answer):
        ids = torch.tensor(tokenizer.encode(prompt))
        with torch.no_grad():
            out = gpt2(input_ids=torch.cat([ids, answer])[None]).logits[0].log_softmax(-1)
        return out[len(ids) - 1 : len(ids) - 1 + len(answer)].gather(1, target[:, None])[:, 0]

    full = log_p("Dave lives in Paris", target)
    for t in range(3):
        empty = torch.where(torch.arange(3) < t, tokenizer.unk_token_id, target)
        delta = full[t] - log_p("someone lives in somewhere", empty)[t]
        torch.testing.assert_close(got.token_attr[t].sum() + got.target_attr[t].sum(), delta, atol=1e-4, rtol=1e-4)


def test_target_side_needs_a_per_token_method(gpt2, tokenizer):
    inp = TextTokenInput("the cat sat", tokenizer)
    with pytest.raises(ArgumentError, match="attribute_target .* whole answer only"):
        llm_attribution(gpt2, tokenizer, pa.lime, n_samples=4)(inp, "on the mat", attribute_target=True,
                                                               generator=torch.Generator().manual_seed(0))  # fmt: skip
