"""AttnLRP and CP-LRP on transformers (issue 34): time and peak memory against the plain forward and
backward of the same model, and against LXT 2.1, in LXT's environment (it needs transformers 4.x)::

    /tmp/venv-lxt/bin/pip install --no-deps -e .
    /tmp/venv-lxt/bin/python benchmarks/bench_lrp_transformers.py

A GPT-2 and a Llama (4 layers, width 256, eager attention), batch 4 x 128 tokens, and a ViT of
the same size on 32x32 images (against the plain gradient only); the explained
output is each row's largest last-position logit, the relevance that of the input embeddings.
pyattrib runs on the unpatched model classes; LXT patches them for good, so each of its composites
runs in a process of its own (``--lxt attnlrp``). Prints the median of 9 calls and the ratios, and
the peak of live tensor memory during a call (the profiler's memory timeline).
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "libraries"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
warnings.filterwarnings("ignore")

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
    config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=WIDTH, intermediate_size=4 * WIDTH,
                                      num_hidden_layers=LAYERS, num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=LENGTH, attn_implementation="eager")  # fmt: skip
    return transformers.LlamaForCausalLM(config).eval()


def median(fn, repeat=9):
    return interleaved({"call": fn}, rounds=repeat, warmup=1)["call"]


def saved_mb(fn) -> float:
    """Peak live tensor memory of a call (MB), from the profiler's memory timeline."""
    return peak_tensor_mb(fn)


def plain(model, ids):
    def run():
        embeds = model.get_input_embeddings()(ids).detach().requires_grad_()
        top = model(inputs_embeds=embeds, use_cache=False).logits[:, -1].max(-1).values
        return torch.autograd.grad(top.sum(), embeds)[0]  # the input's gradient only, as the others

    return run


def lxt(model, ids):
    def run():
        embeds = model.get_input_embeddings()(ids).detach().requires_grad_()
        top = model(inputs_embeds=embeds, use_cache=False).logits[:, -1].max(-1).values
        (grad,) = torch.autograd.grad(top, embeds, top.detach())  # LXT's recipe, the input's gradient only
        return (grad * embeds).sum(-1)

    return run


def main() -> None:
    ids = torch.randint(0, VOCAB, (BATCH, LENGTH), generator=torch.Generator().manual_seed(0))
    models = {kind: build(kind) for kind in ("gpt2", "llama")}
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, 2 threads, CPU; batch {BATCH} x "
          f"{LENGTH} tokens, width {WIDTH}, {LAYERS} layers; median of 9; memory: peak live tensors")  # fmt: skip
    ours: dict[tuple[str, str], tuple[float, float]] = {}
    for kind, model in models.items():
        with torch.no_grad():
            targets = model(input_ids=ids).logits[:, -1].argmax(-1)
        base_s, base_mb = median(plain(model, ids)), saved_mb(plain(model, ids))
        print(f"{kind:6} plain forward + backward        {base_s:8.4f} s  {base_mb:8.1f} MB")
        for composite in ("attnlrp", "cp_lrp"):
            explain = pa.layer_lrp(model, model.get_input_embeddings(), composite=composite)

            chosen = [(-1, int(t)) for t in targets]

            def run(explain=explain, chosen=chosen):
                return explain(ids, target=chosen)

            ours[kind, composite] = (median(run), saved_mb(run))
            s, mb = ours[kind, composite]
            print(f"{kind:6} pyattrib {composite:8}               {s:8.4f} s  {mb:8.1f} MB   {s / base_s:5.2f}x time, "
                  f"{mb / base_mb:5.2f}x memory of plain")  # fmt: skip
    vit_row()
    for composite in ("attnlrp", "cp_lrp"):
        done = subprocess.run([sys.executable, __file__, "--lxt", composite], capture_output=True, text=True)
        if done.returncode:
            print(f"LXT {composite}: not run here ({done.stderr.strip().splitlines()[-1]}); use LXT's environment")
            continue
        for line in done.stdout.strip().splitlines():
            kind, seconds = line.split()
            ratio = ours[kind, composite][0] / float(seconds)
            print(f"{kind:6} LXT {composite:8}                    {float(seconds):8.4f} s   pyattrib / LXT {ratio:5.2f}x")


def vit_row() -> None:
    """A ViT (4 layers, width 256, 32x32 images in 4x4 patches, batch 8): relevance at the pixels
    against the plain input gradient (LXT 2.1's ViT support is torchvision's and needs zennit)."""
    torch.manual_seed(0)
    config = transformers.ViTConfig(image_size=32, patch_size=4, num_channels=3, hidden_size=WIDTH,
                                    num_hidden_layers=LAYERS, num_attention_heads=4, intermediate_size=4 * WIDTH,
                                    num_labels=10, attn_implementation="eager")  # fmt: skip
    model = transformers.ViTForImageClassification(config).eval()
    images = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))

    def plain_vit():
        x = images.clone().requires_grad_()
        return torch.autograd.grad(model(x).logits[:, 0].sum(), x)[0]

    base_s, base_mb = median(plain_vit), saved_mb(plain_vit)
    print(f"{'vit':6} plain forward + backward        {base_s:8.4f} s  {base_mb:8.1f} MB")
    for composite in ("attnlrp", "cp_lrp"):
        explain = pa.lrp(model, composite=composite)

        def run(explain=explain):
            return explain(images, target=0)

        s, mb = median(run), saved_mb(run)
        print(f"{'vit':6} pyattrib {composite:8}               {s:8.4f} s  {mb:8.1f} MB   {s / base_s:5.2f}x time, "
              f"{mb / base_mb:5.2f}x memory of plain")  # fmt: skip


def lxt_times(composite: str) -> None:
    """LXT's composite on both models, in this process (its patches stay): ``kind seconds`` lines."""
    import torchvision_ops  # noqa: F401  lxt imports torchvision; its operator schemas first

    sys.path.append(os.path.join(ROOT, ".venv-torchvision"))
    from lxt.efficient import monkey_patch
    from lxt.efficient.models import gpt2 as gpt2_maps
    from lxt.efficient.models import llama as llama_maps
    from transformers.models.gpt2 import modeling_gpt2
    from transformers.models.llama import modeling_llama

    name = "attnLRP" if composite == "attnlrp" else "cp_LRP"
    monkey_patch(modeling_gpt2, getattr(gpt2_maps, name))
    monkey_patch(modeling_llama, getattr(llama_maps, name))
    ids = torch.randint(0, VOCAB, (BATCH, LENGTH), generator=torch.Generator().manual_seed(0))
    for kind in ("gpt2", "llama"):
        print(kind, median(lxt(build(kind), ids)))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--lxt":
        lxt_times(sys.argv[2])
    else:
        main()
