"""Training-data influence from per-sample gradients (``torch.func``)."""

from .checkpoints import checkpoint_paths, load_flexible, loaded_states, read_checkpoint
from .ekfac import EKFACInfluence, ekfac_influence
from .functions import (
    ArnoldiInfluenceFunction,
    InfluenceFunction,
    NaiveInfluenceFunction,
    arnoldi_influence_function,
    naive_influence_function,
)
from .lds import Datamodels, lds, subsets, train_on_subsets
from .similarity import SimilarityInfluence, cosine_similarity, euclidean_distance, similarity_influence
from .tracin import TracInCP, tracin_cp
from .tracin_fast import TracInCPFast, TracInCPFastRandProj, tracin_cp_fast, tracin_cp_fast_rand_proj
from .trak import TRAK, margin, residual, sequence_margin, sequence_residual, trak

__all__ = [
    "TracInCP", "TracInCPFast", "TracInCPFastRandProj", "tracin_cp", "tracin_cp_fast", "tracin_cp_fast_rand_proj",
    "SimilarityInfluence", "similarity_influence",
    "cosine_similarity", "euclidean_distance",
    "InfluenceFunction", "NaiveInfluenceFunction", "ArnoldiInfluenceFunction", "naive_influence_function",
    "arnoldi_influence_function",
    "checkpoint_paths", "read_checkpoint", "load_flexible", "loaded_states",
    "EKFACInfluence", "ekfac_influence",
    "Datamodels", "lds", "subsets", "train_on_subsets",
    "TRAK", "trak", "margin", "residual", "sequence_margin", "sequence_residual",
]  # fmt: skip
