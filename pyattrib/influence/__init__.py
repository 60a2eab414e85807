"""Training-data influence from per-sample gradients (``torch.func``)."""

from .similarity import SimilarityInfluence, cosine_similarity, euclidean_distance, similarity_influence
from .tracin import TracInCP, TracInCPFast, tracin_cp, tracin_cp_fast

__all__ = [
    "TracInCP", "TracInCPFast", "tracin_cp", "tracin_cp_fast", "SimilarityInfluence", "similarity_influence",
    "cosine_similarity", "euclidean_distance",
]  # fmt: skip
