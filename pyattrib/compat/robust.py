"""Captum's ``captum.robust`` classes over :mod:`pyattrib.robust`."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .. import robust


class Perturbation:
    """Captum's base of attacks: calling one is calling its ``perturb``.

    Example:
        >>> from pyattrib.compat import FGSM, Perturbation
        >>> isinstance(FGSM(model), Perturbation)
        True
    """

    perturb: Callable[..., Any]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.perturb(*args, **kwargs)


class _GradientAttack(Perturbation):
    """The constructor Captum's FGSM and PGD share."""

    def __init__(
        self,
        forward_func: Callable[..., Any],
        loss_func: Callable | None = None,
        lower_bound: float = -math.inf,
        upper_bound: float = math.inf,
    ) -> None:
        self.forward_func, self.loss_func = forward_func, loss_func
        self.lower_bound, self.upper_bound = lower_bound, upper_bound


class FGSM(_GradientAttack):
    """Captum's ``FGSM``: :func:`pyattrib.robust.fgsm`.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        loss_func: ``loss_func(outputs, target)``; default Captum's negative log-likelihood of
            probabilities.
        lower_bound: Smallest value an input element may take.
        upper_bound: Largest value an input element may take.

    Example:
        >>> from pyattrib.compat import FGSM
        >>> FGSM(model).perturb(x, epsilon=0.1, target=y).shape
        torch.Size([4, 8])
    """

    zero_thresh = robust.attacks.ZERO_GRADIENT

    def perturb(self, inputs: Any, epsilon: float, target: Any, additional_forward_args: Any = None,
                targeted: bool = False, mask: Any = None) -> Any:  # fmt: skip
        attack = robust.fgsm(
            self.forward_func, loss_fn=self.loss_func, lower_bound=self.lower_bound, upper_bound=self.upper_bound,
            targeted=targeted,
        )  # fmt: skip
        return attack(inputs, epsilon, target=target, additional_forward_args=additional_forward_args, mask=mask)


class PGD(_GradientAttack):
    """Captum's ``PGD``: :func:`pyattrib.robust.pgd` (its L2 random start draws one radius per
    example, where Captum's broadcasts the radii against the last input dimension).

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        loss_func: ``loss_func(outputs, target)``; default Captum's negative log-likelihood of
            probabilities.
        lower_bound: Smallest value an input element may take.
        upper_bound: Largest value an input element may take.

    Example:
        >>> from pyattrib.compat import PGD
        >>> PGD(model).perturb(x, radius=0.1, step_size=0.05, step_num=3, target=y).shape
        torch.Size([4, 8])
    """

    def perturb(self, inputs: Any, radius: float, step_size: float, step_num: int, target: Any,
                additional_forward_args: Any = None, targeted: bool = False, random_start: bool = False,
                norm: str = "Linf", mask: Any = None) -> Any:  # fmt: skip
        attack = robust.pgd(
            self.forward_func, loss_fn=self.loss_func, lower_bound=self.lower_bound, upper_bound=self.upper_bound,
            norm=norm, step_size=step_size, steps=step_num, random_start=random_start, targeted=targeted,
        )  # fmt: skip
        return attack(inputs, radius, target=target, additional_forward_args=additional_forward_args, mask=mask)


class AttackComparator(robust.AttackComparator):
    """Captum's ``AttackComparator``: ``perturbations_per_eval`` is the number of versions of
    the batch per forward (one by default).

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        metric: ``metric(model_out, **kwargs)``: what is compared.
        preproc_fn: Applied to the inputs before the model.

    Example:
        >>> from pyattrib.compat import AttackComparator
        >>> comparator = AttackComparator(model, metric=lambda out: out.softmax(1).max(1).values)
        >>> comparator.add_attack(lambda z: z * 0.5, name="halved")
        >>> sorted(comparator.evaluate(x))
        ['Original', 'halved']
    """

    def __init__(
        self, forward_func: Callable[..., Any], metric: Callable[..., Any], preproc_fn: Callable | None = None
    ):
        super().__init__(forward_func, metric, preproc_fn)

    def evaluate(  # type: ignore[override]
        self, inputs: Any, additional_forward_args: Any = None, perturbations_per_eval: int = 1, **kwargs: Any
    ) -> dict[str, Any]:
        return super().evaluate(inputs, additional_forward_args, batch_size=perturbations_per_eval, **kwargs)


class MinParamPerturbation:
    """Captum's ``MinParamPerturbation``: :func:`pyattrib.robust.min_param_perturbation` with
    the batch as one unit (``correct_fn`` judges the whole batch).

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        attack: The attack (e.g. an ``FGSM`` instance or any callable).
        arg_name: The attack's argument searched over.
        arg_min: The first value tried.
        arg_max: Values stay below this.
        arg_step: The step between values.
        mode: ``"linear"`` or ``"binary"`` search.
        num_attempts: Attacks tried per value.
        preproc_fn: Applied to the inputs before the model.
        apply_before_preproc: Attack before ``preproc_fn``.
        correct_fn: Says which examples are correct; default the arg-max is the target.

    Example:
        >>> from pyattrib.compat import FGSM, MinParamPerturbation
        >>> grid = dict(arg_name="epsilon", arg_min=0.0, arg_max=1.0, arg_step=0.25)
        >>> search = MinParamPerturbation(model, FGSM(model), **grid)
        >>> perturbed, eps = search.evaluate(x, target=y, attack_kwargs={"target": y})
        >>> perturbed.shape
        torch.Size([4, 8])
    """

    def __init__(self, forward_func: Callable[..., Any], attack: Callable[..., Any], arg_name: str,
                 arg_min: float, arg_max: float, arg_step: float, mode: str = "linear", num_attempts: int = 1,
                 preproc_fn: Callable | None = None, apply_before_preproc: bool = False,
                 correct_fn: Callable | None = None) -> None:  # fmt: skip
        self._search: dict[str, Any] = dict(
            model=forward_func, attack=attack, arg_name=arg_name, arg_min=arg_min, arg_max=arg_max,
            arg_step=arg_step, mode=mode.lower(), num_attempts=num_attempts, preproc_fn=preproc_fn,
            apply_before_preproc=apply_before_preproc, correct_fn=correct_fn, per_example=False,
        )  # fmt: skip
        robust.min_param_perturbation(**self._search)  # validates now, as Captum's constructor does

    def evaluate(self, inputs: Any, additional_forward_args: Any = None, target: Any = None,
                 perturbations_per_eval: int = 1, attack_kwargs: dict | None = None,
                 correct_fn_kwargs: dict | None = None) -> Any:  # fmt: skip
        search = robust.min_param_perturbation(**self._search, batch_size=perturbations_per_eval)
        return search(inputs, target=target, additional_forward_args=additional_forward_args,
                      attack_kwargs=attack_kwargs, correct_fn_kwargs=correct_fn_kwargs)  # fmt: skip
