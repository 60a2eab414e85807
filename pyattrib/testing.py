"""Axioms of attribution as reusable checks, plus hypothesis strategies for them.

Each ``check_*`` raises ``AssertionError`` with a message when the axiom fails and
returns the measured error otherwise, so it works in plain tests and in hypothesis
properties. The strategies need ``hypothesis`` (a test dependency), imported lazily.

Axioms (Sundararajan et al., 2017; Lundberg & Lee, 2017):

- completeness: ``sum_i phi_i(x) = f(x) - f(x')``;
- sensitivity: if ``x`` and ``x'`` differ in one feature and ``f(x) != f(x')``, that
  feature gets non-zero attribution;
- dummy: a feature ``f`` does not depend on gets zero attribution;
- linearity: ``phi[a f + b g] = a phi[f] + b phi[g]``;
- symmetry: two features ``f`` treats symmetrically, with equal values in ``x`` and
  ``x'``, get equal attributions;
- implementation invariance: two networks computing the same function get the same
  attributions.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor, nn

from ._core.attributor import Attributor

Transform = Callable[[Callable[..., Any]], Attributor]


def _total(attributions: Tensor | tuple[Tensor, ...]) -> Tensor:
    parts = attributions if isinstance(attributions, tuple) else (attributions,)
    return cast(Tensor, sum(a.reshape(a.shape[0], -1).sum(1) for a in parts))


def _selected(f: Callable[..., Tensor], x: Tensor, target: int | None) -> Tensor:
    out = f(x)
    return out.reshape(-1) if target is None else out[:, target]


def check_completeness(
    transform: Transform,
    f: Callable[..., Tensor],
    x: Tensor,
    baseline: Tensor,
    target: int | None = None,
    atol: float = 1e-4,
    rtol: float = 1e-3,
) -> float:
    """``|sum phi - (f(x) - f(x'))| <= atol + rtol * |f(x) - f(x')|`` for every example.

    Args:
        transform: The transform under test, called as ``transform(f)`` to build an attributor.
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        x: The inputs, ``(N, D)``.
        baseline: The baseline, shaped like ``x`` or one example.
        target: The output to explain (see :data:`pyattrib.TargetLike`).
        atol: Absolute tolerance of the comparison.
        rtol: Relative tolerance of the comparison.

    Returns:
        float: the largest deviation found; raises ``AssertionError`` beyond the tolerance.

    References:
        - Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
          https://arxiv.org/abs/1703.01365

    Example:
        >>> f = torch.nn.Linear(8, 1).double()
        >>> x64, base = torch.randn(4, 8, dtype=torch.float64), torch.zeros(1, 8, dtype=torch.float64)
        >>> pa.testing.check_completeness(pa.integrated_gradients, f, x64, base) < 1e-6
        True
    """
    with torch.no_grad():
        gap = _selected(f, x, target) - _selected(f, baseline, target)
    err = (_total(transform(f)(x, baseline, target=target)) - gap).abs()
    bound = atol + rtol * gap.abs()
    assert bool((err <= bound).all()), f"completeness violated: error {err.max().item():.3g} > {bound.min().item():.3g}"
    return float(err.max())


def check_sensitivity(
    transform: Transform,
    f: Callable[..., Tensor],
    x: Tensor,
    baseline: Tensor,
    feature: int,
    target: int | None = None,
    tol: float = 1e-6,
) -> float:
    """Inputs that differ from the baseline only at ``feature`` and change the output
    must give that feature non-zero attribution (checked where the output changed).

    Args:
        transform: The transform under test, called as ``transform(f)`` to build an attributor.
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        x: The inputs, ``(N, D)``.
        baseline: The baseline, shaped like ``x`` or one example.
        feature: The index of the feature checked.
        target: The output to explain (see :data:`pyattrib.TargetLike`).
        tol: Tolerance of the check.

    Returns:
        float: the largest deviation found; raises ``AssertionError`` beyond the tolerance.

    References:
        - Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
          https://arxiv.org/abs/1703.01365

    Example:
        >>> f = torch.nn.Linear(8, 1).double()
        >>> x64, base = torch.randn(4, 8, dtype=torch.float64), torch.zeros(1, 8, dtype=torch.float64)
        >>> pa.testing.check_sensitivity(pa.integrated_gradients, f, x64[:1], base, feature=0) >= 0
        True
    """
    x_one = baseline.clone()
    x_one[:, feature] = x[:, feature]
    with torch.no_grad():
        changed = (_selected(f, x_one, target) - _selected(f, baseline, target)).abs() > tol
    attr = transform(f)(x_one, baseline, target=target)[:, feature]
    assert bool((attr[changed].abs() > 0).all()), "sensitivity violated: output changed but attribution is 0"
    return float(attr[changed].abs().min()) if bool(changed.any()) else 0.0


def check_dummy(
    transform: Transform,
    f: Callable[..., Tensor],
    x: Tensor,
    baseline: Tensor,
    feature: int,
    target: int | None = None,
    atol: float = 1e-6,
) -> float:
    """A feature that ``f`` ignores gets zero attribution.

    Args:
        transform: The transform under test, called as ``transform(f)`` to build an attributor.
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        x: The inputs, ``(N, D)``.
        baseline: The baseline, shaped like ``x`` or one example.
        feature: The index of the feature checked.
        target: The output to explain (see :data:`pyattrib.TargetLike`).
        atol: Absolute tolerance of the comparison.

    Returns:
        float: the largest deviation found; raises ``AssertionError`` beyond the tolerance.

    References:
        - Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
          https://arxiv.org/abs/1703.01365

    Example:
        >>> f = lambda z: z[:, :1].sum(1, keepdim=True)
        >>> x64, base = torch.randn(4, 8, dtype=torch.float64), torch.zeros(1, 8, dtype=torch.float64)
        >>> pa.testing.check_dummy(pa.integrated_gradients, f, x64, base, feature=3)
        0.0
    """
    attr = transform(f)(x, baseline, target=target)[:, feature]
    err = float(attr.abs().max())
    assert err <= atol, f"dummy feature {feature} got attribution {err:.3g}"
    return err


def check_linearity(
    transform: Transform,
    f: Callable[..., Tensor],
    g: Callable[..., Tensor],
    a: float,
    b: float,
    x: Tensor,
    baseline: Tensor,
    atol: float = 1e-5,
) -> float:
    """``phi[a f + b g] = a phi[f] + b phi[g]`` for scalar-output ``f`` and ``g``.

    Args:
        transform: The transform under test, called as ``transform(f)`` to build an attributor.
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        g: A second scalar-output function.
        a: The weight of ``f``.
        b: The weight of ``g``.
        x: The inputs, ``(N, D)``.
        baseline: The baseline, shaped like ``x`` or one example.
        atol: Absolute tolerance of the comparison.

    Returns:
        float: the largest deviation found; raises ``AssertionError`` beyond the tolerance.

    References:
        - Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
          https://arxiv.org/abs/1703.01365

    Example:
        >>> f = torch.nn.Linear(8, 1).double()
        >>> g = torch.nn.Linear(8, 1).double()
        >>> x64, base = torch.randn(4, 8, dtype=torch.float64), torch.zeros(1, 8, dtype=torch.float64)
        >>> pa.testing.check_linearity(pa.integrated_gradients, f, g, 2.0, -1.0, x64, base) < 1e-6
        True
    """

    def combo(z: Tensor) -> Tensor:
        return a * f(z) + b * g(z)

    lhs = transform(combo)(x, baseline)
    rhs = a * transform(f)(x, baseline) + b * transform(g)(x, baseline)
    err = float((lhs - rhs).abs().max())
    assert err <= atol * (1 + float(rhs.abs().max())), f"linearity violated by {err:.3g}"
    return err


def check_symmetry(
    transform: Transform,
    f: Callable[..., Tensor],
    x: Tensor,
    baseline: Tensor,
    i: int,
    j: int,
    target: int | None = None,
    atol: float = 1e-5,
) -> float:
    """If ``f`` is symmetric in features ``i`` and ``j`` and ``x_i = x_j``, ``x'_i = x'_j``,
    then ``phi_i = phi_j``.

    Args:
        transform: The transform under test, called as ``transform(f)`` to build an attributor.
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        x: The inputs, ``(N, D)``.
        baseline: The baseline, shaped like ``x`` or one example.
        i: A feature index.
        j: Another feature index, symmetric to ``i`` in ``f``.
        target: The output to explain (see :data:`pyattrib.TargetLike`).
        atol: Absolute tolerance of the comparison.

    Returns:
        float: the largest deviation found; raises ``AssertionError`` beyond the tolerance.

    References:
        - Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
          https://arxiv.org/abs/1703.01365

    Example:
        >>> w, v = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
        >>> f = pa.testing.SymmetricMLP(w, v, 0, 1)
        >>> x64 = torch.randn(3, 4, dtype=torch.float64); x64[:, 1] = x64[:, 0]
        >>> base = torch.zeros(1, 4, dtype=torch.float64)
        >>> pa.testing.check_symmetry(pa.integrated_gradients, f, x64, base, 0, 1) < 1e-6
        True
    """
    x, baseline = x.clone(), baseline.clone()
    x[:, j] = x[:, i]
    baseline[:, j] = baseline[:, i]
    attr = transform(f)(x, baseline, target=target)
    err = float((attr[:, i] - attr[:, j]).abs().max())
    assert err <= atol * (1 + float(attr.abs().max())), f"symmetry violated by {err:.3g}"
    return err


def check_implementation_invariance(
    transform: Transform,
    f: Callable[..., Tensor],
    g: Callable[..., Tensor],
    x: Tensor,
    baseline: Tensor,
    target: int | None = None,
    atol: float = 1e-5,
) -> float:
    """Two functionally equal models get equal attributions.

    Args:
        transform: The transform under test, called as ``transform(f)`` to build an attributor.
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        g: A function equal to ``f`` with another implementation.
        x: The inputs, ``(N, D)``.
        baseline: The baseline, shaped like ``x`` or one example.
        target: The output to explain (see :data:`pyattrib.TargetLike`).
        atol: Absolute tolerance of the comparison.

    Returns:
        float: the largest deviation found; raises ``AssertionError`` beyond the tolerance.

    References:
        - Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
          https://arxiv.org/abs/1703.01365

    Example:
        >>> mlp = torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1)).double()
        >>> x64, base = torch.randn(4, 8, dtype=torch.float64), torch.zeros(1, 8, dtype=torch.float64)
        >>> other = pa.testing.reparametrised(mlp)
        >>> pa.testing.check_implementation_invariance(pa.integrated_gradients, mlp, other, x64, base) < 1e-6
        True
    """
    with torch.no_grad():
        assert torch.allclose(f(x), g(x), atol=1e-6), "the two models do not compute the same function"
    a, b = transform(f)(x, baseline, target=target), transform(g)(x, baseline, target=target)
    err = float((a - b).abs().max())
    assert err <= atol * (1 + float(a.abs().max())), f"implementation invariance violated by {err:.3g}"
    return err


class SymmetricMLP(nn.Module):
    """``h(x) = v · tanh(W x)`` with the columns of ``W`` for features ``i`` and ``j`` tied,
    so ``h`` is symmetric in those two features.

    Args:
        weight: ``W``, shape ``(H, D)``.
        v: ``v``, shape ``(H,)``.
        i: A feature index.
        j: The feature tied to ``i``.

    Example:
        >>> f = pa.testing.SymmetricMLP(torch.randn(6, 4), torch.randn(6), 0, 1)
        >>> z = torch.randn(2, 4)
        >>> torch.allclose(f(z), f(z[:, [1, 0, 2, 3]]))
        True
    """

    def __init__(self, weight: Tensor, v: Tensor, i: int, j: int) -> None:
        super().__init__()
        weight = weight.clone()
        weight[:, j] = weight[:, i]
        self.weight, self.v = nn.Parameter(weight), nn.Parameter(v)

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x @ self.weight.T) @ self.v


def reparametrised(model: nn.Sequential) -> nn.Sequential:
    """The same function with the hidden units of each layer permuted: a different
    implementation for implementation-invariance checks (Linear/activation stacks).

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.

    Returns:
        nn.Sequential: the same function with permuted hidden units.

    Example:
        >>> mlp = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1))
        >>> z = torch.randn(3, 4)
        >>> torch.allclose(mlp(z), pa.testing.reparametrised(mlp)(z), atol=1e-6)
        True
    """
    layers: list[Any] = list(model)
    linears = [i for i, m in enumerate(layers) if isinstance(m, nn.Linear)]
    new: Any = nn.Sequential(*[_copy(m) for m in layers])
    for a, b in zip(linears[:-1], linears[1:]):
        perm = torch.randperm(layers[a].out_features)
        with torch.no_grad():
            new[a].weight.copy_(new[a].weight[perm])
            new[a].bias.copy_(new[a].bias[perm])
            new[b].weight.copy_(new[b].weight[:, perm])
    return new.eval()


def _copy(m: nn.Module) -> nn.Module:
    return copy.deepcopy(m)


# -- hypothesis strategies ---------------------------------------------------------


def mlps(
    d_in: int = 4,
    d_out: int = 1,
    max_hidden: int = 6,
    activations: tuple[type[nn.Module], ...] = (nn.Tanh, nn.Sigmoid, nn.Softplus),
) -> Any:
    """Random small ``Linear -> act -> Linear`` stacks in float64, eval mode.

    Args:
        d_in: Input features.
        d_out: Outputs.
        max_hidden: The most hidden units.
        activations: The activations drawn from.

    Returns:
        A hypothesis strategy of models.

    Example:
        >>> from hypothesis import given, settings
        >>> @settings(max_examples=5, deadline=None)
        ... @given(pa.testing.mlps(d_in=3), pa.testing.batches(3))
        ... def test_completeness(f, x):
        ...     pa.testing.check_completeness(pa.integrated_gradients, f, x, torch.zeros_like(x))
        >>> test_completeness()
    """
    from hypothesis import strategies as st

    @st.composite
    def build(draw: Any) -> nn.Module:
        hidden = draw(st.integers(1, max_hidden))
        act = draw(st.sampled_from(activations))
        seed = draw(st.integers(0, 2**16))
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(d_in, hidden), act(), nn.Linear(hidden, d_out)).double().eval()

    return build()


def batches(n_features: int, max_batch: int = 4, scale: float = 2.0) -> Any:
    """Random float64 batches of shape ``(N, n_features)`` with bounded entries.

    Args:
        n_features: Features per example.
        max_batch: The largest batch.
        scale: Values lie in ``[-scale, scale]``.

    Returns:
        A hypothesis strategy of float64 ``(N, n_features)`` tensors.

    Example:
        >>> from hypothesis import given, settings
        >>> @settings(max_examples=5, deadline=None)
        ... @given(pa.testing.batches(4, max_batch=3))
        ... def test_shape(x):
        ...     assert x.dtype == torch.float64 and x.shape[1] == 4 and 1 <= x.shape[0] <= 3
        >>> test_shape()
    """
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    @st.composite
    def build(draw: Any) -> Tensor:
        n = draw(st.integers(1, max_batch))
        arr = draw(arrays("float64", (n, n_features), elements=st.floats(-scale, scale, allow_nan=False, width=64)))
        return torch.from_numpy(arr.copy())

    return build()
