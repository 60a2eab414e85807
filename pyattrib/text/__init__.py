"""Text and LLM attribution: interpretable inputs, perturbation and gradient attribution of answers.

>>> llm = pa.text.llm_attribution(model, tokenizer, pa.feature_ablation)
>>> result = llm(pa.text.TextTemplateInput("{} lives in {}", ["Dave", "Paris"]), target="and works")
>>> result.seq_attr, result.token_attr, result.plot_token_attr()
"""

from .inputs import ImageMaskInput, InterpretableInput, ProductBaselines, TextTemplateInput, TextTokenInput
from .llm import llm_attribution, llm_gradient_attribution
from .result import LLMAttributionResult

__all__ = [
    "ImageMaskInput",
    "InterpretableInput",
    "LLMAttributionResult",
    "ProductBaselines",
    "TextTemplateInput",
    "TextTokenInput",
    "llm_attribution",
    "llm_gradient_attribution",
]
