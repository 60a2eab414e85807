"""Perturbation family: Captum agreement, Shapley properties, masks, errors, batching."""

import pytest
import torch
from captum.attr import (
    FeatureAblation,
    FeaturePermutation,
    KernelShap,
    LayerFeatureAblation,
    LayerFeaturePermutation,
    Lime,
    NeuronFeatureAblation,
    Occlusion,
    ShapleyValues,
    ShapleyValueSampling,
)
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import pyattrib as pa
from pyattrib import testing as T
from pyattrib.shapley import orderings

from . import models
from .test_reference_layer import close

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _setups():
    g = torch.Generator().manual_seed(9)
    two = models.two_inputs()
    return {
        "mlp": dict(
            model=models.mlp(),
            x=torch.randn(5, 6, generator=g),
            b=torch.randn(5, 6, generator=g),
            target=[0, 1, 2, 1, 0],
            args=None,
            mask=torch.tensor([[0, 0, 1, 1, 2, 3]]),
        ),
        "mlp-scalar-baseline": dict(
            model=models.mlp(), x=torch.randn(5, 6, generator=g), b=0.5, target=2, args=None, mask=None
        ),
        "cnn": dict(
            model=models.cnn(),
            x=torch.randn(3, 3, 8, 8, generator=g),
            b=0.0,
            target=[3, 0, 1],
            args=None,
            mask=(torch.arange(64).reshape(1, 1, 8, 8) // 16).expand(1, 3, 8, 8),
        ),
        "multi-input": dict(
            model=two,
            x=(torch.randn(4, 4, generator=g), torch.randn(4, 3, generator=g)),
            b=(0.2, torch.zeros(1, 3)),
            target=1,
            args=(torch.rand(4, generator=g) + 0.5, 0.1),
            mask=(torch.tensor([[0, 1, 2, 2]]), torch.tensor([[2, 3, 3]])),
        ),
        "grid-tuple-target": dict(
            model=models.grid(), x=torch.randn(4, 5, generator=g), b=0.0, target=(1, 2), args=None, mask=None
        ),
    }


SETUPS = _setups()


def kw(s, mask=True):
    out = {"target": s["target"], "additional_forward_args": s["args"]}
    if mask:
        out["feature_mask"] = s["mask"]
    return out


@pytest.mark.parametrize("name", list(SETUPS))
@pytest.mark.parametrize("batch_size", [None, 7])
def test_feature_ablation_matches_captum(name, batch_size):
    s = SETUPS[name]
    ours = pa.feature_ablation(s["model"], batch_size=batch_size)(s["x"], s["b"], **kw(s))
    theirs = FeatureAblation(s["model"]).attribute(s["x"], s["b"], perturbations_per_eval=3, **kw(s))
    close(ours, theirs)


def test_feature_ablation_without_target_keeps_output_dims():
    s = SETUPS["mlp"]
    ours = pa.feature_ablation(s["model"])(s["x"])
    theirs = FeatureAblation(s["model"]).attribute(s["x"])  # Captum flattens (N * C, ...)
    assert ours.shape == (5, 3, 6)
    close(ours, theirs.reshape(5, 3, 6))


def test_per_example_mask_and_groups_across_inputs():
    m = models.two_inputs()
    x = (torch.randn(3, 4), torch.randn(3, 3))
    masks = (torch.tensor([[0, 0, 1, 1], [1, 1, 0, 0], [0, 1, 0, 1]]), torch.tensor([[2, 2, 0]]))
    close(
        pa.feature_ablation(m)(x, target=0, feature_mask=masks),
        FeatureAblation(m).attribute(x, target=0, feature_mask=masks),
    )


def test_integer_and_boolean_inputs():
    class Counts(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 3)
            self.head = nn.Linear(3, 2)

        def forward(self, ids, flags):
            return self.head(self.emb(ids).mean(1) * flags.float().mean(1, keepdim=True))

    torch.manual_seed(0)
    m = Counts().eval()
    ids, flags = torch.randint(1, 10, (4, 5)), torch.rand(4, 2) > 0.3
    ours = pa.feature_ablation(m)((ids, flags), (0, False), target=1)
    theirs = FeatureAblation(m).attribute((ids, flags), (0, False), target=1)
    assert ours[0].shape == ids.shape and ours[1].shape == flags.shape
    close(ours, theirs)


@pytest.mark.parametrize("name", ["mlp", "multi-input", "cnn"])
def test_feature_permutation_with_fixed_permutation(name):
    s = SETUPS[name]
    n = (s["x"][0] if isinstance(s["x"], tuple) else s["x"]).shape[0]
    perm = torch.roll(torch.arange(n), 1)

    def perm_func(x, mask):
        return x[perm] * mask + x * ~mask

    close(
        pa.feature_permutation(s["model"], perm_func=perm_func, batch_size=5)(s["x"], **kw(s)),
        FeaturePermutation(s["model"], perm_func=perm_func).attribute(s["x"], **kw(s)),
    )


def test_layer_feature_permutation_by_hand():
    # permuting a group of hidden units across the batch, computed directly on the sequential model
    m = models.mlp()
    x = torch.randn(5, 6)
    perm = torch.roll(torch.arange(5), 1)
    lm = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3]])
    got = pa.layer_feature_permutation(m, m[2], perm_func=lambda v, mask: v[perm] * mask + v * ~mask)(
        x, target=1, feature_mask=lm
    )
    with torch.no_grad():
        h = m[:3](x)
        out = m[3:](h)[:, 1]
        expected = torch.zeros(5, 8)
        for g in range(4):
            sel = lm[0] == g
            hp = h.clone()
            hp[:, sel] = h[perm][:, sel]
            expected[:, sel] = (out - m[3:](hp)[:, 1])[:, None]
    torch.testing.assert_close(got, expected)
    # the default random permutation: reproducible from the generator, one value per unit group, and
    # each group's value is out - f(x with that group's units permuted across the batch) for some permutation
    layer = pa.layer_feature_permutation(m, m[2])
    rand = layer(x, target=1, feature_mask=lm, generator=torch.Generator().manual_seed(0))
    again = layer(x, target=1, feature_mask=lm, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(rand, again, rtol=0, atol=0)
    with pytest.raises(TypeError, match="takes no baselines"):  # not silently ignored
        layer(x, torch.zeros(5, 8), target=1, generator=torch.Generator().manual_seed(0))
    import itertools

    for g in range(4):
        sel = lm[0] == g
        assert torch.all(rand[:, sel] == rand[:, sel][:, :1])
        candidates = []
        for order in itertools.permutations(range(5)):
            hp = h.clone()
            hp[:, sel] = h[list(order)][:, sel]
            candidates.append((out - m[3:](hp)[:, 1]).detach())
        assert any(torch.allclose(rand[:, sel][:, 0], c, rtol=1e-5, atol=1e-6) for c in candidates), g


def test_layer_feature_permutation_matches_captum_with_a_fixed_permutation():
    # Captum's LayerFeaturePermutation takes no perm_func; a test subclass hands it ours
    import functools

    m, x = models.mlp(), torch.randn(5, 6)
    perm = torch.roll(torch.arange(5), 2)

    def perm_func(v, mask):
        return v[perm] * mask + v * ~mask

    class FixedPermutation(LayerFeaturePermutation):
        @property
        def attributor(self):
            return functools.partial(FeaturePermutation, perm_func=perm_func)

    # Captum 0.9 applies target twice here (any target fails), so the model picks the output
    def score(v):
        return m(v)[:, 1]

    for lm in [torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3]]), None]:
        close(
            pa.layer_feature_permutation(score, m[2], perm_func=perm_func)(x, feature_mask=lm),
            FixedPermutation(score, m[2]).attribute(x, layer_mask=lm),
        )


def test_feature_permutation_default_is_seeded():
    s = SETUPS["mlp"]
    fp = pa.feature_permutation(s["model"])
    a = fp(s["x"], target=1, generator=torch.Generator().manual_seed(0))
    b = fp(s["x"], target=1, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="at least 2 examples"):
        fp(s["x"][:1], target=1)


@pytest.mark.parametrize(
    "name, window, strides",
    [
        ("cnn", (3, 3, 3), (3, 2, 2)),
        ("cnn", (1, 4, 4), (1, 4, 4)),
        ("mlp", (2,), 1),
        ("multi-input", ((2,), (2,)), (1, 1)),
    ],
)
def test_occlusion_matches_captum(name, window, strides):
    s = SETUPS[name]
    ours = pa.occlusion(s["model"], sliding_window_shapes=window, strides=strides, batch_size=11)(
        s["x"], s["b"], **kw(s, mask=False)
    )
    theirs = Occlusion(s["model"]).attribute(
        s["x"], sliding_window_shapes=window, strides=strides, baselines=s["b"], **kw(s, mask=False)
    )
    close(ours, theirs)


@pytest.mark.parametrize("name", ["mlp", "multi-input", "mlp-scalar-baseline"])
def test_shapley_values_exact_matches_captum(name):
    s = SETUPS[name]
    mask = s["mask"] if s["mask"] is not None else torch.tensor([[0, 0, 1, 2, 3, 3]])
    args = {**kw(s), "feature_mask": mask}
    close(
        pa.shapley_values(s["model"], batch_size=13)(s["x"], s["b"], **args),
        ShapleyValues(s["model"]).attribute(s["x"], s["b"], **args),
    )


def test_shapley_value_sampling_converges_to_exact_and_to_captum():
    s = SETUPS["mlp"]
    exact = pa.shapley_values(s["model"])(s["x"], s["b"], **kw(s))
    errors = []
    for n in (4, 64, 1024):
        est = pa.shapley_value_sampling(s["model"], n_samples=n)(
            s["x"], s["b"], generator=torch.Generator().manual_seed(1), **kw(s)
        )
        errors.append(float((est - exact).abs().max()))
    assert errors[2] < errors[0] and errors[2] < 0.02 * float(exact.abs().max()) + 1e-3
    torch.manual_seed(0)
    theirs = ShapleyValueSampling(s["model"]).attribute(s["x"], s["b"], n_samples=1024, **kw(s))
    assert float((theirs - exact).abs().max()) < 0.05 * float(exact.abs().max()) + 1e-3


@given(
    model=T.mlps(d_in=5, d_out=2),
    x=T.batches(5),
    b=T.batches(5, max_batch=1),
    n=st.integers(1, 6),
    seed=st.integers(0, 999),
)
def test_shapley_sampling_efficiency_holds_for_every_sample(model, x, b, n, seed):
    base = b.expand_as(x)
    phi = pa.shapley_value_sampling(model, n_samples=n)(
        x, base, target=1, generator=torch.Generator().manual_seed(seed)
    )
    with torch.no_grad():
        gap = (model(x) - model(base))[:, 1]
    torch.testing.assert_close(phi.sum(1), gap, atol=1e-9, rtol=1e-9)


@given(model=T.mlps(d_in=4, d_out=1), x=T.batches(4), b=T.batches(4, max_batch=1))
def test_exact_shapley_efficiency_and_dummy(model, x, b):
    base = b.expand_as(x)
    phi = pa.shapley_values(model)(x, base, target=0)
    with torch.no_grad():
        gap = (model(x) - model(base))[:, 0]
    torch.testing.assert_close(phi.sum(1), gap, atol=1e-9, rtol=1e-9)

    def ignores_last(z):
        return model(torch.cat([z[:, :3], torch.zeros_like(z[:, 3:])], 1))

    assert float(pa.shapley_values(ignores_last)(x, base, target=0)[:, 3].abs().max()) < 1e-12


def test_shapley_sampling_evaluates_empty_and_full_coalitions_once():
    m, x = models.mlp(), torch.randn(3, 6)
    rows = []

    def counted(v):
        rows.append(len(v))
        return m(v)

    g = torch.Generator().manual_seed(1)
    a = pa.shapley_value_sampling(counted, n_samples=5)(x, target=0, generator=g)
    perms, _ = orderings(6, 5, "random", torch.Generator().manual_seed(1), "cpu")
    coalitions = {frozenset(p[:k].tolist()) for p in perms for k in range(1, 6)}
    assert sum(rows) == 3 * (2 + len(coalitions)) and len(coalitions) < 5 * (6 - 1)  # each distinct one once
    with torch.no_grad():  # the estimate, ordering by ordering
        v = lambda s: m(torch.where(torch.isin(torch.arange(6), torch.tensor(sorted(s), dtype=torch.long)), x, 0))[:, 0]  # noqa: E731
        want = torch.zeros(3, 6)
        for p in perms.tolist():
            for k in range(6):
                want[:, p[k]] += (v(p[: k + 1]) - v(p[:k])) / 5
    torch.testing.assert_close(a, want, atol=1e-5, rtol=1e-5)
    one = pa.shapley_value_sampling(m, n_samples=3)(x, 0.0, target=0, feature_mask=torch.zeros(1, 6, dtype=torch.long))
    torch.testing.assert_close(one[:, 0], m(x)[:, 0] - m(torch.zeros_like(x))[:, 0])  # one group: spread
    assert torch.isfinite(a).all()


def test_kernel_shap_is_exact_on_linear_models():
    torch.manual_seed(0)
    lin = nn.Linear(6, 3).eval()
    x, b = torch.randn(4, 6), torch.randn(4, 6)
    ks = pa.kernel_shap(lin, n_samples=30, batch_size=50)(x, b, target=1, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ks, (x - b) * lin.weight[1].detach(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ks, pa.shapley_values(lin)(x, b, target=1), atol=1e-4, rtol=1e-4)


def test_kernel_shap_and_lime_agree_with_captum_in_distribution():
    s = SETUPS["mlp"]
    exact = pa.shapley_values(s["model"])(s["x"], s["b"], **kw(s))
    ours = pa.kernel_shap(s["model"], n_samples=2000)(
        s["x"], s["b"], generator=torch.Generator().manual_seed(0), **kw(s)
    )
    torch.manual_seed(0)
    theirs = KernelShap(s["model"]).attribute(s["x"], s["b"], n_samples=2000, **kw(s))
    scale = float(exact.abs().max())
    assert float((ours - exact).abs().max()) < 0.05 * scale and float((theirs - exact).abs().max()) < 0.05 * scale
    ours = pa.lime(s["model"], n_samples=1000)(s["x"], s["b"], generator=torch.Generator().manual_seed(0), **kw(s))
    torch.manual_seed(0)
    theirs = Lime(s["model"]).attribute(s["x"], s["b"], n_samples=1000, **kw(s))
    assert float((ours - theirs).abs().max()) < 0.15 * float(theirs.abs().max())


def test_lime_options():
    s = SETUPS["mlp"]
    coef = pa.lime(s["model"], n_samples=300, interpretable_model="linear", return_input_shape=False)(
        s["x"], s["b"], generator=torch.Generator().manual_seed(0), **kw(s)
    )
    assert coef.shape == (5, 4)
    from sklearn.linear_model import Ridge

    shaped = pa.lime(s["model"], n_samples=300, interpretable_model=Ridge(alpha=1e-6))(
        s["x"], s["b"], generator=torch.Generator().manual_seed(0), **kw(s)
    )
    torch.testing.assert_close(shaped[:, [0, 2, 4, 5]], coef, atol=1e-3, rtol=1e-2)


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_results_do_not_depend_on_batch_size(batch_size):
    s = SETUPS["multi-input"]
    g = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    for make, extra in [
        (pa.feature_ablation, {}), (pa.shapley_values, {}),
        (lambda m, **k: pa.shapley_value_sampling(m, n_samples=3, **k), {"generator": True}),
        (lambda m, **k: pa.kernel_shap(m, n_samples=12, **k), {"generator": True}),
    ]:  # fmt: skip
        call = {**kw(s), **({"generator": g()} if extra else {})}
        ref = make(s["model"])(s["x"], s["b"], **call)
        call = {**kw(s), **({"generator": g()} if extra else {})}
        got = make(s["model"], batch_size=batch_size)(s["x"], s["b"], **call)
        close(got, ref)


def test_layer_and_neuron_feature_ablation_match_captum():
    m = models.mlp()
    x = torch.randn(5, 6)
    lm = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3]])
    close(
        pa.layer_feature_ablation(m, m[2])(x, 0.3, target=[0, 1, 2, 1, 0], feature_mask=lm),
        LayerFeatureAblation(m, m[2]).attribute(x, layer_baselines=0.3, target=[0, 1, 2, 1, 0], layer_mask=lm),
    )
    close(
        pa.layer_feature_ablation(m, m[2], attribute_to_layer_input=True)(x, target=1),
        LayerFeatureAblation(m, m[2]).attribute(x, target=1, attribute_to_layer_input=True),
    )
    close(
        pa.neuron_feature_ablation(m, m[2])(x, neuron_selector=3, feature_mask=torch.tensor([[0, 0, 1, 1, 2, 2]])),
        NeuronFeatureAblation(m, m[2]).attribute(x, neuron_selector=3, feature_mask=torch.tensor([[0, 0, 1, 1, 2, 2]])),
    )


def test_show_progress_does_not_change_results(capsys):
    s = SETUPS["mlp"]
    a = pa.feature_ablation(s["model"], batch_size=4, show_progress=True)(s["x"], **kw(s))
    torch.testing.assert_close(a, pa.feature_ablation(s["model"])(s["x"], **kw(s)))
    assert "Feature Ablation attribution: 100%" in capsys.readouterr().err  # Captum's label


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda m, x: pa.feature_ablation(m)(x, target=0, feature_mask=torch.zeros(1, 5, dtype=torch.long)),
            r"feature_mask has shape \(1, 5\)",
        ),
        (
            lambda m, x: pa.feature_ablation(m)(x, target=0, feature_mask=torch.full((1, 6), 0.5)),
            r"feature_mask must be an integer tensor",
        ),
        (
            lambda m, x: pa.feature_ablation(m)(x, target=0, feature_mask=(torch.zeros(1, 6, dtype=torch.long),) * 2),
            r"feature_mask has 2 tensors but inputs has 1",
        ),
        (
            lambda m, x: pa.occlusion(m, sliding_window_shapes=(7,))(x, target=0),
            r"sliding_window_shapes is \(7,\).*between 1 and",
        ),
        (lambda m, x: pa.occlusion(m, sliding_window_shapes=(2, 2))(x, target=0), r"give 1 window sizes"),
        (lambda m, x: pa.occlusion(m, sliding_window_shapes=(2,), strides=0)(x, target=0), r"strides is \(0,\)"),
        (
            lambda m, x: pa.shapley_values(m, max_features=4)(x, target=0),
            r"2\^6 model evaluations.*shapley_value_sampling",
        ),
        (lambda m, x: pa.kernel_shap(m, n_samples=2), r"n_samples must be an int >= 3"),
        (lambda m, x: pa.lime(m)(x), r"one output per example; pass target"),
    ],
)
def test_bad_input_messages(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call(models.mlp(), torch.randn(3, 6))


def test_stock_sequential_cnn_rows_are_fed_channels_last():
    s = SETUPS["cnn"]
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.LazyLinear(10)
    )
    model(s["x"])  # materialise the lazy layer (LazyLinear is not a stock layout-safe module: replace it)
    model[4] = torch.nn.Linear(model[4].in_features, 10)
    model.eval()
    seen = []
    handle = model[0].register_forward_pre_hook(
        lambda m, a: seen.append(a[0].is_contiguous(memory_format=torch.channels_last))
    )
    try:
        ours = pa.occlusion(model, sliding_window_shapes=(3, 3, 3), strides=(3, 2, 2), batch_size=11)(
            s["x"], s["b"], target=s["target"]
        )
    finally:
        handle.remove()
    assert seen and all(seen)
    assert not s["x"].is_contiguous(memory_format=torch.channels_last)  # the caller's tensor is as given
    theirs = Occlusion(model).attribute(s["x"], sliding_window_shapes=(3, 3, 3), strides=(3, 2, 2), target=s["target"])
    close(ours, theirs)


@pytest.mark.parametrize("view", [False, True])
def test_model_with_its_own_forward_gets_standard_rows_once_each(view):
    s = SETUPS["cnn"]
    model = models.LayoutRecorder(view=view).eval()
    fa = pa.feature_ablation(model, batch_size=5)
    ours = fa(s["x"], s["b"], target=s["target"], feature_mask=s["mask"])
    n_features = int(s["mask"].max()) + 1
    rows = n_features * len(s["x"])
    assert len(model.seen) == 1 + -(-rows // 5)  # the reference pass, then one call per chunk: never a retry
    assert not any(model.seen)
    close(ours, FeatureAblation(model).attribute(s["x"], s["b"], target=s["target"], feature_mask=s["mask"]))


def test_whole_batch_output_attributes_the_batch_as_a_whole():
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    x = torch.randn(5, 4)
    mask = torch.tensor([[0, 0, 1, 2]])
    total = lambda z: net(z).sum()  # noqa: E731  one loss for the whole batch
    attr = pa.feature_ablation(total)(x, feature_mask=mask)
    assert attr.shape == (1, 4)
    for g in range(3):  # remove group g from every example at once
        ablated = torch.where(mask == g, 0.0, x)
        expected = (total(x) - total(ablated)).detach()
        torch.testing.assert_close(attr[0][mask[0] == g], expected.expand(int((mask == g).sum())))
    # a vector per batch: one row per output value
    per_output = pa.feature_ablation(lambda z: net(z).sum(0))(x, feature_mask=mask)
    assert per_output.shape == (3, 4)
    torch.testing.assert_close(per_output.sum(0), attr[0])
    # Shapley sampling: efficiency holds for the batch as a whole
    phi = pa.shapley_value_sampling(total, n_samples=3)(
        x, feature_mask=mask, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(phi[0, [0, 2, 3]].sum(), (total(x) - total(torch.zeros_like(x))).detach())


def test_whole_batch_output_errors_and_integer_inputs_with_float_baselines():
    net = torch.nn.Linear(4, 1)
    x = torch.randn(3, 4)
    with pytest.raises(ValueError, match="target=None"):
        pa.feature_ablation(lambda z: net(z).sum())(x, target=0)
    with pytest.raises(ValueError, match="shared"):
        pa.feature_ablation(lambda z: net(z).sum())(x, feature_mask=torch.arange(12).reshape(3, 4))
    with pytest.raises(ValueError, match="batch_size"):
        pa.feature_ablation(lambda z: net(z).sum(), batch_size=6)(x)
    ids = torch.tensor([[1, 2], [3, 4]])
    attr = pa.feature_ablation(lambda z: z.sum(1))(ids, 0.5)  # 0.5 is kept, not truncated to 0
    torch.testing.assert_close(attr, ids - 0.5, check_dtype=False)
    # lower-rank and float-valued masks: a 0-d mask is one group for the whole input
    one = pa.feature_ablation(lambda z: z.sum(1))(x, feature_mask=torch.tensor(0.0))
    torch.testing.assert_close(one, x.sum(1, keepdim=True).expand_as(x))


def test_kept_outputs_do_not_pin_whole_model_outputs():
    """Perturbation methods keep one selected output per row across all evaluations; a view
    (a language model's ``logits[:, -1]``, a selected class) would keep every evaluation's
    whole output alive (Shapley sampling on GPT-2: 12 MB instead of 1 MB)."""
    from pyattrib._core.perturb import per_example_outputs
    from pyattrib._core.targets import as_target

    logits = torch.randn(4, 16, 60)
    for target in (0, None):
        kept = per_example_outputs(as_target(target, 4, logits.device), logits[:, -1], None)
        assert kept.untyped_storage().nbytes() == kept.numel() * kept.element_size()
