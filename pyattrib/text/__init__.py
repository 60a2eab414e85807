"""Text and LLM attribution: interpretable inputs, perturbation and gradient attribution of answers.

.. code-block:: python

    llm = pa.text.llm_attribution(model, tokenizer, pa.feature_ablation)
    result = llm(pa.text.TextTemplateInput("{} lives in {}", ["Dave", "Paris"]), target="and works")
    result.seq_attr, result.token_attr, result.plot_token_attr()
"""

from .aggregate import aggregate, word_spans
from .attention import attention_attribution
from .embeddings import EmbeddingInput, embedding_input
from .inputs import ImageMaskInput, InterpretableInput, ProductBaselines, TextTemplateInput, TextTokenInput
from .llm import llm_attribution, remote_llm_attribution
from .llm_gradient import llm_gradient_attribution
from .remote import RemoteLLMProvider, VLLMProvider
from .result import LLMAttributionResult

__all__ = [
    "aggregate",
    "attention_attribution",
    "word_spans",
    "EmbeddingInput",
    "embedding_input",
    "ImageMaskInput",
    "InterpretableInput",
    "LLMAttributionResult",
    "ProductBaselines",
    "RemoteLLMProvider",
    "TextTemplateInput",
    "TextTokenInput",
    "VLLMProvider",
    "llm_attribution",
    "llm_gradient_attribution",
    "remote_llm_attribution",
]
