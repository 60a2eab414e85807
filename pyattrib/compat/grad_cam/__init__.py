"""pytorch-grad-cam's API over pyattrib's CAMs: change the import, keep the code.

``from pyattrib.compat.grad_cam import GradCAM`` gives a class with pytorch-grad-cam's
constructor ``(model, target_layers, reshape_transform=None)``, its call
``cam(input_tensor, targets=None, aug_smooth=False, eigen_smooth=False)`` returning a float32
numpy array ``(N, H, W)``, and its numbers (its choices switched on, see
:data:`GRAD_CAM_SEMANTICS`). Each class is a thin adapter over one :mod:`pyattrib.cam`
transform. Unlike pytorch-grad-cam, the model is left exactly as found (no ``model.eval()``
left behind, no hooks, no ``.grad``), and a class needs no ``release()``; the context-manager
form still works.

:func:`pyattrib.compat.grad_cam.patch_grad_cam` makes ``import pytorch_grad_cam`` give these modules.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np
import torch
from torch import nn

from ..._core.errors import ArgumentError
from ..._core.state import in_eval
from ..._core.targets import ExampleTargets
from ...cam._engine import Rule, cam_transform
from ...cam._engine import Rule as _Rule
from ...cam.full_grad import full_grad
from ...cam.gradient import (
    EIGEN_CAM,
    EIGEN_GRAD_CAM,
    GRAD_CAM,
    GRAD_CAM_ELEMENTWISE,
    GRAD_CAM_PLUS_PLUS,
    HIRES_CAM,
    LAYER_CAM,
    XGRAD_CAM,
)
from ...cam.gradient import KPCA_CAM as KPCA_RULE
from ...cam.perturbation import SCORE_CAM, ablation_rule
from . import ablation_layer, utils
from .ablation_layer import AblationLayer

#: Where pytorch-grad-cam's numbers differ from pyattrib's native CAMs, the option of the core
#: that gives pytorch-grad-cam's (each documented where it lives).
GRAD_CAM_SEMANTICS: dict[str, Any] = {
    "svd_sign": "numpy",  # Eigen maps: the sign numpy's SVD returns, not the largest-entry-positive rule
    "bias_pairing": "pytorch-grad-cam",  # FullGrad: biases in module order, gradients in run order
    "stacked_ablation": True,  # AblationCAM: the fill value drifts by -1e7 per row of a batch
}


SEG_EIGEN_CAM = _Rule(lambda a, g: g.abs() * a, reduce="svd")


def _targets(targets: Any) -> Any:
    """pytorch-grad-cam's list of per-image targets as a pyattrib target: class indices when
    every one is a ``ClassifierOutputTarget``, else one callable per example."""
    if targets is None:
        return None
    targets = list(targets)
    if all(type(t).__name__ == "ClassifierOutputTarget" and isinstance(t.category, (int, np.integer)) for t in targets):
        return torch.tensor([int(t.category) for t in targets])
    return ExampleTargets(targets)


class BaseCAM:
    """A CAM with pytorch-grad-cam's constructor and call (see the module docstring).

    Args:
        model: The model; left exactly as found.
        target_layers: The modules whose outputs are mapped (maps averaged over them).
        reshape_transform: ``value -> (N, C, h, w)`` for token layers (None: pyattrib's default reading).

    Example:
        >>> from pyattrib.compat.grad_cam import GradCAM
        >>> with GradCAM(cnn, [conv]) as cam:
        ...     maps = cam(images, targets=None, aug_smooth=True)
        >>> maps.dtype, maps.shape
        (dtype('float32'), (2, 8, 8))
    """

    rule: Rule | None = None
    name = "cam"

    def __init__(self, model: nn.Module, target_layers: list[nn.Module], reshape_transform: Any = None) -> None:
        self.model, self.target_layers, self.reshape_transform = model, list(target_layers), reshape_transform
        self.batch_size: int | None = None
        if not self.target_layers and self.rule is not None:
            raise ArgumentError("target_layers is empty; pass a list of modules of the model, e.g. [model.layer4[-1]]")

    def _attributor(self, aug_smooth: bool, eigen_smooth: bool) -> Any:
        assert self.rule is not None
        sign = "largest" if self.rule is SEG_EIGEN_CAM else GRAD_CAM_SEMANTICS["svd_sign"]
        return cam_transform(
            self.model, self.target_layers, self.rule, self.name, reshape_transform=self.reshape_transform,
            aug_smooth=aug_smooth, eigen_smooth=eigen_smooth, batch_size=self.batch_size, svd_sign=sign,
            **self._options(),
        )  # fmt: skip

    def _options(self) -> dict[str, Any]:
        return {}

    def __call__(
        self, input_tensor: torch.Tensor, targets: Any = None, aug_smooth: bool = False, eigen_smooth: bool = False
    ) -> np.ndarray:
        device = next(self.model.parameters()).device
        attributor = self._attributor(aug_smooth, eigen_smooth)
        with in_eval(self.model):  # pytorch-grad-cam calls model.eval(); here only for the call
            maps = attributor(input_tensor.to(device), target=_targets(targets))
        return maps.detach().cpu().numpy().astype(np.float32)

    def __enter__(self) -> BaseCAM:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def release(self) -> None:
        """Nothing to release: no hooks stay on the model between calls."""


CLASS_DOC = """{summary}

    Args:
        model: The model; left exactly as found.
        target_layers: The modules whose outputs are mapped (maps averaged over them).
        reshape_transform: ``value -> (N, C, h, w)`` for token layers (None: pyattrib's default reading).

    Example:
        >>> from pyattrib.compat.grad_cam import {name}
        >>> {name}(cnn, [conv])(images).shape
        (2, 8, 8)
    """


def _cam(rule: Rule, name: str, summary: str) -> type[BaseCAM]:
    doc = CLASS_DOC.format(summary=summary, name=name)
    return type(name, (BaseCAM,), {"rule": rule, "name": name.lower(), "__doc__": doc, "__module__": __name__})


GradCAM = _cam(GRAD_CAM, "GradCAM", "pytorch-grad-cam's ``GradCAM`` over :func:`pyattrib.cam.grad_cam`.")
GradCAMPlusPlus = _cam(
    GRAD_CAM_PLUS_PLUS,
    "GradCAMPlusPlus",
    "pytorch-grad-cam's ``GradCAMPlusPlus`` over :func:`pyattrib.cam.grad_cam_plus_plus`.",
)
XGradCAM = _cam(XGRAD_CAM, "XGradCAM", "pytorch-grad-cam's ``XGradCAM`` over :func:`pyattrib.cam.xgrad_cam`.")
HiResCAM = _cam(HIRES_CAM, "HiResCAM", "pytorch-grad-cam's ``HiResCAM`` over :func:`pyattrib.cam.hires_cam`.")
GradCAMElementWise = _cam(
    GRAD_CAM_ELEMENTWISE, "GradCAMElementWise",
    "pytorch-grad-cam's ``GradCAMElementWise`` over :func:`pyattrib.cam.grad_cam_elementwise`.",
)  # fmt: skip
LayerCAM = _cam(LAYER_CAM, "LayerCAM", "pytorch-grad-cam's ``LayerCAM`` over :func:`pyattrib.cam.layer_cam`.")
EigenCAM = _cam(EIGEN_CAM, "EigenCAM", "pytorch-grad-cam's ``EigenCAM`` over :func:`pyattrib.cam.eigen_cam`.")
SegEigenCAM = _cam(
    SEG_EIGEN_CAM, "SegEigenCAM",
    "pytorch-grad-cam's ``SegEigenCAM``: the first principal component of ``|G| * A``, its sign making the "
    "largest entry positive (Chung and Ying, 2025).",
)  # fmt: skip
EigenGradCAM = _cam(
    EIGEN_GRAD_CAM, "EigenGradCAM", "pytorch-grad-cam's ``EigenGradCAM`` over :func:`pyattrib.cam.eigen_grad_cam`."
)


class KPCA_CAM(BaseCAM):  # noqa: N801  pytorch-grad-cam's name
    """pytorch-grad-cam's ``KPCA_CAM`` over :func:`pyattrib.cam.kpca_cam`.

    Args:
        model: The model; left exactly as found.
        target_layers: The modules whose outputs are mapped.
        reshape_transform: ``value -> (N, C, h, w)`` for token layers.
        kernel: The kernel of the PCA (``"sigmoid"``, ``"rbf"``, ``"poly"``, ``"linear"``, ``"cosine"``).
        gamma: The kernel's scale (None: ``1 / C``).

    Example:
        >>> from pyattrib.compat.grad_cam import KPCA_CAM
        >>> KPCA_CAM(cnn, [conv], kernel="rbf")(images).shape
        (2, 8, 8)
    """

    rule = KPCA_RULE
    name = "kpca_cam"

    def __init__(
        self,
        model: nn.Module,
        target_layers: list[nn.Module],
        reshape_transform: Any = None,
        kernel: str = "sigmoid",
        gamma: float | None = None,
    ) -> None:
        super().__init__(model, target_layers, reshape_transform)
        self.kernel, self.gamma = kernel, gamma

    def _options(self) -> dict[str, Any]:
        return {"kernel": self.kernel, "gamma": self.gamma}


class ScoreCAM(BaseCAM):
    """pytorch-grad-cam's ``ScoreCAM`` over :func:`pyattrib.cam.score_cam`; set ``cam.batch_size``
    (default 16) for the rows per forward, as there.

    Args:
        model: The model; left exactly as found.
        target_layers: The modules whose outputs are mapped.
        reshape_transform: ``value -> (N, C, h, w)`` for token layers.

    Example:
        >>> from pyattrib.compat.grad_cam import ScoreCAM
        >>> from pyattrib.compat.grad_cam.utils.model_targets import ClassifierOutputTarget
        >>> ScoreCAM(cnn, [conv])(images, targets=[ClassifierOutputTarget(1)] * 2).shape
        (2, 8, 8)
    """

    rule = SCORE_CAM
    name = "score_cam"

    def __init__(self, model: nn.Module, target_layers: list[nn.Module], reshape_transform: Any = None) -> None:
        super().__init__(model, target_layers, reshape_transform)
        self.batch_size = 16


class AblationCAM(BaseCAM):
    """pytorch-grad-cam's ``AblationCAM`` over :func:`pyattrib.cam.ablation_cam`.

    Args:
        model: The model; left exactly as found.
        target_layers: The modules whose outputs are mapped.
        reshape_transform: ``value -> (N, C, h, w)`` for token layers.
        ablation_layer: ``AblationLayer()`` or ``AblationLayerVit()`` (channels last); pyattrib reads the
            layout from the layer's output either way.
        batch_size: Rows per forward (also the period of pytorch-grad-cam's fill-value drift).
        ratio_channels_to_ablate: Only 1.0 (every channel) is supported.

    Example:
        >>> from pyattrib.compat.grad_cam import AblationCAM
        >>> AblationCAM(cnn, [conv], batch_size=16)(images).shape
        (2, 8, 8)
    """

    name = "ablation_cam"

    def __init__(
        self,
        model: nn.Module,
        target_layers: list[nn.Module],
        reshape_transform: Any = None,
        ablation_layer: Any = None,
        batch_size: int = 32,
        ratio_channels_to_ablate: float = 1.0,
    ) -> None:
        if ratio_channels_to_ablate != 1.0:
            raise ArgumentError(
                "ratio_channels_to_ablate: only 1.0 is supported (every channel ablated); pyattrib batches all "
                "channels, so skipping some saves little"
            )
        super().__init__(model, target_layers, reshape_transform)
        self.ablation_layer = ablation_layer if ablation_layer is not None else AblationLayer()
        self.batch_size = batch_size

    @property
    def rule(self) -> Rule:  # type: ignore[override]
        stacked = self.batch_size if GRAD_CAM_SEMANTICS["stacked_ablation"] else None
        return ablation_rule(stacked_batch=stacked)


class FullGrad(BaseCAM):
    """pytorch-grad-cam's ``FullGrad`` over :func:`pyattrib.cam.full_grad`; ``target_layers`` is
    ignored (every Conv2d and BatchNorm2d with a bias is used), as there.

    Args:
        model: The model; left exactly as found.
        target_layers: Ignored.
        reshape_transform: Ignored.

    Example:
        >>> from pyattrib.compat.grad_cam import FullGrad
        >>> FullGrad(cnn, [])(images).shape
        (2, 8, 8)
    """

    name = "full_grad"

    def _attributor(self, aug_smooth: bool, eigen_smooth: bool) -> Any:
        if aug_smooth:
            raise ArgumentError("FullGrad: aug_smooth is not supported by pyattrib's full_grad; call without it")
        return full_grad(
            self.model, eigen_smooth=eigen_smooth, svd_sign=GRAD_CAM_SEMANTICS["svd_sign"],
            bias_pairing=GRAD_CAM_SEMANTICS["bias_pairing"],
        )  # fmt: skip


def patch_grad_cam() -> None:
    """Make ``import pytorch_grad_cam`` (and its ``utils``, ``ablation_layer`` modules) give
    this package's classes, for code written against pytorch-grad-cam.

    Returns:
        None; ``sys.modules`` holds this package under pytorch-grad-cam's names from then on.

    Example:
        >>> from pyattrib.compat import grad_cam
        >>> grad_cam.patch_grad_cam()
        >>> import pytorch_grad_cam
        >>> pytorch_grad_cam.GradCAM is grad_cam.GradCAM
        True
    """
    from .utils import image, model_targets, reshape_transforms, svd_on_activations

    here = sys.modules[__name__]
    utils = sys.modules[__name__ + ".utils"]
    for name, module in {
        "pytorch_grad_cam": here,
        "pytorch_grad_cam.utils": utils,
        "pytorch_grad_cam.utils.image": image,
        "pytorch_grad_cam.utils.model_targets": model_targets,
        "pytorch_grad_cam.utils.reshape_transforms": reshape_transforms,
        "pytorch_grad_cam.utils.svd_on_activations": svd_on_activations,
        "pytorch_grad_cam.ablation_layer": ablation_layer,
    }.items():
        assert isinstance(module, types.ModuleType)
        sys.modules[name] = module


__all__ = [
    "AblationCAM",
    "BaseCAM",
    "EigenCAM",
    "EigenGradCAM",
    "FullGrad",
    "GRAD_CAM_SEMANTICS",
    "GradCAM",
    "GradCAMElementWise",
    "GradCAMPlusPlus",
    "HiResCAM",
    "KPCA_CAM",
    "LayerCAM",
    "ScoreCAM",
    "SegEigenCAM",
    "XGradCAM",
    "ablation_layer",
    "patch_grad_cam",
    "utils",
]
