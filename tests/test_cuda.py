"""Device tests: run on CUDA when a GPU is present, skip otherwise."""

import pytest
import torch
from captum.attr import IntegratedGradients

import pyattrib as pa

from . import models

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
def test_gradient_family_on_cuda_matches_cpu():
    model = models.cnn()
    x = torch.randn(4, 3, 8, 8)
    target = [0, 1, 2, 3]
    cpu = pa.integrated_gradients(model, n_steps=10)(x, target=target)
    gpu_model = models.cnn().cuda()
    gpu = pa.integrated_gradients(gpu_model, n_steps=10, batch_size=16)(x.cuda(), target=torch.tensor(target).cuda())
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-3)
    theirs = IntegratedGradients(gpu_model).attribute(x.cuda(), target=target, n_steps=10)
    torch.testing.assert_close(gpu, theirs, atol=1e-4, rtol=1e-3)
    g = torch.Generator(device="cuda").manual_seed(0)
    sg = pa.smoothgrad(pa.saliency(gpu_model), stdevs=0.1)(x.cuda(), target=1, generator=g)
    assert sg.device.type == "cuda"
    gs = pa.gradient_shap(gpu_model)(
        x.cuda(), torch.zeros(2, 3, 8, 8, device="cuda"), target=1, generator=torch.Generator().manual_seed(0)
    )
    assert gs.device.type == "cuda" and torch.isfinite(gs).all()
