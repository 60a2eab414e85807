"""Captum's ``DataLoaderAttribution`` over :func:`pyattrib.data.dataloader_attribution`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import data
from ._base import CAPTUM_SEMANTICS, Attribution


class InputRole:
    """What each tensor of a batch is for: attributed, only passed to the model, or neither.

    Example:
        >>> from pyattrib.compat import InputRole
        >>> InputRole.need_attr, InputRole.need_forward, InputRole.no_forward
        (0, 1, 2)
    """

    need_attr = data.dataloader.NEED_ATTR
    need_forward = data.dataloader.NEED_FORWARD
    no_forward = data.dataloader.NO_FORWARD


class DataLoaderAttribution(Attribution):
    """Captum's ``DataLoaderAttribution``: dataset-level ablation of a ``FeatureAblation``'s model.

    Args:
        attr_method: The compat attribution it runs (e.g. a ``FeatureAblation`` or
            ``LayerIntegratedGradients`` instance).

    Example:
        >>> from pyattrib.compat import DataLoaderAttribution, FeatureAblation
        >>> loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=2)
        >>> attr = DataLoaderAttribution(FeatureAblation(lambda x: model(x).sum(0))).attribute(loader)
        >>> [a.shape for a in attr]
        [torch.Size([6, 8])]
    """

    def __init__(self, attr_method: Any) -> None:
        from .perturbation import FeatureAblation

        if not isinstance(attr_method, FeatureAblation):
            raise AssertionError(f"DataLoaderAttribution supports FeatureAblation, not {type(attr_method).__name__}")
        super().__init__(attr_method.forward_func)
        self.attr_method = attr_method

    def attribute(self, dataloader: Any, input_roles: tuple[int, ...] | None = None, baselines: Any = None,
                  feature_mask: Any = None, reduce: Callable | None = None, to_metric: Callable | None = None,
                  perturbations_per_pass: int = 1, show_progress: bool = False,
                  return_input_shape: bool = True) -> Any:  # fmt: skip
        attribute = data.dataloader_attribution(
            self.forward_func, reduce=reduce, to_metric=to_metric, perturbations_per_pass=perturbations_per_pass,
            show_progress=show_progress, flat_metric=CAPTUM_SEMANTICS["flat_metric"],
        )  # fmt: skip
        return attribute(dataloader, baselines, input_roles=input_roles, feature_mask=feature_mask,
                         return_input_shape=return_input_shape)  # fmt: skip
