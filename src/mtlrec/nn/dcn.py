"""The feature-interaction bottom: what sits between the embedded features and a model's own
networks. ``mlp`` (the default) adds nothing, so the model's MLPs (bottom, experts, towers) learn
the interactions; ``dcn`` adds DCN-v2 cross layers (Wang et al., WWW 2021), which build explicit
feature crosses of growing degree, stacked in front of those MLPs."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

Bottom = Literal["mlp", "dcn"]
BOTTOMS: tuple[str, ...] = ("mlp", "dcn")


class CrossNetwork(nn.Module):
    """DCN-v2 cross layers: x_{l+1} = x_0 * (W_l x_l + b_l) + x_l, full-rank W_l. [B, d] -> [B, d]."""

    def __init__(self, dim: int, layers: int) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"cross network: layers must be >= 1, got {layers}")
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        self.out_dim = dim

    def forward(self, x0: Tensor) -> Tensor:
        x = x0
        for layer in self.layers:
            x = x0 * layer(x) + x
        return x


class _Identity(nn.Identity):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.out_dim = dim


def feature_interaction(bottom: str, dim: int, cross_layers: int) -> nn.Module:
    """The module applied to the [B, dim] embedded features (``model.bottom``); it keeps the width
    (``.out_dim == dim``). ``mlp`` has no parameters, so its models' weights are unchanged by it."""
    if bottom == "mlp":
        return _Identity(dim)
    if bottom == "dcn":
        return CrossNetwork(dim, cross_layers)
    raise ValueError(f"model.bottom: expected one of {', '.join(BOTTOMS)}, got '{bottom}'")
