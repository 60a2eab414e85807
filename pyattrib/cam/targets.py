"""Targets for dense and detection outputs, as ordinary callables: usable as ``target=`` with
every method in pyattrib, not only the CAMs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from .._core.errors import ArgumentError


def segmentation_target(category: int, mask: Any) -> Callable[[Tensor], Tensor]:
    r"""The score of class ``category`` summed over a region: for a segmentation output
    ``(N, K, H, W)`` (or a mapping with ``"out"``, as torchvision's models return),

    .. math:: s_n = \sum_{ij} \text{output}_{n,\,\text{category},\,i,\,j}\; \text{mask}_{ij}

    Args:
        category: The class channel.
        mask: ``(H, W)`` weights (a boolean or 0/1 region), or ``(N, H, W)`` one per example; a tensor
            or a numpy array.

    Returns:
        A callable ``output -> (N,)`` to pass as ``target=``.

    Example:
        >>> seg = lambda t: t[:, :2]  # a "segmentation model": 2 classes per pixel
        >>> pa.saliency(seg)(images, target=pa.segmentation_target(1, torch.ones(8, 8))).shape
        torch.Size([2, 3, 8, 8])
    """
    weights = torch.as_tensor(mask)

    def score(output: Any) -> Tensor:
        out = output["out"] if isinstance(output, Mapping) else output
        if not isinstance(out, Tensor) or out.dim() != 4:
            raise ArgumentError("segmentation_target reads an output (N, K, H, W), or a mapping with 'out'")
        w = weights.to(device=out.device, dtype=out.dtype)
        return (out[:, category] * w).sum((-2, -1))

    return score


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Intersection over union of boxes ``(x1, y1, x2, y2)``: ``(len(a), len(b))``."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    low = torch.maximum(a[:, None, :2], b[None, :, :2])
    high = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (high - low).clamp_min(0).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def box_score_target(labels: Sequence[int], boxes: Any, iou_threshold: float = 0.5) -> Callable[[Any], Tensor]:
    r"""A detector's score for a set of reference boxes: for each reference box ``b`` with
    label ``l``, the detection ``d`` of highest IoU with it counts when
    :math:`\operatorname{IoU}(b, d) > \text{iou\_threshold}` and its label is ``l``:

    .. math:: s = \sum_{b} \big[\operatorname{IoU}(b, d_b) + \text{score}(d_b)\big]

    (pytorch-grad-cam's ``FasterRCNNBoxScoreTarget``). The detector returns, per image, a
    mapping with ``"boxes"`` ``(D, 4)``, ``"labels"`` ``(D,)`` and ``"scores"`` ``(D,)`` (a list of
    them for a batch, as torchvision's detectors; one mapping for one image).

    Args:
        labels: The reference boxes' labels.
        boxes: The reference boxes ``(B, 4)`` as ``(x1, y1, x2, y2)``.
        iou_threshold: The IoU a detection needs to count.

    Returns:
        A callable ``detections -> (N,)`` (one mapping: a scalar) to pass as ``target=``.

    Example:
        >>> t = pa.box_score_target([1], [[0.0, 0.0, 4.0, 4.0]])
        >>> d = {"boxes": torch.tensor([[0.0, 0.0, 4.0, 3.0]]), "labels": torch.tensor([1]),
        ...      "scores": torch.tensor([0.9])}
        >>> round(float(t([d])[0]), 2)
        1.65
    """
    reference = torch.as_tensor(boxes).reshape(-1, 4)
    wanted = list(labels)
    if len(wanted) != len(reference):
        raise ArgumentError(
            f"box_score_target: {len(wanted)} labels for {len(reference)} boxes; pass one label per box"
        )

    def one(detections: Mapping[str, Tensor]) -> Tensor:
        found = detections["boxes"]
        total = found.new_zeros(())
        if len(found) == 0:
            return total
        ious = box_iou(reference.to(device=found.device, dtype=found.dtype), found)
        best = ious.argmax(1)
        for k, label in enumerate(wanted):
            d = best[k]
            if bool(ious[k, d] > iou_threshold) and int(detections["labels"][d]) == label:
                total = total + ious[k, d] + detections["scores"][d]
        return total

    def score(output: Any) -> Tensor:
        if isinstance(output, Mapping):
            return one(output)
        return torch.stack([one(d) for d in output])

    return score
