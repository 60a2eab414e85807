"""Agreement with Captum 0.9.0 for the layer and neuron methods."""

import pytest
import torch
from captum.attr import (
    InternalInfluence,
    LayerActivation,
    LayerAttribution,
    LayerConductance,
    LayerGradCam,
    LayerGradientShap,
    LayerGradientXActivation,
    LayerIntegratedGradients,
    NeuronConductance,
    NeuronGradient,
    NeuronGradientShap,
    NeuronIntegratedGradients,
)

import pyattrib as pa

from . import models

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def close(ours, theirs, atol=1e-5, rtol=1e-4):
    ours = ours if isinstance(ours, (tuple, list)) else (ours,)
    theirs = theirs if isinstance(theirs, (tuple, list)) else (theirs,)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape, (a.shape, b.shape)
        torch.testing.assert_close(a, b.detach().to(a.dtype), atol=atol, rtol=rtol)


def _setups():
    g = torch.Generator().manual_seed(3)
    mlp, cnn, two, tok = models.mlp(), models.cnn(), models.two_inputs(), models.token_model()
    ids = torch.randint(1, 20, (3, 7), generator=g)
    return {
        "mlp": dict(
            model=mlp,
            layer=mlp[2],
            x=torch.randn(5, 6, generator=g),
            b=torch.randn(5, 6, generator=g),
            target=[0, 1, 2, 1, 0],
            args=None,
        ),
        "cnn": dict(
            model=cnn, layer=cnn.conv2, x=torch.randn(3, 3, 8, 8, generator=g), b=0.1, target=[3, 0, 1], args=None
        ),
        "multi-input": dict(
            model=two,
            layer=two.mix,
            x=(torch.randn(4, 4, generator=g), torch.randn(4, 3, generator=g)),
            b=(0.2, torch.zeros(1, 3)),
            target=1,
            args=(torch.rand(4, generator=g) + 0.5, 0.1),
        ),
        "token-encoder": dict(
            model=models.FromEmbeddings(tok),
            layer=tok.encoder.layers[0],
            x=tok.embedding(ids).detach(),
            b=0.0,
            target=[2, 0, 1],
            args=(torch.ones(3, 7),),
        ),
    }


SETUPS = _setups()


@pytest.fixture(params=list(SETUPS))
def setup(request):
    return SETUPS[request.param]


def kw(s):
    return {"target": s["target"], "additional_forward_args": s["args"]}


@pytest.mark.parametrize("to_input", [False, True])
def test_layer_activation_and_gradient_x_activation(setup, to_input):
    m, layer, x = setup["model"], setup["layer"], setup["x"]
    close(
        pa.layer_activation(m, layer, attribute_to_layer_input=to_input)(x, additional_forward_args=setup["args"]),
        LayerActivation(m, layer).attribute(
            x, additional_forward_args=setup["args"], attribute_to_layer_input=to_input
        ),
    )
    for mul in (True, False):
        close(
            pa.layer_gradient_x_activation(m, layer, multiply_by_inputs=mul, attribute_to_layer_input=to_input)(
                x, **kw(setup)
            ),
            LayerGradientXActivation(m, layer, multiply_by_inputs=mul).attribute(
                x, attribute_to_layer_input=to_input, **kw(setup)
            ),
        )


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_middle"])
@pytest.mark.parametrize("batch_size", [None, 7])
def test_layer_integrated_gradients(setup, method, batch_size):
    m, layer, x, b = setup["model"], setup["layer"], setup["x"], setup["b"]
    ours, delta = pa.layer_integrated_gradients(
        m, layer, n_steps=12, method=method, batch_size=batch_size, return_delta=True
    )(x, b, **kw(setup))
    theirs, their_delta = LayerIntegratedGradients(m, layer).attribute(
        x, b, n_steps=12, method=method, internal_batch_size=batch_size, return_convergence_delta=True, **kw(setup)
    )
    close(ours, theirs)
    torch.testing.assert_close(delta, their_delta, atol=1e-4, rtol=1e-3)


def test_layer_integrated_gradients_to_layer_input_and_not_multiplied(setup):
    m, layer, x, b = setup["model"], setup["layer"], setup["x"], setup["b"]
    close(
        pa.layer_integrated_gradients(m, layer, n_steps=8, multiply_by_inputs=False, attribute_to_layer_input=True)(
            x, b, **kw(setup)
        ),
        LayerIntegratedGradients(m, layer, multiply_by_inputs=False).attribute(
            x, b, n_steps=8, attribute_to_layer_input=True, **kw(setup)
        ),
    )


@pytest.mark.parametrize("batch_size", [None, 8])
def test_layer_conductance(setup, batch_size):
    m, layer, x, b = setup["model"], setup["layer"], setup["x"], setup["b"]
    ours, delta = pa.layer_conductance(m, layer, n_steps=10, batch_size=batch_size, return_delta=True)(
        x, b, **kw(setup)
    )
    theirs, their_delta = LayerConductance(m, layer).attribute(
        x, b, n_steps=10, return_convergence_delta=True, **kw(setup)
    )
    close(ours, theirs)
    torch.testing.assert_close(delta, their_delta, atol=1e-4, rtol=1e-3)


def test_internal_influence(setup):
    m, layer, x, b = setup["model"], setup["layer"], setup["x"], setup["b"]
    for to_input in (False, True):
        close(
            pa.internal_influence(m, layer, n_steps=10, attribute_to_layer_input=to_input, batch_size=9)(
                x, b, **kw(setup)
            ),
            InternalInfluence(m, layer).attribute(x, b, n_steps=10, attribute_to_layer_input=to_input, **kw(setup)),
        )


def test_neuron_gradient_and_integrated_gradients(setup):
    m, layer, x, b = setup["model"], setup["layer"], setup["x"], setup["b"]
    out = LayerActivation(m, layer).attribute(x, additional_forward_args=setup["args"])
    selector = tuple([1] * (out.dim() - 1))
    args = setup["args"]
    close(
        pa.neuron_gradient(m, layer)(x, neuron_selector=selector, additional_forward_args=args),
        NeuronGradient(m, layer).attribute(x, selector, additional_forward_args=args),
    )
    close(
        pa.neuron_integrated_gradients(m, layer, n_steps=10, batch_size=5)(
            x, b, neuron_selector=selector, additional_forward_args=args
        ),
        NeuronIntegratedGradients(m, layer).attribute(
            x, selector, baselines=b, n_steps=10, additional_forward_args=args
        ),
    )
    pick = lambda value: value.reshape(value.shape[0], -1)[:, :3].sum(1)  # noqa: E731
    close(
        pa.neuron_gradient(m, layer, attribute_to_neuron_input=True)(
            x, neuron_selector=pick, additional_forward_args=args
        ),
        NeuronGradient(m, layer).attribute(x, pick, additional_forward_args=args, attribute_to_neuron_input=True),
    )


def test_neuron_conductance(setup):
    m, layer, x, b = setup["model"], setup["layer"], setup["x"], setup["b"]
    out = LayerActivation(m, layer).attribute(x, additional_forward_args=setup["args"])
    selector = (slice(0, 2),) + tuple([0] * (out.dim() - 2))
    ours = pa.neuron_conductance(m, layer, n_steps=8, method="gausslegendre", batch_size=6)(
        x, b, neuron_selector=selector, **kw(setup)
    )
    theirs = NeuronConductance(m, layer).attribute(
        x, selector, baselines=b, n_steps=8, method="gausslegendre", **kw(setup)
    )
    close(ours, theirs)
    # trapezoid default: Captum's weights are ours * (n-1)/n
    ours = pa.neuron_conductance(m, layer, n_steps=8)(x, b, neuron_selector=selector, **kw(setup))
    theirs = NeuronConductance(m, layer).attribute(x, selector, baselines=b, n_steps=8, **kw(setup))
    close(ours, tuple(t * 8 / 7 for t in theirs) if isinstance(theirs, tuple) else theirs * 8 / 7)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("summation", [False, True])
def test_layer_gradcam_and_interpolate(relu, summation):
    s = SETUPS["cnn"]
    ours = pa.layer_gradcam(s["model"], s["layer"], relu_attributions=relu, attr_dim_summation=summation)(
        s["x"], target=s["target"]
    )
    theirs = LayerGradCam(s["model"], s["layer"]).attribute(
        s["x"], target=s["target"], relu_attributions=relu, attr_dim_summation=summation
    )
    close(ours, theirs)
    for mode in ("nearest", "bilinear"):
        close(pa.interpolate(ours, (8, 8), mode), LayerAttribution.interpolate(theirs, (8, 8), mode))


def test_layer_and_neuron_gradient_shap_in_expectation():
    s = SETUPS["mlp"]
    m, layer, x = s["model"], s["layer"], s["x"]
    refs = torch.randn(6, 6, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    theirs = LayerGradientShap(m, layer).attribute(x, refs, n_samples=3000, stdevs=0.05, target=s["target"])
    ours, delta = pa.layer_gradient_shap(m, layer, n_samples=3000, stdevs=0.05, batch_size=4000, return_delta=True)(
        x, refs, target=s["target"], generator=torch.Generator().manual_seed(1)
    )
    assert (ours - theirs).abs().mean() / theirs.abs().mean() < 0.1
    assert delta.shape == (5,) and delta.abs().max() < 0.05
    theirs = NeuronGradientShap(m, layer).attribute(x, 2, refs, n_samples=3000, stdevs=0.05)
    ours = pa.neuron_gradient_shap(m, layer, n_samples=3000, stdevs=0.05)(
        x, refs, neuron_selector=2, generator=torch.Generator().manual_seed(1)
    )
    assert (ours - theirs).abs().mean() / theirs.abs().mean() < 0.1


def test_token_ids_through_the_embedding():
    m = models.token_model()
    ids = torch.randint(3, 20, (3, 7), generator=torch.Generator().manual_seed(0))
    ids[:, 0] = 1  # a CLS-like token kept in the reference
    ref = pa.token_reference(ids, reference_id=0, keep=[1])
    assert (ref[:, 0] == 1).all() and (ref[:, 1:] == 0).all()
    ours, delta = pa.layer_integrated_gradients(m, m.embedding, n_steps=16, return_delta=True)(
        ids, ref, target=[0, 1, 2]
    )
    theirs, their_delta = LayerIntegratedGradients(m, m.embedding).attribute(
        ids, ref, target=[0, 1, 2], n_steps=16, return_convergence_delta=True
    )
    close(ours, theirs)
    torch.testing.assert_close(delta, their_delta, atol=1e-4, rtol=1e-3)
    close(
        pa.layer_gradient_x_activation(m, m.embedding)(ids, target=1),
        LayerGradientXActivation(m, m.embedding).attribute(ids, target=1),
    )
    # a scalar reference id works as a baseline too
    close(
        pa.layer_integrated_gradients(m, m.embedding, n_steps=4)(ids, 0, target=1),
        LayerIntegratedGradients(m, m.embedding).attribute(ids, torch.zeros_like(ids), target=1, n_steps=4),
    )


def test_list_of_layers_spliced_together():
    m = models.two_inputs()
    x = (torch.randn(4, 4), torch.randn(4, 3))
    ours = pa.layer_integrated_gradients(m, [m.a, m.b], n_steps=10)(x, target=2)
    theirs = LayerIntegratedGradients(m, [m.a, m.b]).attribute(x, target=2, n_steps=10)
    assert isinstance(ours, list) and len(ours) == 2
    close(ours, theirs)
    acts = pa.layer_activation(m, [m.a, m.head])(x)
    close(acts, LayerActivation(m, [m.a, m.head]).attribute(x))
