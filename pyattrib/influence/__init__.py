"""Training-data influence from per-sample gradients (``torch.func``)."""

from .tracin import TracInCP, tracin_cp

__all__ = ["TracInCP", "tracin_cp"]
