"""Progress bars, set up in one place: a tqdm bar on stderr when asked for, else nothing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class _Silent:
    """Stands in for a manual bar (``update``/``close``) when none is shown."""

    def update(self, n: int = 1) -> None: ...

    def close(self) -> None: ...


def progress(items: Iterable[Any] | None, show: bool, desc: str, total: int | None = None) -> Any:
    """``items`` wrapped in a tqdm bar reading ``desc`` when ``show``, else ``items`` unchanged.
    With ``items=None`` a manual bar (``update``, ``close``) of ``total`` steps, or a silent one."""
    if not show:
        return _Silent() if items is None else items
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc) if items is None else tqdm(items, desc=desc, total=total)
