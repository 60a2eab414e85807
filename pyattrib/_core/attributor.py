"""The one core type: an attributor is a configured method waiting for data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

PER_EXAMPLE = ("baselines", "target", "additional_forward_args")


@dataclass(frozen=True)
class Attributor:
    """A callable ``(inputs, baselines=None, *, target=..., ...) -> attributions``.

    Transforms such as :func:`pyattrib.integrated_gradients` return one; wrappers such as
    :func:`pyattrib.smoothgrad` take one and return another with the same call signature.
    The fields tell wrappers how to expand a call to a larger batch:

    - ``per_example``: keyword arguments whose tensors/lists follow the batch rows;
    - ``random``: the call accepts ``generator=``;
    - ``returns_delta``: the call returns ``(attributions, delta)``.
    """

    fn: Callable[..., Any]
    forward: Callable[..., Any]
    per_example: tuple[str, ...] = PER_EXAMPLE
    random: bool = False
    returns_delta: bool = False
    name: str = "attributor"

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        return self.fn(inputs, *args, **kwargs)

    def with_fn(self, fn: Callable[..., Any], **changes: Any) -> Attributor:
        return replace(self, fn=fn, **changes)

    def __repr__(self) -> str:
        return f"<pyattrib {self.name} of {getattr(self.forward, '__class__', type(self)).__name__}>"


def bind_baselines(args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Fold the optional positional ``baselines`` into keyword arguments."""
    if len(args) > 1:
        raise TypeError("attributors take (inputs, baselines=None, *, ...); pass other arguments by keyword")
    if args:
        if "baselines" in kwargs:
            raise TypeError("baselines given both positionally and by keyword")
        kwargs = {**kwargs, "baselines": args[0]}
    return kwargs
