"""Reusable modules: the fused feature embedding, the MLP, the feature-interaction bottom (DCN-v2
cross layers) and the mixture-of-experts blocks (experts, gates, CGC level)."""

from mtlrec.nn.dcn import BOTTOMS, CrossNetwork, feature_interaction
from mtlrec.nn.embedding import FeatureEmbedding
from mtlrec.nn.experts import CGCLevel, Experts, Gate, TaskExperts, mix, mix_tasks, utilisation
from mtlrec.nn.mlp import MLP

__all__ = [
    "BOTTOMS", "CGCLevel", "CrossNetwork", "Experts", "FeatureEmbedding", "Gate", "MLP", "TaskExperts",
    "feature_interaction", "mix", "mix_tasks", "utilisation",
]  # fmt: skip
