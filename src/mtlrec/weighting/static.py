"""Fixed task weights: the lambdas from the schema (``static``, the default) or all ones (``equal``)."""

from __future__ import annotations

from torch import Tensor

from mtlrec.weighting.base import WEIGHTINGS, LossWeighting, SharedPart, weighted_sum


@WEIGHTINGS.register("static")
class Static(LossWeighting):
    description = "sum of lambda_t x loss_t with each task's fixed weight from the schema"

    def weights(self) -> dict[str, float]:
        return {t.name: t.weight for t in self.tasks}

    def backward(self, losses: dict[str, Tensor], shared: SharedPart) -> dict[str, float]:
        weights = self.weights()
        weighted_sum(losses, weights).backward()
        return weights


@WEIGHTINGS.register("equal")
class Equal(Static):
    description = "plain sum of the task losses (every weight 1)"

    def weights(self) -> dict[str, float]:
        return {name: 1.0 for name in self.names}
