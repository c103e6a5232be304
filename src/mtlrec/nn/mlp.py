"""A plain multi-layer perceptron: Linear -> ReLU -> Dropout per hidden layer."""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn


class MLP(nn.Module):
    def __init__(self, in_dim: int, dims: Sequence[int], *, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for d in dims:
            layers += [nn.Linear(in_dim, d), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            in_dim = d
        self.net = nn.Sequential(*layers)
        self.out_dim = in_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
