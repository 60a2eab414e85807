"""torch.compile(fullgraph=True) of the gradient family: no graph breaks, no recompiles,
same numbers as eager. Kept small: compiling costs seconds on a 2-core CPU."""

import pytest
import torch
import torch._inductor.config as inductor_config
from torch._dynamo.utils import counters

import pyattrib as pa

from . import models


def compiled_run(attributor, *calls):
    torch._dynamo.reset()
    counters.clear()
    fn = torch.compile(attributor, fullgraph=True)
    outs = [fn(*args, **kw) for args, kw in calls]
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])
    assert not counters["recompiles"], dict(counters["recompiles"])
    return outs


@pytest.mark.compile
@pytest.mark.parametrize(
    "make",
    [
        lambda m: pa.integrated_gradients(m, n_steps=8, batch_size=16),
        lambda m: pa.saliency(m),
        lambda m: pa.smoothgrad(pa.saliency(m), n_samples=4, stdevs=0.3),
    ],
    ids=["integrated_gradients", "saliency", "smoothgrad_saliency"],
)
def test_compiled_matches_eager(make):
    model = models.mlp()
    attributor = make(model)
    x1, x2 = torch.randn(4, 6), torch.randn(4, 6)
    y1, y2 = torch.tensor([0, 1, 2, 1]), torch.tensor([2, 2, 0, 1])
    torch.manual_seed(0)
    # eager-equal random numbers from inductor, so smoothgrad can be compared exactly
    with inductor_config.patch(fallback_random=True):
        c1, c2 = compiled_run(attributor, ((x1,), {"target": y1}), ((x2,), {"target": y2}))
    torch.manual_seed(0)
    e1, e2 = attributor(x1, target=y1), attributor(x2, target=y2)
    torch.testing.assert_close(c1, e1, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(c2, e2, atol=1e-6, rtol=1e-5)


@pytest.mark.compile
@pytest.mark.parametrize(
    "make, references",
    [
        (lambda m: pa.layer_gradcam(m, m.conv2), False),
        (lambda m: pa.layer_integrated_gradients(m, m.conv1, n_steps=8), False),
        (lambda m: pa.gradient_shap(m, n_samples=4), True),
    ],
    ids=["layer_gradcam", "layer_integrated_gradients", "gradient_shap"],
)
def test_compiled_layer_and_sampled_methods_match_eager(make, references):
    """The rows of the compiled matrix benchmark: layer capture and distribution baselines
    compile into one graph, and give eager's numbers (eager-equal random numbers)."""
    model = models.cnn()
    attributor = make(model)
    extra = (torch.randn(3, 3, 8, 8),) if references else ()  # a distribution of 3 baselines
    x1, x2 = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    y1, y2 = torch.tensor([0, 1, 2, 3]), torch.tensor([3, 2, 1, 0])
    torch.manual_seed(0)
    with inductor_config.patch(fallback_random=True):
        c1, c2 = compiled_run(attributor, ((x1, *extra), {"target": y1}), ((x2, *extra), {"target": y2}))
    torch.manual_seed(0)
    e1, e2 = attributor(x1, *extra, target=y1), attributor(x2, *extra, target=y2)
    torch.testing.assert_close(c1, e1, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(c2, e2, atol=1e-5, rtol=1e-4)
