"""Captum's README toy model, attributed with pyattrib: same numbers, fewer lines
==============================================================================

Expected integrated gradients (target 0, zero baseline):
    [[-0.5922, -1.5497, -1.0067], [0.0, -0.2219, -5.1991]]  with ``|delta| < 1e-4``
"""

import torch
from torch import nn

import pyattrib as pa


class ToyModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin1 = nn.Linear(3, 3)
        self.relu = nn.ReLU()
        self.lin2 = nn.Linear(3, 2)
        # fixed weights and biases, as in Captum's README
        self.lin1.weight = nn.Parameter(torch.arange(-4.0, 5.0).view(3, 3))
        self.lin1.bias = nn.Parameter(torch.zeros(1, 3))
        self.lin2.weight = nn.Parameter(torch.arange(-3.0, 3.0).view(2, 3))
        self.lin2.bias = nn.Parameter(torch.ones(1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.relu(self.lin1(x)))


def main() -> torch.Tensor:
    model = ToyModel().eval()
    torch.manual_seed(123)
    inputs = torch.rand(2, 3)
    baselines = torch.zeros(2, 3)

    ig = pa.integrated_gradients(model, return_delta=True)
    attributions, delta = ig(inputs, baselines, target=0)
    print("IG attributions:", attributions)
    print("convergence delta:", delta)

    expected = torch.tensor([[-0.5922, -1.5497, -1.0067], [0.0, -0.2219, -5.1991]])
    assert torch.allclose(attributions, expected, atol=1e-4), attributions
    assert delta.abs().max() < 1e-4
    return attributions


if __name__ == "__main__":
    main()
