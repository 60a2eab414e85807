"""The one core type: an attributor is a configured method waiting for data."""

from __future__ import annotations

import contextvars
import functools
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import torch
import torch.utils._pytree as pytree
from torch import Tensor

from .capture import LayerValue
from .errors import ArgumentError
from .inputs import repeat_examples, restore
from .state import model_of, submodules, transformed

PER_EXAMPLE = ("baselines", "target", "additional_forward_args")
# the per-example arguments of the feature (perturbation) methods
FEATURE_PER_EXAMPLE = (*PER_EXAMPLE, "feature_mask")
C = TypeVar("C", bound=Callable[..., Any], covariant=True)  # the call's signature, e.g. calls.BaselineCall
# set while a wrapper calls its inner attributor on copies of the batch (finiteness is checked outside)
_NESTED: contextvars.ContextVar[bool] = contextvars.ContextVar("nested", default=False)

# Captum's argument names, and where their pyattrib equivalent goes
CAPTUM_NAMES = {
    "internal_batch_size": "batch_size= on the transform, e.g. pa.integrated_gradients(model, batch_size=64)",
    "perturbations_per_eval": "batch_size= on the transform (rows per evaluation = perturbations x batch)",
    "return_convergence_delta": "return_delta=True on the transform",
    "nt_type": "the wrapper: pa.noise_tunnel(attributor, kind=...), or pa.smoothgrad / smoothgrad_sq / vargrad",
    "nt_samples": "n_samples= on the noise wrapper, e.g. pa.smoothgrad(attributor, n_samples=...)",
    "nt_samples_batch_size": "batch_size= on the noise wrapper (in rows, not samples)",
    "draw_baseline_from_distrib": "draw_baseline_from_distrib= on pa.noise_tunnel",
    "baseline": "baselines= at call time",
    "additional_args": "additional_forward_args= at call time",
}
# Captum's method names, asked of an attributor
CAPTUM_METHODS = {
    "attribute": "an attributor is called directly, attributions = attributor(inputs, baselines, target=...)",
    "attribute_future": "an attributor is called directly (it returns tensors, not futures)",
    "compute_convergence_delta": "pass return_delta=True to the transform, or use pa.convergence_delta(...)",
    "has_convergence_delta": "the transform's return_delta= says whether the call returns (attributions, delta)",
}
CONFIGURATION = (
    "n_steps", "method", "n_samples", "stdevs", "batch_size", "multiply_by_inputs", "abs", "eps",
    "sliding_window_shapes", "strides", "show_progress", "return_delta", "attribute_to_layer_input",
    "attribute_to_neuron_input", "relu_attributions", "perturb_func", "similarity_func", "interpretable_model",
    "custom_attribution_func", "exact_max_pool", "n_perturb_samples", "rules",
)  # fmt: skip


@dataclass(frozen=True)
class Attributor(Generic[C]):
    """A callable ``(inputs, baselines=None, *, target=..., ...) -> attributions``.

    Transforms such as :func:`pyattrib.integrated_gradients` return one; wrappers such as
    :func:`pyattrib.smoothgrad` take one and return another with the same call signature.
    The fields tell wrappers how to expand a call to a larger batch:

    - ``per_example``: keyword arguments whose tensors/lists follow the batch rows;
    - ``random``: the call accepts ``generator=``;
    - ``returns_delta``: the call returns ``(attributions, delta)``.

    ``inspect.signature``, ``help()`` and IDEs see the call's real signature and the
    transform's docstring. Statically, a transform returns ``Attributor[C]`` with ``C`` its call
    signature (a protocol of ``pyattrib._core.calls``): mypy, pyright and jedi check and
    complete the call's arguments; a bare ``Attributor`` is ``Attributor[Any]``.

    Example:
        >>> ig = pa.integrated_gradients(model)
        >>> isinstance(ig, pa.Attributor), ig(x, target=y).shape
        (True, torch.Size([4, 8]))
    """

    fn: C
    forward: Callable[..., Any]
    per_example: tuple[str, ...] = PER_EXAMPLE
    random: bool = False
    returns_delta: bool = False
    name: str = "attributor"
    signature: inspect.Signature | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.signature is None:
            object.__setattr__(self, "signature", inspect.signature(self.fn))
        transform: Any = sys.modules.get("pyattrib")
        for part in self.name.split("(")[0].split("."):  # a name such as "text.llm_attribution"
            transform = getattr(transform, part, None)
        doc = f"pyattrib {self.name} attributor{self.signature}"
        if transform is not None and transform.__doc__:
            doc += "\n\n" + inspect.cleandoc(transform.__doc__)
        object.__setattr__(self, "__doc__", doc)

    @property
    def __signature__(self) -> inspect.Signature:
        assert self.signature is not None
        return self.signature

    if TYPE_CHECKING:  # the call is C's: its arguments, their types and defaults

        @property
        def __call__(self) -> C: ...

    else:

        def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
            return self._call(inputs, *args, **kwargs)

    def _call(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if torch.compiler.is_compiling():
            return self.fn(inputs, *args, **kwargs)
        self._check_names(kwargs)
        _check_placement(self.forward, inputs)
        # one synchronisation before (inputs, baselines) and one after (attributions); only what is not
        # finite is diagnosed. A wrapper checks its own call, with the examples' rows.
        checked = not transformed() and not _NESTED.get()
        if checked:
            baselines = args[0] if args else kwargs.get("baselines")
            if not _all_finite(inputs, baselines):
                _check_finite(inputs, "inputs", self.name)
                _check_finite(baselines, "baselines", self.name)
        try:
            result = self.fn(inputs, *args, **kwargs)
        except RuntimeError as error:  # the user's error, re-raised as is: a hint is added, nothing retried
            _hint_batch_dimension(error, inputs)
            raise
        if checked and not _all_finite(result):
            _check_finite_result(result, inputs, self.name)
        return result

    def _check_names(self, kwargs: dict[str, Any]) -> None:
        assert self.signature is not None
        params = self.signature.parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return
        for key in kwargs:
            if key not in params:
                raise TypeError(_misplaced(self.name, key, f"the call is {self.signature}", at_call=True))

    def with_fn(
        self, fn: Callable[..., Any], edits: Mapping[str, inspect.Parameter | None] | None = None, **changes: Any
    ) -> Attributor:
        """Another attributor with ``fn``. A wrapper's ``fn`` (taking ``*args, **kwargs``) keeps
        this one's call signature, with ``edits`` (a parameter replaced, or dropped with None)
        and ``generator`` added when the result draws random numbers."""
        sig = inspect.signature(fn)
        if edits or any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in sig.parameters.values()):
            assert self.signature is not None
            sig = _edited(self.signature, edits or {}, bool(changes.get("random")))
        return replace(cast("Attributor[Any]", self), fn=fn, signature=sig, **changes)

    def __getattr__(self, key: str) -> Any:  # only called for names the attributor does not have
        if key in CAPTUM_METHODS:
            raise AttributeError(
                f"{self.name} has no .{key}(): {CAPTUM_METHODS[key]}. (Captum's classes, with .{key}(), "
                "are in pyattrib.compat.)"
            )
        raise AttributeError(f"'Attributor' object has no attribute {key!r}")

    def __repr__(self) -> str:
        return f"<pyattrib {self.name} of {getattr(self.forward, '__class__', type(self)).__name__}>"


CALL_DATA = ("inputs", "baselines", "target", "additional_forward_args", "feature_mask", "neuron_selector", "generator")


def _misplaced(name: str, key: str, expected: str, at_call: bool) -> str:
    """The message for keyword ``key`` that ``name`` does not take: where it goes instead."""
    transform = name.split("(")[0]
    if key in CAPTUM_NAMES:
        return f"{name}: {key!r} is Captum's name; in pyattrib use {CAPTUM_NAMES[key]}"
    if at_call and key in CONFIGURATION:
        return (
            f"{name}: {key!r} is configuration: pass it to the transform, e.g. pa.{transform}(model, {key}=...), "
            "not to the call"
        )
    if not at_call and key in CALL_DATA:
        return f"{name}: {key!r} is data: pass it to the attributor, e.g. pa.{transform}(model)(inputs, {key}=...)"
    return f"{name}() got an unexpected keyword argument {key!r}; {expected}"


def checked_transform(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A public transform whose unknown keyword arguments are named with where they go (Captum's
    names, call-time data given at transform time), checked before the transform runs."""
    sig = inspect.signature(fn)
    if getattr(fn, "checked", False) or any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return fn

    @functools.wraps(fn)
    def transform(*args: Any, **kwargs: Any) -> Any:
        for key in kwargs:
            if key not in sig.parameters:
                raise TypeError(_misplaced(fn.__name__, key, f"the transform is {fn.__name__}{sig}", at_call=False))
        return fn(*args, **kwargs)

    transform.checked = True  # type: ignore[attr-defined]
    return transform


def _edited(sig: inspect.Signature, edits: Mapping[str, inspect.Parameter | None], random: bool) -> inspect.Signature:
    edited = [edits.get(p.name, p) if p.name in edits else p for p in sig.parameters.values()]
    params = [p for p in edited if p is not None]
    if random and "generator" not in sig.parameters:
        at = next((i for i, p in enumerate(params) if p.kind is p.VAR_KEYWORD), len(params))
        params.insert(at, inspect.Parameter("generator", inspect.Parameter.KEYWORD_ONLY, default=None))
    return sig.replace(parameters=params)


def _check_placement(forward: Callable[..., Any], inputs: Any) -> None:
    """Inputs on another device than the model's parameters, or float inputs of another dtype
    than a model whose parameters are all of one float dtype."""
    module = model_of(forward)
    xs = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    first = None if module is None else next((p for m in submodules(module) for p in m._parameters.values()
                                              if p is not None and p.is_floating_point()), None)  # fmt: skip
    devices = {x.device for x in xs if isinstance(x, torch.Tensor)}
    if first is not None and devices and first.device not in devices:
        (device,) = devices if len(devices) == 1 else (sorted(map(str, devices))[0],)
        raise ArgumentError(
            f"inputs are on {device} but the model's parameters are on {first.device}; "
            f"move one to the other: inputs.to({str(first.device)!r}) or model.to({str(device)!r})"
        )
    given = {x.dtype for x in xs if isinstance(x, torch.Tensor) and x.is_floating_point()}
    if module is None or not given:
        return
    if first is None or first.dtype in given:
        return  # one parameter matches: no mismatch to report (the full walk only on suspicion)
    held = {p.dtype for p in module.parameters() if p.is_floating_point()}
    if len(held) == 1 and not given & held:
        (dtype,) = held
        raise ArgumentError(
            f"inputs are {', '.join(sorted(map(str, given)))} but the model's parameters are {dtype}; "
            f"cast one to the other: inputs.to({dtype}) or model.to({sorted(map(str, given))[0]})"
        )


def _bad_rows(t: Tensor) -> str:
    """The rows (dimension 0) of ``t`` holding a NaN or an infinity, as a message lists them."""
    flat = t.detach().reshape(t.shape[0], -1) if t.dim() else t.detach().reshape(1, 1)
    rows = torch.nonzero(~torch.isfinite(flat).all(1)).flatten().tolist()
    return f"{rows[:10]}{' ...' if len(rows) > 10 else ''}"


def _all_finite(*values: Any) -> bool:
    """Whether every floating-point tensor in ``values`` is (very likely) finite, with one host
    synchronisation: a NaN or inf anywhere makes the sum of sums non-finite. A sum that only
    overflows sends the caller to the exact, per-tensor checks, which then find nothing."""
    total = None
    for t in pytree.tree_leaves(values):
        if isinstance(t, Tensor) and t.is_floating_point() and t.numel():
            part = t.detach().sum()
            total = part if total is None else total + part.to(total.device)
    return total is None or bool(torch.isfinite(total))


def _check_finite(inputs: Any, name: str, method: str) -> None:
    """Inputs with NaN or inf have no meaningful attribution: say which examples."""
    xs = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    for j, x in enumerate(xs):
        if isinstance(x, Tensor) and x.is_floating_point() and x.numel() and not bool(torch.isfinite(x).all()):
            where = f"{name}[{j}]" if isinstance(inputs, (tuple, list)) else name
            raise ArgumentError(
                f"{method}: {where} holds NaN or inf in examples {_bad_rows(x)}; "
                "their attributions would be undefined: replace or drop those examples"
            )


def _check_finite_result(result: Any, inputs: Any, method: str) -> None:
    """NaN or inf attributions (a model whose output or gradient is not finite at these inputs)
    are refused with the examples named, instead of being returned."""
    first = inputs[0] if isinstance(inputs, (tuple, list)) else inputs
    n = first.shape[0] if isinstance(first, Tensor) and first.dim() else None
    for leaf in pytree.tree_leaves(result):
        if not (isinstance(leaf, Tensor) and leaf.is_floating_point() and leaf.numel()):
            continue
        if bool(torch.isfinite(leaf).all()):
            continue
        where = f" of examples {_bad_rows(leaf)}" if n is not None and leaf.dim() and leaf.shape[0] == n else ""
        raise ArgumentError(
            f"{method}: the attributions{where} are NaN or inf: the model's output (or its gradient) is not finite "
            "at these inputs; check the model on them (e.g. model(x).isfinite()), or drop those examples"
        )


def _hint_batch_dimension(error: RuntimeError, inputs: Any) -> None:
    """Add the fix to a shape or dtype error raised by the model (once): the batch dimension, or
    integer inputs to a float model."""
    text = str(error).lower()
    if getattr(error, "_pyattrib_hinted", False) or not hasattr(error, "add_note"):
        return
    xs = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    first = next((x for x in xs if isinstance(x, torch.Tensor)), None)
    if first is None or first.dim() == 0:
        return
    if "dtype" in text and not first.is_floating_point():
        hint = (
            f"pyattrib: inputs are {first.dtype}, and the model computes in floats; pass x.float(), or, for token "
            "ids, attribute at the embedding's output (a layer method on the embedding layer)"
        )
    elif any(word in text for word in ("shape", "size", "channel", "dimension", "dim ")):
        hint = ""
    else:
        return
    shapes = ", ".join(str(tuple(x.shape)) for x in xs if isinstance(x, torch.Tensor))
    hint = hint or (
        f"pyattrib: inputs have shape {shapes}; dimension 0 is read as the batch ({first.shape[0]} examples of "
        f"shape {tuple(first.shape[1:])}). If this is one example without a batch dimension, pass x.unsqueeze(0)."
    )
    # the user's own error, same type and traceback, with the fix in its message (str() and the
    # last line of the traceback show it), and as a note for tools that read notes
    if error.args and isinstance(error.args[0], str):
        error.args = (f"{error.args[0]}\n{hint}", *error.args[1:])
    else:
        error.add_note(hint)
    error._pyattrib_hinted = True  # type: ignore[attr-defined]


def bind_baselines(args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Fold the optional positional ``baselines`` into keyword arguments."""
    if len(args) > 1:
        raise TypeError("attributors take (inputs, baselines=None, *, ...); pass other arguments by keyword")
    if args:
        if "baselines" in kwargs:
            raise TypeError("baselines given both positionally and by keyword")
        kwargs = {**kwargs, "baselines": args[0]}
    return kwargs


def call_on_copies(
    attributor: Callable[..., Any],
    copies: tuple[Tensor, ...],
    was_tuple: bool,
    kwargs: dict[str, Any],
    n: int,
    times: int,
    per_copy: dict[str, Any] | None = None,
) -> tuple[list[Tensor], LayerValue, Tensor | None]:
    """Call ``attributor`` on ``n * times`` rows, row ``i * times + s`` a copy of example ``i``.

    Per-example keyword arguments (an :class:`Attributor`'s ``per_example``; for any other
    callable, Captum's baselines, target and additional_forward_args) are repeated to follow
    their example; ``per_copy`` arguments already hold one entry per row. Returns the
    attributions as leaves shaped ``(n, times, *shape)``, their structure (a tensor, a tuple,
    or a layer's own pytree such as an LSTM's ``(out, (h, c))``, whose ``layout`` gives leaves
    back in it), and the deltas shaped ``(n, times)`` when the attributor returns them.
    """
    per_example = getattr(attributor, "per_example", PER_EXAMPLE)
    expanded = {k: repeat_examples(v, n, times) if k in per_example else v for k, v in kwargs.items()}
    expanded.update(per_copy or {})
    if torch.compiler.is_compiling():  # no checks run under compile, and dynamo cannot trace ContextVar.set
        out = attributor(restore(copies, was_tuple), **expanded)
    else:
        token = _NESTED.set(True)
        try:
            out = attributor(restore(copies, was_tuple), **expanded)
        finally:
            _NESTED.reset(token)
    delta = None
    if getattr(attributor, "returns_delta", False):
        out, delta = out
        delta = delta.reshape(n, times)
    value = LayerValue.of(out, n * times, "the attributor")
    return [a.reshape(n, times, *a.shape[1:]) for a in value.leaves], value, delta
