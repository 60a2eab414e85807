"""pytest plugin for pytorch-grad-cam's own tests (``-p grad_cam_twin``).

- ``PYATTRIB_GRAD_CAM=twin``: ``import pytorch_grad_cam`` gives :mod:`pyattrib.compat.grad_cam`
  (:func:`~pyattrib.compat.grad_cam.patch_grad_cam`), so the suite runs on the drop-in classes;
  ``PYATTRIB_GRAD_CAM=broken`` also makes every class's call raise, to prove the twin is reached.
- Offline: torchvision's model builders ignore ``weights=`` / ``pretrained=`` (random weights
  instead of a download). The tests that use them assert shapes and that every method runs.

Load ``torchvision_ops`` first (``-p torchvision_ops -p grad_cam_twin``).
"""

from __future__ import annotations

import functools
import os
from typing import Any


def _offline(builder: Any) -> Any:
    @functools.wraps(builder)
    def build(*args: Any, weights: Any = None, pretrained: Any = None, **kwargs: Any) -> Any:
        return builder(*args, **kwargs)

    return build


def pytest_configure(config: Any) -> None:
    import torchvision.models as models

    for name in ("resnet18", "vgg11"):
        setattr(models, name, _offline(getattr(models, name)))
    mode = os.environ.get("PYATTRIB_GRAD_CAM")
    if mode in ("twin", "broken"):
        from pyattrib.compat import grad_cam

        grad_cam.patch_grad_cam()
        if mode == "broken":

            def broken(self: Any, *args: Any, **kwargs: Any) -> Any:
                raise RuntimeError("broken twin: the suite reached pyattrib.compat.grad_cam")

            grad_cam.BaseCAM.__call__ = broken  # type: ignore[method-assign]
