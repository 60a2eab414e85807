"""The error pyattrib raises for a bad argument, and the checks of counts shared by every method."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class ArgumentError(ValueError, AssertionError):
    """A bad argument: the message names it and says how to fix it.

    A ``ValueError``; also an ``AssertionError``, the type Captum raises for bad arguments,
    so code (and tests) written against Captum catch it too. Where Captum raises another type
    for the same mistake, ``ArgumentError.also(RuntimeError)`` is an ``ArgumentError`` that is
    that type as well.
    """

    @classmethod
    def also(cls, *types: type[Exception]) -> type[ArgumentError]:
        """An ``ArgumentError`` subclass that is also each of ``types`` (one class per set)."""
        return _also(types)


@functools.cache
def _also(types: tuple[type[Exception], ...]) -> type[ArgumentError]:
    name = "ArgumentError" + "".join(t.__name__ for t in types)
    return type(name, (ArgumentError, *types), {"__module__": __name__, "__doc__": ArgumentError.__doc__})


def check_per_row(values: object, rows: int, what: str, hint: str) -> None:
    """``values`` must be a tensor of shape ``(rows,)``: one number per row of an evaluation;
    else an error saying what returned what, and ``hint``."""
    from torch import Tensor

    if not isinstance(values, Tensor) or values.shape != (rows,):
        shape = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise ArgumentError(f"{what} returned {shape}; it must {hint}, shape ({rows},)")


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """A configuration count (n_steps, n_samples, ...) must be an int of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        at_least = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ArgumentError(f"{name} must be {at_least}, got {value!r}")
    return value


def check_batch_size(batch_size: int | None) -> int | None:
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ArgumentError(f"batch_size must be None or a positive int, got {batch_size!r}")
    return batch_size


def needs(module: str, extra: str) -> Callable[[F], F]:
    """A public function that needs an optional dependency: without it, the call raises
    ``ModuleNotFoundError`` naming the extra to install, before any work is done."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def checked(*args: Any, **kwargs: Any) -> Any:
            try:
                importlib.import_module(module)
            except ImportError as error:
                raise ModuleNotFoundError(
                    f'{fn.__module__.rsplit(".", 1)[0]}.{fn.__name__} needs {module}: pip install "pyattrib[{extra}]"',
                    name=module,
                ) from error
            return fn(*args, **kwargs)

        return checked  # type: ignore[return-value]

    return decorate


def renamed(**old_to_new: str) -> Callable[[F], F]:
    """Keyword arguments renamed for one name per concept across families: each old name
    still works for one release, with a ``DeprecationWarning`` naming the new one; giving
    both is an error. ``inspect.signature`` and the docs show only the new names."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def forwarding(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **renamed_in(kwargs, old_to_new, fn.__name__))

        return forwarding  # type: ignore[return-value]

    return decorate


def renamed_in(kwargs: dict[str, Any], old_to_new: dict[str, str], where: str) -> dict[str, Any]:
    """``kwargs`` with each old name of ``old_to_new`` replaced by its new name (see :func:`renamed`)."""
    import warnings

    for old, new in old_to_new.items():
        if old not in kwargs:
            continue
        if kwargs.get(new) is not None:
            raise ArgumentError(f"{where}: pass {new}= only ({old}= is its old name)")
        warnings.warn(f"{where}: {old}= is now {new}= (the old name goes in the next release)", DeprecationWarning,
                      stacklevel=3)  # fmt: skip
        kwargs = {**{k: v for k, v in kwargs.items() if k != old}, new: kwargs[old]}
    return kwargs
