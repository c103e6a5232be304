"""Ranking: fusers over task predictions, offline ranking objectives, several recommendation lists,
and the Pareto frontier of fusion weights (``mtlrec frontier``)."""

from mtlrec.rank.fusion import FUSERS, Fuser, build_fuser, default_fuser, fusion_inputs, load_fusion
from mtlrec.rank.lists import FUSED, GroupedList, RankedList, grouped_lists, list_scores, ranked_lists

__all__ = [
    "FUSED",
    "FUSERS",
    "Fuser",
    "GroupedList",
    "RankedList",
    "build_fuser",
    "default_fuser",
    "fusion_inputs",
    "grouped_lists",
    "list_scores",
    "load_fusion",
    "ranked_lists",
]
