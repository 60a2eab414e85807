"""Metrics that evaluate explanations, each a transform returning a callable.

- :func:`infidelity` and :func:`sensitivity_max` (Yeh et al., 2019), Captum's two metrics;
- :func:`deletion` / :func:`insertion` curves and their AUC (pixel flipping);
- :func:`road` (remove and debias, Rong et al., 2022);
- :func:`mprt`, the model-randomisation sanity check (Adebayo et al., 2018);
- complexity (Quantus's category): :func:`sparseness`, :func:`complexity`,
  :func:`effective_complexity`;
- faithfulness (Quantus's category): :func:`pixel_flipping`, :func:`region_perturbation`,
  :func:`selectivity`, :func:`faithfulness_estimate`, :func:`monotonicity`,
  :func:`faithfulness_correlation`, :func:`sensitivity_n`, :func:`monotonicity_correlation`,
  :func:`irof`, :func:`sufficiency`;
- robustness: :func:`avg_sensitivity`, :func:`local_lipschitz_estimate`, :func:`continuity`,
  :func:`relative_stability` (input, output, representation), :func:`consistency` (and
  :func:`sensitivity_max`);
- axiomatic: :func:`completeness`, :func:`non_sensitivity`, :func:`input_invariance`;
  randomisation: :func:`mprt`, :func:`smooth_mprt`, :func:`efficient_mprt`, :func:`random_logit`;
- localisation against a mask: :func:`pointing_game`, :func:`attribution_localisation`,
  :func:`top_k_intersection`, :func:`relevance_mass_accuracy`, :func:`relevance_rank_accuracy`,
  :func:`auc`, :func:`focus` (on :func:`mosaics`).

:func:`evaluate` scores several methods with several metrics in one call (a table and,
with :func:`pyattrib.viz.evaluation`, a figure).

All are batched: perturbed copies of a batch run through the model (or the attributor) in
chunks of at most ``batch_size`` rows, on the inputs' device.
"""

from .axiomatic import completeness, input_invariance, non_sensitivity, random_logit, ssim
from .complexity import complexity, effective_complexity, sparseness
from .curves import Curve, deletion, insertion
from .evaluate import Evaluation, evaluate
from .faithfulness import faithfulness_estimate, monotonicity, pixel_flipping, region_perturbation, selectivity
from .faithfulness_sampled import (
    faithfulness_correlation,
    irof,
    monotonicity_correlation,
    sensitivity_n,
    sufficiency,
)
from .infidelity import infidelity, perturbations_from
from .localisation import (
    attribution_localisation,
    auc,
    focus,
    mosaics,
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    top_k_intersection,
)
from .randomisation import Randomisation, discrete_entropy, efficient_mprt, mprt, smooth_mprt, spearman
from .road import impute, road
from .robustness import (
    avg_sensitivity,
    consistency,
    continuity,
    local_lipschitz_estimate,
    max_sensitivity,
    relative_input_stability,
    relative_output_stability,
    relative_representation_stability,
    relative_stability,
)
from .sensitivity import sensitivity_max

__all__ = [
    "infidelity", "perturbations_from", "sensitivity_max", "deletion", "insertion", "Curve", "road", "impute",
    "mprt", "Randomisation", "spearman", "sparseness", "complexity", "effective_complexity", "pointing_game",
    "attribution_localisation", "top_k_intersection", "relevance_mass_accuracy", "relevance_rank_accuracy", "auc",
    "pixel_flipping", "region_perturbation", "selectivity", "faithfulness_estimate", "monotonicity",
    "faithfulness_correlation", "sensitivity_n", "monotonicity_correlation", "irof", "sufficiency",
    "avg_sensitivity", "local_lipschitz_estimate", "continuity", "relative_stability", "consistency",
    "relative_input_stability", "relative_output_stability", "relative_representation_stability", "max_sensitivity",
    "completeness", "non_sensitivity", "input_invariance", "random_logit", "ssim", "evaluate", "Evaluation",
    "smooth_mprt", "efficient_mprt", "discrete_entropy", "focus", "mosaics",
]  # fmt: skip
