"""Training-data influence from per-sample gradients (``torch.func``)."""

from .tracin import TracInCP, TracInCPFast, tracin_cp, tracin_cp_fast

__all__ = ["TracInCP", "TracInCPFast", "tracin_cp", "tracin_cp_fast"]
