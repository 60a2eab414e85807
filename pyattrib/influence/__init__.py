"""Training-data influence from per-sample gradients (``torch.func``)."""

from .similarity import SimilarityInfluence, cosine_similarity, euclidean_distance, similarity_influence
from .tracin import (
    TracInCP,
    TracInCPFast,
    TracInCPFastRandProj,
    tracin_cp,
    tracin_cp_fast,
    tracin_cp_fast_rand_proj,
)

__all__ = [
    "TracInCP", "TracInCPFast", "TracInCPFastRandProj", "tracin_cp", "tracin_cp_fast", "tracin_cp_fast_rand_proj",
    "SimilarityInfluence", "similarity_influence",
    "cosine_similarity", "euclidean_distance",
]  # fmt: skip
