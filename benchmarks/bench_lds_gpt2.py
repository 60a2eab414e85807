"""The linear datamodeling score (issue 36) on a tiny GPT-2 trained on generated text.

Text: 160 training and 40 test sequences of 16 tokens from a fixed random second-order Markov
chain over 24 tokens (each token drawn from a sparse distribution given the two before it).
Model: a Hugging Face GPT-2 (2 layers, width 32, 2 heads), trained from recorded seeds with
Adam on 24 random halves of the training set; the measured output is each test sequence's
summed next-token loss. Methods score the model trained on all the data; LDS is the Spearman
correlation, per test sequence, between the summed scores of a subset and the loss of the model
trained on it, averaged. EK-FAC runs in pyattrib and, at the same settings (Conv1D projections
as Linear layers, the empirical Fisher, heuristic damping), in kronfluence 1.0.1. TRAK projects
the gradients of every next token's margin, summed, and weighs by ``1 - p`` averaged over the
positions (``pa.influence.sequence_margin`` / ``sequence_residual``); its scores raise the margin,
so they are not negated. TRAK uses every parameter; the others the transformer blocks' layers.

``python benchmarks/bench_lds_gpt2.py``
"""

from __future__ import annotations

import copy
import logging
import tempfile
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset
from transformers import GPT2Config, GPT2LMHeadModel

import pyattrib as pa

warnings.filterwarnings("ignore")
logging.getLogger("kronfluence").setLevel(logging.ERROR)
torch.set_num_threads(2)
VOCAB, LENGTH, N_TRAIN, N_TEST, N_MODELS, STEPS = 24, 16, 160, 40, 24, 120


def text() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    table = torch.rand(VOCAB, VOCAB, VOCAB, generator=g) ** 8  # sparse next-token distributions
    seqs = torch.zeros(N_TRAIN + N_TEST, LENGTH, dtype=torch.long)
    seqs[:, :2] = torch.randint(0, VOCAB, (N_TRAIN + N_TEST, 2), generator=g)
    for t in range(2, LENGTH):
        seqs[:, t] = torch.multinomial(table[seqs[:, t - 2], seqs[:, t - 1]], 1, generator=g)[:, 0]
    return seqs[:N_TRAIN], seqs[N_TRAIN:]


def lm_loss(out, ids: torch.Tensor) -> torch.Tensor:
    """Each sequence's summed next-token loss."""
    logits = out.logits if hasattr(out, "logits") else out
    per_token = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1), reduction="none")
    return per_token.reshape(len(ids), -1).sum(1)


def make(generator: torch.Generator) -> nn.Module:
    config = GPT2Config(vocab_size=VOCAB, n_positions=LENGTH, n_embd=32, n_layer=2, n_head=2, resid_pdrop=0.0, bos_token_id=0,
                        eos_token_id=0,
                        embd_pdrop=0.0, attn_pdrop=0.0, attn_implementation="eager")  # fmt: skip
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.02 * torch.randn(p.shape, generator=generator) if p.dim() > 1 else torch.zeros_like(p))
    return model


def as_linear(model: nn.Module) -> nn.Module:
    from transformers.pytorch_utils import Conv1D

    for m in list(model.modules()):
        for name, child in list(m.named_children()):
            if isinstance(child, Conv1D):
                lin = nn.Linear(*child.weight.shape)
                lin.weight.data.copy_(child.weight.data.T)
                lin.bias.data.copy_(child.bias.data)
                setattr(m, name, lin)
    return model


class Kronfluence:
    """kronfluence's EK-FAC on the same model (its Conv1D projections as Linear layers)."""

    def __init__(self, model: nn.Module, train: TensorDataset) -> None:
        from kronfluence.analyzer import Analyzer, prepare_model
        from kronfluence.arguments import FactorArguments, ScoreArguments
        from kronfluence.task import Task

        linear = as_linear(copy.deepcopy(model))
        tracked = [n for n, m in linear.named_modules() if isinstance(m, nn.Linear) and n.startswith("transformer.h")]

        class Lm(Task):
            def compute_train_loss(self, batch, model, sample=False):
                return lm_loss(model(batch[0]), batch[0]).sum()

            def compute_measurement(self, batch, model):
                return self.compute_train_loss(batch, model)

            def get_influence_tracked_modules(self):
                return tracked

        self.train, self.args = train, ScoreArguments(damping_factor=None)
        self.an = Analyzer("lds", prepare_model(linear, Lm()), Lm(), output_dir=tempfile.mkdtemp(), disable_tqdm=True,
                           disable_model_save=True)  # fmt: skip
        self.an.fit_all_factors("f", train, factor_args=FactorArguments(use_empirical_fisher=True),
                                per_device_batch_size=32, overwrite_output_dir=True)  # fmt: skip

    def influence(self, ids: torch.Tensor, _labels: torch.Tensor) -> torch.Tensor:
        self.an.compute_pairwise_scores("s", "f", query_dataset=TensorDataset(ids, ids), train_dataset=self.train,
                                        score_args=self.args, per_device_query_batch_size=len(ids),
                                        per_device_train_batch_size=32, overwrite_output_dir=True)  # fmt: skip
        return self.an.load_pairwise_scores("s")["all_modules"]


def main() -> None:
    train_ids, test_ids = text()

    def fit(indices: torch.Tensor, generator: torch.Generator) -> nn.Module:
        model = make(generator)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(STEPS):
            opt.zero_grad()
            lm_loss(model(train_ids[indices]), train_ids[indices]).mean().backward()
            opt.step()
        return model.eval()

    def test_loss(model: nn.Module) -> torch.Tensor:
        return lm_loss(model(test_ids), test_ids)

    t = time.perf_counter()
    masks = pa.influence.subsets(N_TRAIN, N_MODELS, 0.5, generator=torch.Generator().manual_seed(0))
    runs = pa.influence.train_on_subsets(fit, lambda m: test_loss(m).detach(), masks,
                                         generator=torch.Generator().manual_seed(1))  # fmt: skip
    trained = time.perf_counter() - t
    full, train = fit(torch.arange(N_TRAIN), torch.Generator().manual_seed(0)), TensorDataset(train_ids, train_ids)
    layers = ["transformer.h"]
    methods = {
        "TracInCP (final checkpoint)": lambda: pa.influence.tracin_cp(full, train, [full.state_dict()],
                                                                     loss_fn=lm_loss, layers=layers, batch_size=16),
        "ArnoldiInfluenceFunction (100 iters, 50 dims)": lambda: pa.influence.arnoldi_influence_function(
            full, train, loss_fn=lm_loss, layers=layers, arnoldi_dim=100, projection_dim=50, hessian_reg=1e-3,
            batch_size=16),
        "TRAK (1 model, k=512, next-token margins)": lambda: pa.influence.trak(
            full, train, [full.state_dict()], projection_dim=512, batch_size=16, generator=torch.Generator().manual_seed(0),
            output_fn=pa.influence.sequence_margin, residual_fn=pa.influence.sequence_residual),
        "TRAK (5 models on the full set, k=512)": lambda: pa.influence.trak(
            full, train, [fit(torch.arange(N_TRAIN), torch.Generator().manual_seed(s)).state_dict() for s in range(5)],
            projection_dim=512, batch_size=16, generator=torch.Generator().manual_seed(0),
            output_fn=pa.influence.sequence_margin, residual_fn=pa.influence.sequence_residual),
        "K-FAC (pyattrib, empirical Fisher, heuristic damping)": lambda: pa.influence.ekfac_influence(
            full, train, loss_fn=lm_loss, layers=layers, strategy="kfac", damping=None, fisher="empirical",
            batch_size=32).fit_factors(),
        "EK-FAC (pyattrib, empirical Fisher, heuristic damping)": lambda: pa.influence.ekfac_influence(
            full, train, loss_fn=lm_loss, layers=layers, damping=None, fisher="empirical", batch_size=32).fit_factors(),
        "EK-FAC (kronfluence, empirical Fisher, heuristic damping)": lambda: Kronfluence(full, train),
    }  # fmt: skip
    print(f"torch {torch.__version__}, 2 threads, CPU; tiny GPT-2 (2 layers, width 32) on generated text, "
          f"{N_TRAIN} train / {N_TEST} test sequences of {LENGTH} tokens, {N_MODELS} models on random halves "
          f"({trained:.1f} s to train them), test-loss outputs")  # fmt: skip
    for name, build in methods.items():
        t = time.perf_counter()
        sign = 1.0 if name.startswith("TRAK") else -1.0  # helpful examples lower the loss (TRAK: raise the margin)
        scores = sign * build().influence(test_ids, test_ids)
        spent = time.perf_counter() - t
        per_test = pa.influence.lds(scores, masks, runs.outputs)
        kept = per_test[~per_test.isnan()]
        print(f"  {name:58s} LDS {kept.mean():.3f} +- {kept.std() / len(kept) ** 0.5:.3f}   {spent:6.2f} s")


if __name__ == "__main__":
    main()
