"""Gradient and activation CAMs: each a rule of a few lines over the pipeline of :mod:`._engine`.

``A`` is the layer's activation map ``(N, C, h, w)``, ``G = d target / d A`` its gradient,
sums and means are over the spatial positions ``(h, w)`` unless a channel is named.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch.nn.functional as F
from torch import Tensor

from .._core.attributor import Attributor
from .._core.calls import InputCall
from ._engine import LayerLike, Rule, cam_transform, channel, spatial_sum
from .reshape import ReshapeLike

GRAD_CAM = Rule(channel(lambda a, g: g.mean((2, 3))))
XGRAD_CAM = Rule(channel(lambda a, g: (g * a / (spatial_sum(a) + 1e-7)).sum((2, 3))))
HIRES_CAM = Rule(
    lambda a, g: g * a,
    smoothing_warning="HiResCAM's faithfulness guarantee does not hold with eigen_smooth=True",
)
GRAD_CAM_ELEMENTWISE = Rule(lambda a, g: F.relu(g * a))
LAYER_CAM = Rule(lambda a, g: F.relu(g) * a)
EIGEN_CAM = Rule(lambda a, g: a, reduce="svd", uses_gradients=False)
EIGEN_GRAD_CAM = Rule(lambda a, g: g * a, reduce="svd")
KPCA_CAM = Rule(lambda a, g: a, reduce="kpca", uses_gradients=False)


def _plus_plus_weights(a: Tensor, g: Tensor) -> Tensor:
    g2 = g * g
    alpha = g2 / (2 * g2 + spatial_sum(a) * g2 * g + 1e-6)
    alpha = alpha.masked_fill(g == 0, 0)
    return (F.relu(g) * alpha).sum((2, 3))


GRAD_CAM_PLUS_PLUS = Rule(channel(_plus_plus_weights))

COMMON_ARGS = """model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output is mapped, or a list of modules (their maps are averaged, then
            rescaled).
        reshape_transform: ``value -> (N, C, h, w)`` for layers that are not channels-first maps;
            None reads convolution maps, ViT tokens ``(N, T, C)`` and Swin grids ``(N, h, w, C)`` as
            :func:`pyattrib.cam.spatial_map` says.
        resize: Resize each map (bilinear) to the input's ``H x W``.
        normalize: Scale each map to ``[0, 1]`` (``(M - min) / (max + 1e-7)``), as pytorch-grad-cam.
        aug_smooth: Average the maps of six test-time augmentations (flip x brightness 0.9/1/1.1).
        eigen_smooth: Replace the channel sum by the first principal component (Eigen-CAM's
            projection)."""

RETURNS = """Attributor: call it as ``(inputs, *, target=None, additional_forward_args=None)`` with
        images ``(N, C, H, W)``; ``target=None`` explains each example's predicted class. It returns
        the maps, ``(N, H, W)`` (``(N, h, w)`` with ``resize=False``), on the input's device."""


Documented = TypeVar("Documented", bound=Callable[..., Any])


def _documented(fn: Documented, name: str | None = None, doc: str | None = None) -> Documented:
    """``fn`` named ``name`` (if given), its docstring ``doc`` (or its own) with the common sections filled."""
    if name is not None:
        fn.__name__ = fn.__qualname__ = name
    text = doc if doc is not None else fn.__doc__ or ""
    fn.__doc__ = text.replace("{args}", COMMON_ARGS).replace("{returns}", RETURNS)
    return fn


def method(name: str, rule: Rule, doc: str) -> Callable[..., Attributor[InputCall]]:
    """A CAM transform: ``rule`` over the pipeline, with the common options, named and documented."""

    def transform(
        model: Any,
        layer: LayerLike,
        *,
        reshape_transform: ReshapeLike = None,
        resize: bool = True,
        normalize: bool = True,
        aug_smooth: bool = False,
        eigen_smooth: bool = False,
    ) -> Attributor[InputCall]:
        return cam_transform(
            model, layer, rule, name, reshape_transform=reshape_transform, resize=resize, normalize=normalize,
            aug_smooth=aug_smooth, eigen_smooth=eigen_smooth,
        )  # fmt: skip

    return _documented(transform, name, doc)


grad_cam = method(
    "grad_cam",
    GRAD_CAM,
    r"""Grad-CAM with pytorch-grad-cam's post-processing: channel weights are the mean gradient,

    .. math:: w_c = \operatorname{mean}_{ij} G_{cij}, \qquad M = \operatorname{ReLU}\Big(\sum_c w_c A_c\Big)

    then scaled to ``[0, 1]`` and resized to the image. (:func:`pyattrib.layer_gradcam` is
    Captum's form: the raw map at the layer.)

    Args:
        {args}

    Returns:
        {returns}

    References:
        - Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
          Localization", ICCV 2017. https://arxiv.org/abs/1610.02391

    Example:
        >>> pa.grad_cam(cnn, conv)(images, target=0).shape
        torch.Size([2, 8, 8])
    """,
)


grad_cam_plus_plus = method(
    "grad_cam_plus_plus",
    GRAD_CAM_PLUS_PLUS,
    r"""Grad-CAM++: channel weights sum the positive gradients, each weighted by

    .. math:: \alpha_{cij} = \frac{G_{cij}^2}{2 G_{cij}^2 + \sum_{kl} A_{ckl}\, G_{cij}^3 + 10^{-6}}, \qquad
              w_c = \sum_{ij} \alpha_{cij} \operatorname{ReLU}(G_{cij})

    (``alpha = 0`` where ``G = 0``), and ``M = ReLU(sum_c w_c A_c)``.

    Args:
        {args}

    Returns:
        {returns}

    References:
        - Chattopadhyay, Sarkar, Howlader and Balasubramanian, "Grad-CAM++: Improved Visual Explanations
          for Deep Convolutional Networks", WACV 2018. https://arxiv.org/abs/1710.11063

    Example:
        >>> pa.grad_cam_plus_plus(cnn, conv)(images, target=0).shape
        torch.Size([2, 8, 8])
    """,
)


xgrad_cam = method(
    "xgrad_cam",
    XGRAD_CAM,
    r"""XGrad-CAM: gradients weighted by the normalised activations,

    .. math:: w_c = \sum_{ij} G_{cij} \frac{A_{cij}}{\sum_{kl} A_{ckl} + 10^{-7}}, \qquad
              M = \operatorname{ReLU}\Big(\sum_c w_c A_c\Big)

    Args:
        {args}

    Returns:
        {returns}

    References:
        - Fu, Hu, Dong, Guo, Gao and Li, "Axiom-based Grad-CAM: Towards Accurate Visualization and
          Explanation of CNNs", BMVC 2020. https://arxiv.org/abs/2008.02312

    Example:
        >>> pa.xgrad_cam(cnn, conv)(images, target=0).shape
        torch.Size([2, 8, 8])
    """,
)


hires_cam = method(
    "hires_cam",
    HIRES_CAM,
    r"""HiResCAM: the gradient times the activation, summed over channels, not averaged first:

    .. math:: M = \operatorname{ReLU}\Big(\sum_c G_c \odot A_c\Big)

    For a model whose head is linear after the layer, this is the exact contribution of each
    position to the score (``eigen_smooth`` breaks that guarantee, and warns).

    Args:
        {args}

    Returns:
        {returns}

    References:
        - Draelos and Carin, "Use HiResCAM instead of Grad-CAM for faithful explanations of convolutional
          neural networks", 2020. https://arxiv.org/abs/2011.08891

    Example:
        >>> pa.hires_cam(cnn, conv)(images, target=0).shape
        torch.Size([2, 8, 8])
    """,
)


grad_cam_elementwise = method(
    "grad_cam_elementwise",
    GRAD_CAM_ELEMENTWISE,
    r"""Element-wise Grad-CAM: the rectified products, summed over channels,

    .. math:: M = \sum_c \operatorname{ReLU}(G_c \odot A_c)

    Args:
        {args}

    Returns:
        {returns}

    References:
        - Draelos and Carin, "Use HiResCAM instead of Grad-CAM for faithful explanations of convolutional
          neural networks", 2020 (the element-wise variant, as pytorch-grad-cam names it).
          https://arxiv.org/abs/2011.08891

    Example:
        >>> pa.grad_cam_elementwise(cnn, conv)(images, target=0).shape
        torch.Size([2, 8, 8])
    """,
)


layer_cam = method(
    "layer_cam",
    LAYER_CAM,
    r"""LayerCAM: each position weighted by its own positive gradient,

    .. math:: M = \operatorname{ReLU}\Big(\sum_c \operatorname{ReLU}(G_c) \odot A_c\Big)

    Args:
        {args}

    Returns:
        {returns}

    References:
        - Jiang, Zhang, Hou, Cheng and Wei, "LayerCAM: Exploring Hierarchical Class Activation Maps for
          Localization", IEEE TIP 2021. https://doi.org/10.1109/TIP.2021.3089943

    Example:
        >>> pa.layer_cam(cnn, conv)(images, target=0).shape
        torch.Size([2, 8, 8])
    """,
)


eigen_cam = method(
    "eigen_cam",
    EIGEN_CAM,
    r"""Eigen-CAM: the activations' first principal component, no gradient and no target:

    .. math:: M = \operatorname{ReLU}(\bar A\, v_1), \qquad \bar A = A - \operatorname{mean}_{ij} A, \quad
              v_1 = \text{first right singular vector of } \bar A \in \mathbb{R}^{hw \times C}

    The sign of :math:`v_1` is the SVD's; ``eigen_smooth`` changes nothing.

    Args:
        {args}

    Returns:
        {returns}

    References:
        - Muhammad and Yeasin, "Eigen-CAM: Class Activation Map using Principal Components", IJCNN 2020.
          https://arxiv.org/abs/2008.00299

    Example:
        >>> pa.eigen_cam(cnn, conv)(images).shape
        torch.Size([2, 8, 8])
    """,
)


eigen_grad_cam = method(
    "eigen_grad_cam",
    EIGEN_GRAD_CAM,
    r"""Eigen-Grad-CAM: the first principal component of :math:`G \odot A` (Eigen-CAM made class
    specific), :math:`M = \operatorname{ReLU}(\overline{G \odot A}\, v_1)`.

    Args:
        {args}

    Returns:
        {returns}

    References:
        - Muhammad and Yeasin, "Eigen-CAM: Class Activation Map using Principal Components", IJCNN 2020.
          https://arxiv.org/abs/2008.00299

    Example:
        >>> pa.eigen_grad_cam(cnn, conv)(images, target=0).shape
        torch.Size([2, 8, 8])
    """,
)


@_documented
def kpca_cam(
    model: Any,
    layer: LayerLike,
    *,
    kernel: str = "sigmoid",
    gamma: float | None = None,
    reshape_transform: ReshapeLike = None,
    resize: bool = True,
    normalize: bool = True,
    aug_smooth: bool = False,
    eigen_smooth: bool = False,
) -> Attributor[InputCall]:
    r"""KPCA-CAM: Eigen-CAM with kernel PCA, :math:`M = \operatorname{ReLU}(\sqrt{\lambda_1}\, u_1)` for
    the top eigenpair of the double-centred kernel matrix of the ``h*w`` activation vectors (see
    :func:`pyattrib.cam.kernel_projection`). No gradient and no target.

    Args:
        kernel: ``"sigmoid"`` (:math:`\tanh(\gamma x^\top y + 1)`), ``"rbf"``, ``"poly"`` (degree 3),
            ``"linear"`` or ``"cosine"``.
        gamma: The kernel's scale (None: ``1 / C``).
        {args}

    Returns:
        {returns}

    References:
        - Karmani, Chaabane and Ben Amar, "KPCA-CAM: Visual Explainability of Deep Computer Vision Models
          using Kernel PCA", MMSP 2024. https://arxiv.org/abs/2410.00267

    Example:
        >>> pa.kpca_cam(cnn, conv)(images).shape
        torch.Size([2, 8, 8])
    """
    return cam_transform(
        model, layer, KPCA_CAM, "kpca_cam", reshape_transform=reshape_transform, resize=resize, normalize=normalize,
        aug_smooth=aug_smooth, eigen_smooth=eigen_smooth, kernel=kernel, gamma=gamma,
    )  # fmt: skip
