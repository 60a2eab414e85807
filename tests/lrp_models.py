"""The tiny transformers of the LXT comparison (``tools/lxt_reference.py`` builds them in LXT's
environment and stores their weights in the fixture, so both sides run the same numbers whatever
each transformers version's initialisation does)."""

from __future__ import annotations

import torch

VOCAB, LENGTH = 128, 8


def config(kind: str):
    import transformers

    if kind == "gpt2":
        return transformers.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=16,
                                       bos_token_id=0, eos_token_id=0, attn_implementation="eager")  # fmt: skip
    if kind == "bert":
        return transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=64, max_position_embeddings=16, num_labels=3,
                                       attn_implementation="eager")  # fmt: skip
    return transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16,
                                    attn_implementation="eager")  # fmt: skip


def model(kind: str, state: dict | None = None, cls: type | None = None):
    import transformers

    torch.manual_seed(0)
    classes = {"gpt2": transformers.GPT2LMHeadModel, "llama": transformers.LlamaForCausalLM,
               "bert": transformers.BertForSequenceClassification}  # fmt: skip
    built = (cls or classes[kind])(config(kind))
    if state is not None:
        built.load_state_dict(state)
    return built.eval()


def logits(model, output):
    """The explained scores: a language model's at the last position, a classifier's own."""
    out = output.logits
    return out[:, -1] if out.dim() == 3 else out


def ids() -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, LENGTH), generator=torch.Generator().manual_seed(1))


def vit(state: dict | None = None):
    """torchvision's VisionTransformer, tiny (16 x 16 images, 4 x 4 patches, 2 layers of width 32),
    its zero-initialised head drawn at random (LXT's ViT recipe runs on torchvision's ViT)."""
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    built = VisionTransformer(image_size=16, patch_size=4, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64,
                              num_classes=10)  # fmt: skip
    with torch.no_grad():
        torch.nn.init.normal_(built.heads.head.weight, std=0.2)
        torch.nn.init.normal_(built.heads.head.bias, std=0.1)
    if state is not None:
        built.load_state_dict(state)
    return built.eval()


def images() -> torch.Tensor:
    return torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))


# LXT's ViT example: CP-LRP in the attention, Zennit's gamma on the patch embedding and the dense layers
VIT_GAMMA = {"conv": 0.25, "linear": 0.05}


def vit_composite():
    """LXT's ViT recipe as a pyattrib composite: CP-LRP, Zennit's generalized gamma on the layers."""
    import pyattrib as pa

    layers = {torch.nn.Conv2d: pa.lrp_rules.gamma(VIT_GAMMA["conv"], generalized=True),
              torch.nn.Linear: pa.lrp_rules.gamma(VIT_GAMMA["linear"], generalized=True)}  # fmt: skip
    return pa.lrp_rules.Composite("cp_lrp_gamma", products="constant_weights", layers=layers)


def zennit_vit_composite():
    """The Zennit half of LXT's ViT recipe (LXT's environment): gamma on Conv2d and Linear."""
    from zennit import rules
    from zennit.composites import LayerMapComposite

    return LayerMapComposite([(torch.nn.Conv2d, rules.Gamma(VIT_GAMMA["conv"])),
                              (torch.nn.Linear, rules.Gamma(VIT_GAMMA["linear"]))])  # fmt: skip
