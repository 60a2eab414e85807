"""AttnLRP and CP-LRP on transformers (issue 34): time and peak memory against the plain forward and
backward of the same model, and against LXT 2.1 side by side, in LXT's environment (it needs
transformers 4.x; Zennit 0.5.1 beside it for the ViT)::

    /tmp/venv-lxt/bin/pip install --no-deps -e .
    /tmp/venv-lxt/bin/python benchmarks/bench_lrp_transformers.py

A GPT-2 and a Llama (4 layers, width 256, eager attention), batch 4 x 128 tokens; a Hugging Face
ViT of that size on 32x32 images (LXT has no recipe for it: against the plain gradient); and
torchvision's ViT of that size under LXT's ViT recipe (CP-LRP, Zennit's gamma on the patch
embedding and the dense layers). The explained output is each row's largest last-position logit
(the ViTs': class 0), the relevance that of the input embeddings (the pixels).

pyattrib runs on the unpatched model classes. LXT patches classes and the attention registry for
good, so each LXT call here patches them, runs, and restores them (a few microseconds, counted in
LXT's time): the three contenders run interleaved in one process, on the same model and data.
Prints the median of 9 rounds and the ratios, and the peak of live tensor memory during a call
(the profiler's memory timeline).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "libraries"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
warnings.filterwarnings("ignore")

import torchvision_ops  # noqa: E402,F401  lxt and the ViT import torchvision: its operator schemas first

sys.path.append(os.path.join(ROOT, ".venv-torchvision"))

import lrp_models  # noqa: E402  LXT's ViT recipe, shared with the tests and tools/lxt_reference.py
import transformers  # noqa: E402
from common import interleaved, peak_tensor_mb  # noqa: E402

import pyattrib as pa  # noqa: E402

torch.set_num_threads(2)
BATCH, LENGTH, WIDTH, LAYERS, VOCAB = 4, 128, 256, 4, 1000


def build(kind: str):
    torch.manual_seed(0)
    if kind == "gpt2":
        config = transformers.GPT2Config(vocab_size=VOCAB, n_embd=WIDTH, n_layer=LAYERS, n_head=4, n_positions=LENGTH,
                                         attn_implementation="eager")  # fmt: skip
        return transformers.GPT2LMHeadModel(config).eval()
    if kind == "llama":
        config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=WIDTH, intermediate_size=4 * WIDTH,
                                          num_hidden_layers=LAYERS, num_attention_heads=4, num_key_value_heads=2,
                                          max_position_embeddings=LENGTH, attn_implementation="eager")  # fmt: skip
        return transformers.LlamaForCausalLM(config).eval()
    if kind == "vit":
        config = transformers.ViTConfig(image_size=32, patch_size=4, num_channels=3, hidden_size=WIDTH,
                                        num_hidden_layers=LAYERS, num_attention_heads=4, intermediate_size=4 * WIDTH,
                                        num_labels=10, attn_implementation="eager")  # fmt: skip
        return transformers.ViTForImageClassification(config).eval()
    from torchvision.models.vision_transformer import VisionTransformer

    model = VisionTransformer(image_size=32, patch_size=4, num_layers=LAYERS, num_heads=4, hidden_dim=WIDTH,
                              mlp_dim=4 * WIDTH, num_classes=10)  # fmt: skip
    torch.nn.init.normal_(model.heads.head.weight, std=0.02)  # torchvision starts it at zero
    return model.eval()


@contextmanager
def lxt_patched(module: Any, patch_map: dict) -> Iterator[None]:
    """LXT's ``monkey_patch(module, patch_map)`` for the duration of the context, then undone:
    the patched classes' and module's attributes and the attention registry restored."""
    from lxt.efficient import monkey_patch

    targets = [module, *patch_map]
    saved = [(t, dict(vars(t))) for t in targets]
    registry = getattr(module, "ALL_ATTENTION_FUNCTIONS", None)
    functions = dict(registry.items()) if registry is not None else {}
    monkey_patch(module, patch_map)
    try:
        yield
    finally:
        for target, attributes in saved:
            for name in set(vars(target)) - set(attributes):
                delattr(target, name)
            for name, value in attributes.items():
                if vars(target).get(name) is not value:
                    setattr(target, name, value)
        for name, function in functions.items():
            registry[name] = function


def lxt_language(kind: str, composite: str, model: Any, ids: torch.Tensor) -> Callable[[], Any]:
    """LXT's recipe on a language model: patched, the gradient seeded with the logit, x * grad."""
    from lxt.efficient.models import gpt2, llama
    from transformers.models.gpt2 import modeling_gpt2
    from transformers.models.llama import modeling_llama

    module, maps = (modeling_gpt2, gpt2) if kind == "gpt2" else (modeling_llama, llama)
    patch_map = getattr(maps, "attnLRP" if composite == "attnlrp" else "cp_LRP")

    def run():
        with lxt_patched(module, patch_map):
            embeds = model.get_input_embeddings()(ids).detach().requires_grad_()
            top = model(inputs_embeds=embeds, use_cache=False).logits[:, -1].max(-1).values
            (grad,) = torch.autograd.grad(top, embeds, top.detach())  # the input's gradient only
            return (grad * embeds).sum(-1)

    return run


def lxt_vit(model: Any, images: torch.Tensor) -> Callable[[], Any]:
    """LXT's ViT recipe (its examples/vit_torch.py): torchvision's ViT patched with CP-LRP, Zennit's
    gamma rules registered (through LXT's Zennit patch), x * grad at the pixels."""
    from lxt.efficient import monkey_patch_zennit
    from lxt.efficient.models.vit_torch import cp_LRP
    from torchvision.models import vision_transformer

    monkey_patch_zennit()  # Zennit's own classes: used by nothing else here
    composite = lrp_models.zennit_vit_composite()

    def run():
        with lxt_patched(vision_transformer, cp_LRP):
            composite.register(model)
            try:
                x = images.clone().requires_grad_()
                (grad,) = torch.autograd.grad(model(x)[:, 0].sum(), x)
                return grad * x
            finally:
                composite.remove()

    return run


def plain_language(model: Any, ids: torch.Tensor) -> Callable[[], Any]:
    def run():
        embeds = model.get_input_embeddings()(ids).detach().requires_grad_()
        top = model(inputs_embeds=embeds, use_cache=False).logits[:, -1].max(-1).values
        return torch.autograd.grad(top.sum(), embeds)[0]  # the input's gradient only, as the others

    return run


def plain_image(model: Any, images: torch.Tensor) -> Callable[[], Any]:
    def run():
        x = images.clone().requires_grad_()
        out = model(x)
        return torch.autograd.grad(getattr(out, "logits", out)[:, 0].sum(), x)[0]

    return run


def row(label: str, contenders: dict[str, Callable[[], Any]]) -> None:
    """Time the contenders interleaved (median of 9 rounds), measure their peak memory, print."""
    times = interleaved(contenders, rounds=9, warmup=1)
    memory = {name: peak_tensor_mb(fn) for name, fn in contenders.items()}
    base_s, base_mb = times["plain"], memory["plain"]
    print(f"{label:24} plain fwd+bwd {base_s:7.4f} s {base_mb:6.1f} MB")
    for name in contenders:
        if name != "plain":
            print(f"{label:24} {name:13} {times[name]:7.4f} s {memory[name]:6.1f} MB   {times[name] / base_s:5.2f}x time, "
                  f"{memory[name] / base_mb:5.2f}x memory of plain")  # fmt: skip
    if "LXT" in times:
        print(f"{label:24} pyattrib / LXT: {times['pyattrib'] / times['LXT']:5.2f}x time, "
              f"{memory['pyattrib'] / memory['LXT']:5.2f}x memory")  # fmt: skip


def floor(model: Any, ids: torch.Tensor) -> dict[str, Callable[[], Any]]:
    """The plain call under the mechanism alone: an empty TorchFunctionMode (every torch call of
    the model dispatched through Python), and empty global module hooks (every module call on the
    slow path). pyattrib's rules need both; LXT, which patches the classes, needs neither."""
    from torch.nn.modules import module as nn_module
    from torch.overrides import TorchFunctionMode

    class Empty(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            return func(*args, **(kwargs or {}))

    plain = plain_language(model, ids)

    def mode():
        with Empty():
            return plain()

    def hooks():
        handles = (nn_module.register_module_forward_pre_hook(lambda m, a: None),
                   nn_module.register_module_forward_hook(lambda m, a, o: None, always_call=True))  # fmt: skip
        try:
            return plain()
        finally:
            for handle in handles:
                handle.remove()

    return {"plain": plain, "empty mode": mode, "empty hooks": hooks}


def main() -> None:
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, 2 threads, CPU; batch {BATCH} x "
          f"{LENGTH} tokens (8 images), width {WIDTH}, {LAYERS} layers; median of 9 interleaved rounds; memory: peak "
          "live tensors")  # fmt: skip
    ids = torch.randint(0, VOCAB, (BATCH, LENGTH), generator=torch.Generator().manual_seed(0))
    images = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for kind in ("gpt2", "llama"):
        model = build(kind)
        with torch.no_grad():
            chosen = [(-1, int(t)) for t in model(input_ids=ids).logits[:, -1].argmax(-1)]
        for composite in ("attnlrp", "cp_lrp"):
            explain = pa.layer_lrp(model, model.get_input_embeddings(), composite=composite)
            row(f"{kind} {composite}", {"plain": plain_language(model, ids),
                                        "pyattrib": lambda e=explain, c=chosen: e(ids, target=c),
                                        "LXT": lxt_language(kind, composite, model, ids)})  # fmt: skip
        if kind == "gpt2":
            row("gpt2 mechanism floor", floor(model, ids))
    model = build("vit")
    for composite in ("attnlrp", "cp_lrp"):
        explain = pa.lrp(model, composite=composite)
        row(f"vit (HF) {composite}", {"plain": plain_image(model, images),
                                      "pyattrib": lambda e=explain: e(images, target=0)})  # fmt: skip
    model = build("torchvision-vit")
    explain = pa.lrp(model, composite=lrp_models.vit_composite())
    row("vit (torchvision) cp+γ", {"plain": plain_image(model, images),
                                   "pyattrib": lambda: explain(images, target=0), "LXT": lxt_vit(model, images)})
    # without the gamma rules (LRP-0 in the dense layers): the cost of the attention rules alone
    explain_cp = pa.lrp(model, composite="cp_lrp")
    row("vit (torchvision) cp", {"plain": plain_image(model, images),
                                 "pyattrib": lambda: explain_cp(images, target=0)})


if __name__ == "__main__":
    main()
