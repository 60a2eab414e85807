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


@pytest.mark.compile
@pytest.mark.parametrize("make", [pa.guided_backprop, pa.deconvolution], ids=["guided_backprop", "deconvolution"])
def test_rule_methods_without_handoff_compile_fullgraph(make):
    """Guided backprop and deconvolution override ReLU's backward through an autograd.Function
    that mutates nothing outside itself, so dynamo traces it into one graph."""
    model = models.relu_cnn()
    x1, x2 = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    y1, y2 = torch.tensor([0, 1, 2, 3]), torch.tensor([3, 2, 1, 0])
    c1, c2 = compiled_run(make(model), ((x1,), {"target": y1}), ((x2,), {"target": y2}))
    torch.testing.assert_close(c1, make(model)(x1, target=y1), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(c2, make(model)(x2, target=y2), atol=1e-6, rtol=1e-5)


@pytest.mark.compile
def test_compiled_lrp_runs_eagerly_and_gives_eager_numbers():
    """LRP swaps the modules' forward during a call, which traced module calls would not see
    (they gave the plain gradient times the output): compiled, it breaks the graph and runs
    eagerly, and fullgraph=True refuses it rather than give other numbers."""
    model = models.relu_cnn()
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    for make in (lambda: pa.lrp(model), lambda: pa.layer_lrp(model, model[3])):
        torch._dynamo.reset()
        torch.testing.assert_close(torch.compile(make())(x, target=y), make()(x, target=y))
    torch._dynamo.reset()
    with pytest.raises(torch._dynamo.exc.Unsupported, match="disable"):
        torch.compile(pa.lrp(model), fullgraph=True)(x, target=y)
