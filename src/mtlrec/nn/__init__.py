"""Reusable modules: the fused feature embedding and the MLP."""

from mtlrec.nn.embedding import FeatureEmbedding
from mtlrec.nn.mlp import MLP

__all__ = ["FeatureEmbedding", "MLP"]
