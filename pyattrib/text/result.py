"""What an LLM attribution returns: per-feature and per-(target token, feature) attributions, and plots."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._core.errors import ArgumentError


@dataclass
class LLMAttributionResult:
    """Attributions of a generated (or given) answer to the features of a prompt.

    - ``seq_attr``: ``(n_features,)``, each feature's attribution to the whole answer (the
      sum of target log-probabilities, or its exp for ``attr_target="prob"``);
    - ``token_attr``: ``(n_target_tokens, n_features)``, each feature's attribution to each
      answer token (None for LIME and KernelSHAP, which fit the whole answer only);
    - ``input_tokens``: the feature names; ``output_tokens``: the answer's tokens;
    - ``output_probs``: optional per-token probabilities.

    Args:
        input_tokens: The feature names.
        output_tokens: The answer's tokens.
        seq_attr: ``(n_features,)``: each feature's attribution to the whole answer.
        token_attr: ``(n_target_tokens, n_features)``: each feature's attribution to each answer token
            (None for LIME and KernelSHAP).
        output_probs: The answer tokens' probabilities under the unperturbed prompt.
        inp: The interpretable input that was explained (for plotting its features).
        step_scores: Scores per answer token asked for with ``step_scores=`` (name -> ``(T,)``), e.g.
            ``"probability"``, ``"entropy"``.
        output_pieces: The answer's tokens as the tokenizer writes them (with its word marks, ``"##"``,
            ``"Ġ"``, ``"▁"``), for :func:`pyattrib.text.aggregate`.
        target_attr: ``(n_target_tokens, n_target_tokens)``: answer token ``j``'s attribution to answer
            token ``t`` at ``[t, j]`` (zero for ``j >= t``), with ``attribute_target=True`` only.

    Example:
        >>> llm = pa.text.llm_attribution(lm, tokenizer)
        >>> result = llm(pa.text.TextTemplateInput("{} is {}", ["sky", "blue"]), target="today")
        >>> result.input_tokens
        ['sky', 'blue']
    """

    input_tokens: list[str]
    output_tokens: list[str]
    seq_attr: Tensor
    token_attr: Tensor | None = None
    output_probs: Tensor | None = None
    inp: Any = None
    step_scores: dict[str, Tensor] | None = None
    output_pieces: list[str] | None = None
    target_attr: Tensor | None = None

    def __post_init__(self) -> None:
        n, t = len(self.input_tokens), len(self.output_tokens)
        self.seq_attr = _shaped(self.seq_attr, (n,), "seq_attr", "one per input token")
        if self.token_attr is not None:
            self.token_attr = _shaped(self.token_attr, (t, n), "token_attr", "output x input tokens")
        if self.target_attr is not None:
            self.target_attr = _shaped(self.target_attr, (t, t), "target_attr", "output x output tokens")
        if self.output_probs is not None:
            self.output_probs = torch.as_tensor(self.output_probs)

    @property
    def seq_attr_dict(self) -> dict[str, float]:
        return dict(zip(self.input_tokens, self.seq_attr.cpu().tolist()))

    def plot_token_attr(self):
        """A heat map of ``token_attr`` (answer tokens down, prompt features across) on a symmetric
        colour scale, as ``(figure, axes)``; nothing is shown."""
        if self.token_attr is None:
            raise ValueError("token_attr is None (this method attributes the whole answer only); use plot_seq_attr")
        from matplotlib.figure import Figure

        data = self.token_attr.detach().cpu().float().numpy()
        peak = float(np.abs(data).max()) or 1.0
        figure = Figure(figsize=(max(data.shape[1] * 1.3, 6.4), max(data.shape[0] / 2.5, 4.8)))
        ax = figure.subplots()
        from ..viz.scale import colour_map

        cmap, _, _ = colour_map("all")
        image = ax.imshow(data, vmin=-peak, vmax=peak, cmap=cmap, aspect="auto")
        bar = figure.colorbar(image, ax=ax)
        bar.set_label(f"token attribution (colour scale ±{peak:.3g})")
        ax.set_xticks(np.arange(data.shape[1]), labels=[_short(t) for t in self.input_tokens], rotation=-30, ha="right")
        ax.set_yticks(np.arange(data.shape[0]), labels=[_short(t) for t in self.output_tokens])
        ax.tick_params(top=True, bottom=False, labeltop=True, labelbottom=False)
        for i in range(data.shape[0]):
            for j in range(data.shape[1]):
                strong = abs(data[i, j]) / peak > 0.6
                ax.text(
                    j,
                    i,
                    f"{data[i, j]:.4f}",
                    ha="center",
                    va="center",
                    color="white" if strong else "black",
                    fontsize=7,
                )
        return figure, ax

    def plot_seq_attr(self):
        """Bars of ``seq_attr`` per prompt feature (blue positive, red negative)."""
        from matplotlib.figure import Figure

        data = self.seq_attr.detach().cpu().float().numpy()
        figure = Figure(figsize=(max(len(data) / 2, 6.4), max(len(data) / 4, 4.8)))
        ax = figure.subplots()
        ax.bar(range(len(data)), np.maximum(data, 0), color="#4772b3")
        ax.bar(range(len(data)), np.minimum(data, 0), color="#d0365b")
        ax.set_xticks(range(len(data)), labels=[_short(t) for t in self.input_tokens], rotation=-30, ha="right")
        ax.set_ylabel("sequence attribution")
        return figure, ax

    def to_html(self, title: str | None = None):
        """The prompt's features coloured by ``seq_attr`` and, per answer token, by its row of ``token_attr``.

        One colour scale for all rows (:func:`pyattrib.viz.text_attr`).
        """
        from ..viz import text_attr

        rows = [self.input_tokens]
        scores = [self.seq_attr.detach().cpu()]
        labels = ["whole answer: " + " ".join(self.output_tokens)]
        if self.token_attr is not None:
            for token, row in zip(self.output_tokens, self.token_attr.detach().cpu()):
                rows.append(self.input_tokens)
                scores.append(row)
                labels.append(f"→ {token}")
        return text_attr(rows, scores, labels=labels, title=title or "prompt attribution")

    def _repr_html_(self) -> str:
        return str(self.to_html())


def _shaped(value: Any, shape: tuple[int, ...], name: str, meaning: str) -> Tensor:
    """``value`` as a tensor of ``shape``, else the named error."""
    value = torch.as_tensor(value)
    if tuple(value.shape) != shape:
        raise ArgumentError(f"{name} must be {shape} ({meaning}); got {tuple(value.shape)}")
    return value


def _short(token: str, width: int = 50) -> str:
    text = repr(token)[1:-1]
    return text if len(text) <= width else text[: width - 3] + "..."
