"""pytorch-grad-cam's target objects: each reads one image's output (pass a list, one per image)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ....cam.targets import box_score_target


class ClassifierOutputTarget:
    """The logit of class ``category``.

    Args:
        category: The class index.
    """

    def __init__(self, category: int) -> None:
        self.category = category

    def __call__(self, model_output: Tensor) -> Tensor:
        return model_output[..., self.category]


class ClassifierOutputSoftmaxTarget:
    """The softmax probability of class ``category``.

    Args:
        category: The class index.
    """

    def __init__(self, category: int) -> None:
        self.category = category

    def __call__(self, model_output: Tensor) -> Tensor:
        return torch.softmax(model_output, dim=-1)[..., self.category]


class BinaryClassifierOutputTarget:
    """A single-logit classifier's output, negated for ``category`` 0.

    Args:
        category: 1 for the positive class, anything else for the negative one.
    """

    def __init__(self, category: int) -> None:
        self.category = category

    def __call__(self, model_output: Tensor) -> Tensor:
        return model_output * (1 if self.category == 1 else -1)


class SemanticSegmentationTarget:
    """The scores of ``category`` summed over ``mask`` (one image's output ``(K, H, W)``).

    Args:
        category: The class channel.
        mask: ``(H, W)`` numpy array of weights.
    """

    def __init__(self, category: int, mask: Any) -> None:
        self.category = category
        self.mask = torch.from_numpy(np.asarray(mask))

    def __call__(self, model_output: Tensor) -> Tensor:
        return (model_output[self.category, :, :] * self.mask.to(model_output.device)).sum()


class FasterRCNNBoxScoreTarget:
    """A detector's score for reference boxes (see :func:`pyattrib.box_score_target`).

    Args:
        labels: The reference boxes' labels.
        bounding_boxes: The reference boxes, ``(x1, y1, x2, y2)`` each.
        iou_threshold: The IoU a detection needs to count.
    """

    def __init__(self, labels: Any, bounding_boxes: Any, iou_threshold: float = 0.5) -> None:
        self.labels, self.bounding_boxes, self.iou_threshold = labels, bounding_boxes, iou_threshold
        boxes: Any = (
            np.stack([np.asarray(b, dtype=np.float64).reshape(4) for b in bounding_boxes]) if len(labels) else []
        )
        self._score = box_score_target(list(labels), torch.as_tensor(np.asarray(boxes)), iou_threshold)

    def __call__(self, model_outputs: Any) -> Tensor:
        return self._score(model_outputs).reshape(1)


__all__ = [
    "BinaryClassifierOutputTarget",
    "ClassifierOutputSoftmaxTarget",
    "ClassifierOutputTarget",
    "FasterRCNNBoxScoreTarget",
    "SemanticSegmentationTarget",
]
