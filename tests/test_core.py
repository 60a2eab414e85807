"""Unit tests of the mechanisms in ``pyattrib/_core`` on their own, not through a method:
capture/splice (nested, reused and tuple-valued modules), target selection forms, and the
chunk-size invariance of the gradient kernel's accumulation and of the perturbation engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pyattrib._core.call import prepare
from pyattrib._core.capture import Layers
from pyattrib._core.errors import ArgumentError
from pyattrib._core.kernel import accumulate
from pyattrib._core.perturb import evaluate
from pyattrib._core.targets import OutputRows, as_target

# ---- capture / splice ---------------------------------------------------------------------


class Nested(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.block = nn.Sequential(nn.Linear(4, 5), nn.Sequential(nn.Tanh(), nn.Linear(5, 3)))
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        return self.head(self.block(x) * scale)


def _hooked_value(model: nn.Module, layer: nn.Module, *args):
    seen = []
    handle = layer.register_forward_hook(lambda m, i, o: seen.append((i, o)))
    try:
        model(*args)
    finally:
        handle.remove()
    return seen[0]


def test_capture_reads_a_nested_layer_and_splice_replaces_it():
    model, x = Nested().eval(), torch.randn(6, 4)
    inner = model.block[1][1]
    layers = Layers(model, inner, to_input=False)
    (value,) = layers.capture((x,), (2.0,), 6)
    _, expected = _hooked_value(model, inner, x, 2.0)
    torch.testing.assert_close(value.leaves[0], expected, rtol=0, atol=0)
    run = layers.splice([value], (x,), (2.0,))
    torch.testing.assert_close(run(*value.leaves), model(x, 2.0), rtol=0, atol=0)
    replaced = torch.zeros_like(value.leaves[0])
    torch.testing.assert_close(run(replaced), model.head(replaced * 2.0), rtol=0, atol=1e-7)
    assert "forward" not in inner.__dict__ and not inner._forward_hooks  # the model is left as found


def test_capture_of_a_layer_input_and_of_several_layers():
    model, x = Nested().eval(), torch.randn(3, 4)
    tanh, head = model.block[1][0], model.head
    layers = Layers(model, [tanh, head], to_input=True)
    values = layers.capture((x,), (), 3)
    (tanh_in,), _ = _hooked_value(model, tanh, x)
    (head_in,), _ = _hooked_value(model, head, x)
    torch.testing.assert_close(values[0].leaves[0], tanh_in, rtol=0, atol=0)
    torch.testing.assert_close(values[1].leaves[0], head_in, rtol=0, atol=0)
    # splicing both: the later layer's replaced input decides the output alone
    run = layers.splice(values, (x,), ())
    torch.testing.assert_close(run(torch.zeros(3, 5), head_in), model(x), rtol=0, atol=1e-6)
    assert isinstance(layers.result(values, [v.leaves[0] for v in values]), list)


def test_a_layer_that_runs_twice_is_refused_by_name():
    relu = nn.ReLU()
    model = nn.Sequential(nn.Linear(4, 4), relu, nn.Linear(4, 4), relu)
    with pytest.raises(RuntimeError, match=r"layer '1' ran 2 times"):
        Layers(model, relu, to_input=False).capture((torch.randn(2, 4),), (), 2)
    assert "forward" not in relu.__dict__


def test_tuple_valued_layer_round_trips_through_its_leaves():
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4, batch_first=True)

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm, self.out = lstm, nn.Linear(4, 2)

        def forward(self, x):
            seq, (h, c) = self.lstm(x)
            return self.out(seq[:, -1] + h[0] + c[0])

    model, x = Model().eval(), torch.randn(2, 5, 3)
    layers = Layers(model, lstm, to_input=False)
    (value,) = layers.capture((x,), (), 2)
    assert [tuple(t.shape) for t in value.leaves] == [(2, 5, 4), (2, 1, 4), (2, 1, 4)]  # batch first, h and c too
    seq, (h, c) = lstm(x)
    restored = layers.result([value], value.leaves)
    torch.testing.assert_close(restored[0], seq, rtol=0, atol=0)
    torch.testing.assert_close(restored[1][0], h, rtol=0, atol=0)  # back in LSTM's own (1, N, H) layout
    run = layers.splice([value], (x,), ())
    torch.testing.assert_close(run(*value.leaves), model(x), rtol=0, atol=0)
    zero_c = [value.leaves[0], value.leaves[1], torch.zeros_like(value.leaves[2])]
    torch.testing.assert_close(run(*zero_c), model.out(seq[:, -1] + h[0]), rtol=0, atol=1e-6)


# ---- targets --------------------------------------------------------------------------------

OUT = torch.arange(24.0).reshape(4, 6)  # 4 examples, 6 outputs


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (2, [2.0, 8.0, 14.0, 20.0]),
        (torch.tensor(5), [5.0, 11.0, 17.0, 23.0]),
        (np.int64(1), [1.0, 7.0, 13.0, 19.0]),
        ([0, 1, 2, 3], [0.0, 7.0, 14.0, 21.0]),
        (torch.tensor([5, 4, 3, 2]), [5.0, 10.0, 15.0, 20.0]),
        (np.array([1, 1, 0, 0]), [1.0, 7.0, 12.0, 18.0]),
        (lambda out: out[:, 0] * 2, [0.0, 12.0, 24.0, 36.0]),
    ],
    ids=["int", "0-d tensor", "numpy int", "list", "1-d tensor", "numpy array", "callable"],
)
def test_target_forms_select_the_documented_values(target, expected):
    selected = as_target(target, 4, OUT.device).select(OUT)
    torch.testing.assert_close(selected, torch.tensor(expected), rtol=0, atol=0)


def test_tuple_targets_index_outputs_with_more_dimensions():
    out = torch.arange(24.0).reshape(2, 3, 4)
    torch.testing.assert_close(as_target((1, 2), 2, out.device).select(out), torch.tensor([6.0, 18.0]), rtol=0, atol=0)
    per_example = as_target([(0, 0), (2, 3)], 2, out.device).select(out)
    torch.testing.assert_close(per_example, torch.tensor([0.0, 23.0]), rtol=0, atol=0)
    rows = as_target(torch.tensor([[0, 1], [1, 2]]), 2, out.device).select(out)
    torch.testing.assert_close(rows, torch.tensor([1.0, 18.0]), rtol=0, atol=0)


def test_no_target_needs_one_value_per_example():
    torch.testing.assert_close(as_target(None, 3, OUT.device).select(torch.tensor([[1.0], [2.0], [3.0]])),
                               torch.tensor([1.0, 2.0, 3.0]), rtol=0, atol=0)  # fmt: skip
    with pytest.raises(ArgumentError):
        as_target(None, 4, OUT.device).select(OUT)


def test_selection_follows_a_row_index():
    # rows 0..5 of an expanded batch are examples [2, 0, 1, 2, 0, 1]: each row reads its own example's target
    index = torch.tensor([2, 0, 1, 2, 0, 1])
    out = torch.arange(36.0).reshape(6, 6)
    got = as_target([0, 1, 2, 3], 4, out.device).select(out, index)
    torch.testing.assert_close(got, torch.tensor([2.0, 6.0, 13.0, 20.0, 24.0, 31.0]), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("target", "error", "match"),
    [
        ([0, 1], ArgumentError, "2 entries but inputs have 4"),
        (torch.tensor([0.0, 1.0, 2.0, 3.0]), TypeError, "integer indices"),
        (True, TypeError, "bool"),
        ("cat", TypeError, "not supported"),
        (torch.tensor([[0, 1, 2]]), ArgumentError, "one index per example"),
    ],
)
def test_bad_targets_get_named_errors(target, error, match):
    with pytest.raises(error, match=match):
        as_target(target, 4, OUT.device)


def test_output_rows_is_a_target_per_output_row():
    target = as_target(OutputRows([0, 1, 2]), 1, OUT.device)
    assert target.by_row is not None and target.n == 1


# ---- chunk-size invariance: the kernel's accumulation and the perturbation engine -------------


@pytest.mark.parametrize("n_points", [1, 3, 7])
def test_accumulate_is_independent_of_the_chunk_size(n_points):
    n = 5
    weights = torch.arange(1.0, n_points + 1)  # point k weighs k + 1; example i contributes i + 1

    def contribution(chunk):
        return (weights[chunk.k] * (chunk.i + 1).double(),)

    expected = weights.sum() * torch.arange(1.0, n + 1)
    for batch_size in (None, 1, 2, 3, 5, 6, 11, 10_000):
        (acc,) = accumulate(contribution, n_points, n, batch_size, torch.device("cpu"))
        torch.testing.assert_close(acc, expected.double(), rtol=0, atol=0, msg=f"batch_size={batch_size}")


def test_accumulate_with_overlapping_points_sums_neighbour_differences_once():
    n, n_points = 3, 6
    values = torch.arange(n_points * n, dtype=torch.float64).reshape(n_points, n) ** 2  # f(point k, example i)

    def differences(chunk):  # rows of all but the chunk's last point: f(k + 1) - f(k)
        k, i = chunk.k, chunk.local
        keep = k < k.max()
        return ((values[k[keep] + 1, i[keep]] - values[k[keep], i[keep]]),)

    expected = values[-1] - values[0]
    for batch_size in (None, 2 * n, 3 * n, 4 * n):
        (acc,) = accumulate(differences, n_points, n, batch_size, torch.device("cpu"), overlap=1)
        torch.testing.assert_close(acc, expected, rtol=0, atol=0, msg=f"batch_size={batch_size}")


def test_the_perturbation_engine_is_independent_of_the_chunk_size_and_streams_the_same_rows():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3)).double().eval()
    x = torch.randn(5, 4, dtype=torch.float64)
    call = prepare(x, 1, None, method="engine test", differentiable=False)

    def build(p, i):  # perturbation p scales example i's features by (p + 1)
        return (x[i] * (p + 1).to(x.dtype)[:, None],)

    expected = torch.stack([model(x * (p + 1))[:, 1] for p in range(7)])[:, :, None]
    for batch_size in (None, 1, 3, 5, 12, 35):
        out = evaluate(model, call, build, 7, batch_size)
        torch.testing.assert_close(out.values, expected, rtol=1e-12, atol=1e-12, msg=f"batch_size={batch_size}")
        streamed = []
        evaluate(
            model, call, build, 7, batch_size, reduce=lambda first, n, run, into=streamed: into.append((first, run))
        )
        rows = torch.cat([run for _, run in streamed])
        assert streamed[0][0] == 0 and out.values is not None
        torch.testing.assert_close(rows.reshape(7, 5, 1), expected, rtol=1e-12, atol=1e-12)


# ---- reading model outputs: one rule, used by methods, the text readers and Insights -------------


def test_one_rule_reads_every_output_form():
    from collections import OrderedDict
    from types import SimpleNamespace

    from pyattrib._core.targets import model_output
    from pyattrib.text.forcing import logits_of

    logits = torch.randn(2, 3, 5)
    for form in (logits, {"logits": logits, "loss": 0}, (logits, None), [logits], SimpleNamespace(logits=logits)):
        assert model_output(form) is logits
        assert logits_of(form) is logits
    assert model_output(OrderedDict(hidden=logits)) is logits  # a mapping without logits: its first value
    with pytest.raises(ArgumentError, match="no logits"):
        logits_of(OrderedDict(hidden=logits))  # ... but a language model must say which are its logits
    with pytest.raises(TypeError, match="callable target"):
        model_output(SimpleNamespace(scores=logits))
    with pytest.raises(ArgumentError, match="no logits"):
        logits_of(SimpleNamespace(scores=logits))


def test_feature_mask_id_rules():
    """One FeatureMask for every family: ids renumbered (native), shifted to 0 (Captum's LIME and
    KernelSHAP) or kept as given (Captum's DataLoaderAttribution)."""
    from pyattrib._core.perturb import FeatureMask

    x = torch.zeros(2, 3)
    mask = torch.tensor([[3, 3, 5]])
    for rule, ids, n in (("compact", [0, 0, 1], 2), ("shift", [0, 0, 2], 3), ("given", [3, 3, 5], 6)):
        groups = FeatureMask(mask, (x,), ids_rule=rule)
        assert groups.ids[0].tolist() == [ids] and groups.n_features == n, rule
    assert FeatureMask(None, (x, torch.zeros(2, 2))).n_features == 5  # every element its own feature
