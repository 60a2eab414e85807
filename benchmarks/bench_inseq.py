"""pyattrib against inseq 0.7.1 on the same calls (issue 39), in inseq's own environment.

inseq pins typeguard<=2.13.3, which transformer-lens cannot share, so this benchmark runs where
``tools/inseq_reference.py`` runs, with pyattrib installed beside inseq::

    /tmp/venv-inseq/bin/pip install --no-deps -e .
    /tmp/venv-inseq/bin/python benchmarks/bench_inseq.py

Models: the tiny GPT-2, T5 and BART of ``tests/inseq_models.py`` (the fixture's, whose values the
tests find equal), a 40-token prompt (source) and a 16-token answer. Each call attributes every
answer token to the prompt (decoder-only: and to the answer's earlier tokens, as inseq always
does there); both sides attribute ``log p`` (inseq: ``attributed_fn="probability", logprob=True``).
Prints the median of 3 timed calls (after one warm-up) and the ratio pyattrib / inseq.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import warnings

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
warnings.filterwarnings("ignore")

import inseq  # noqa: E402
import inseq_models as m  # noqa: E402
from common import interleaved  # noqa: E402

import pyattrib as pa  # noqa: E402

torch.set_num_threads(2)
WORDS = "the cat sat on the mat and the dog ran far away from the big red house".split()
PROMPT = " ".join(WORDS[i % len(WORDS)] for i in range(40))
ANSWER = " ".join(WORDS[(3 * i) % len(WORDS)] for i in range(16))
FOIL = " ".join(WORDS[(3 * i + 1) % len(WORDS)] for i in range(16))


def median_seconds(fn, repeat=3):
    return interleaved({"call": fn}, rounds=repeat, warmup=1)["call"]


def calls(model, tok, decoder_only):
    """(name, inseq call, pyattrib call) triples on the same model and text."""
    logprob = {"attributed_fn": "probability", "logprob": True, "show_progress": False}
    generated = f"{PROMPT} {ANSWER}" if decoder_only else ANSWER
    inp = pa.text.TextTokenInput(PROMPT, tok, baselines=tok.unk_token_id)
    target = torch.tensor(tok(generated)["input_ids"][len(tok(PROMPT)["input_ids"]):] if decoder_only
                          else tok(ANSWER)["input_ids"])  # fmt: skip
    foil_text = f"{PROMPT} {FOIL}" if decoder_only else FOIL
    foil = torch.tensor(tok(foil_text)["input_ids"][-len(target):])
    side = {"attribute_target": decoder_only}  # inseq always attributes a decoder-only model's prefix

    def inseq_call(method, **kwargs):
        attributor = inseq.load_model(model, method, tokenizer=tok)
        return lambda: attributor.attribute(PROMPT, generated_texts=generated, **{**logprob, **kwargs})

    ixg = pa.text.llm_gradient_attribution(model, tok, pa.layer_gradient_x_activation)
    return [
        ("saliency", inseq_call("saliency"), lambda: pa.text.llm_gradient_attribution(
            model, tok, pa.layer_gradient_x_activation, multiply_by_inputs=False, reduce="norm")(inp, target, **side)),
        ("input_x_gradient", inseq_call("input_x_gradient"), lambda: ixg(inp, target, **side)),
        ("integrated_gradients (16 steps)", inseq_call("integrated_gradients", n_steps=16),
         lambda: pa.text.llm_gradient_attribution(model, tok, n_steps=16)(inp, target, **side)),
        ("attention (raw)", inseq_call("attention", attributed_fn=None, logprob=None),
         lambda: pa.text.attention_attribution(model, tok)(inp, target, **side)),
        ("occlusion", inseq_call("occlusion"),
         lambda: pa.text.llm_attribution(model, tok, pa.feature_ablation)(inp, target)),
        ("input_x_gradient, contrastive", inseq_call("input_x_gradient", attributed_fn="contrast_prob_diff",
                                                     contrast_targets=foil_text),
         lambda: ixg(inp, target, contrast=foil)),
        ("input_x_gradient + step scores", inseq_call("input_x_gradient", step_scores=["probability", "entropy"]),
         lambda: ixg(inp, target, step_scores=["probability", "entropy"], **side)),
    ]  # fmt: skip


def one_forward(model, tok, decoder_only):
    """The floor of the attention call: one forward of prompt and answer returning its weights
    (0.2x of inseq's time is below it on these tiny models)."""
    prompt, answer = torch.tensor(tok(PROMPT)["input_ids"]), torch.tensor(tok(ANSWER)["input_ids"])
    if decoder_only:
        kwargs = {"input_ids": torch.cat([prompt, answer])[None]}
    else:
        start = torch.tensor([model.config.decoder_start_token_id])
        kwargs = {"input_ids": prompt[None], "decoder_input_ids": torch.cat([start, answer[:-1]])[None]}
    with torch.no_grad():
        return median_seconds(lambda: model(**kwargs, output_attentions=True))


def ig_backward(model, tok, decoder_only, n_steps=16):
    """What no per-token IG goes under: the backward passes alone. Each answer token's gradient at
    each path point is its own vector-Jacobian product through the model (T x n_steps of them, at
    least, in any batching); timed here as one backward of T x n_steps rows whose forward is not
    timed (the head projects only the read positions, as pyattrib's does)."""
    from pyattrib.text.forcing import heads_at

    prompt, answer = torch.tensor(tok(PROMPT)["input_ids"]), torch.tensor(tok(ANSWER)["input_ids"])
    embed, rows = model.get_input_embeddings(), n_steps * len(answer)
    ends = torch.arange(len(answer)).repeat(n_steps)
    spent = []
    for _ in range(4):
        if decoder_only:
            x = embed(torch.cat([prompt, answer]))[None].expand(rows, -1, -1).detach().requires_grad_()
            with heads_at(model, len(prompt) - 1 + ends) as positions:
                logits = model(inputs_embeds=x).logits
        else:
            start = torch.tensor([model.config.decoder_start_token_id])
            x = embed(prompt)[None].expand(rows, -1, -1).detach().requires_grad_()
            d = embed(torch.cat([start, answer[:-1]]))[None].expand(rows, -1, -1).detach()
            with heads_at(model, ends) as positions:
                logits = model(inputs_embeds=x, decoder_inputs_embeds=d).logits
        total = logits[torch.arange(rows), positions()].log_softmax(-1).gather(1, answer[ends][:, None]).sum()
        begin = time.perf_counter()
        torch.autograd.grad(total, x)
        spent.append(time.perf_counter() - begin)
    return statistics.median(spent[1:])


def main() -> None:
    tok = m.tokenizer()
    models = {
        "gpt2": (m.gpt2(tok.vocab_size, tok.cls_token_id, tok.sep_token_id, positions=128), True),
        "t5": (m.t5(tok.vocab_size), False),
        "bart": (m.bart(tok.vocab_size, tok.cls_token_id, tok.sep_token_id), False),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; inseq 0.7.1 (its own environment) vs "
          f"pyattrib; tiny GPT-2, T5, BART; prompt {len(tok(PROMPT)['input_ids'])} tokens, answer 16; median of 3")  # fmt: skip
    print(f"{'model':6} {'call':34} {'inseq s':>9} {'pyattrib s':>11} {'ratio':>7}")
    ratios = []
    for name, (model, decoder_only) in models.items():
        for call, theirs, ours in calls(model, tok, decoder_only):
            a, b = median_seconds(theirs), median_seconds(ours)
            ratios.append(b / a)
            print(f"{name:6} {call:34} {a:9.3f} {b:11.4f} {b / a:7.3f}")
        print(f"{name:6} floor of attention: one forward {one_forward(model, tok, decoder_only) * 1e3:.1f} ms; "
              f"of IG: its backward passes alone {ig_backward(model, tok, decoder_only):.4f} s")
    print(f"largest ratio {max(ratios):.3f}, geometric mean {statistics.geometric_mean(ratios):.3f}")


if __name__ == "__main__":
    main()
