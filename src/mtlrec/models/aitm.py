"""AITM, Adaptive Information Transfer Multi-task (Xi et al., KDD 2021).

Along an ordered funnel (click -> cart -> purchase) each task's tower predicts the end-to-end
probability of reaching its step (P(click), P(click and purchase), ...) on all impressions. The
AIT module passes information down the funnel: step t attends over its own encoding q_t and
what step t-1 transfers, p_{t-1} = g(z_{t-1}), and weighs them per impression. The behavioural
expectation calibrator adds calibration x mean(max(P_t - P_{t-1}, 0)) to step t's loss: reaching a
later step cannot be likelier than reaching an earlier one.

The funnel comes from the tasks' sample spaces (``purchase`` with ``where: click``) or ``chain``.
Outputs: the joint probabilities as derived outputs (``click_and_purchase``) and the schema's
tasks; a post-click task (``purchase``, P(purchase | click)) is the ratio P_t / P_{t-1}.
Tasks outside the funnel get a plain tower each on the shared embeddings.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlrec.data.batches import TensorBatch
from mtlrec.models._chain import joint_tasks, logit_of, task_chain
from mtlrec.models.base import MODELS, MultiTaskModel
from mtlrec.nn import MLP, FeatureEmbedding, feature_interaction
from mtlrec.nn.dcn import Bottom
from mtlrec.spec import InputLayout, TaskSpec


class AIT(nn.Module):
    """Attention over the transferred information p and the task's own q: [B, D] x [B, D] -> [B, D]."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, p: Tensor, q: Tensor) -> Tensor:
        u = torch.stack([p, q], 1)  # [B, 2, D]
        w = torch.softmax((self.query(u) * self.key(u)).sum(-1) * self.scale, dim=1)  # [B, 2]
        return (w.unsqueeze(-1) * self.value(u)).sum(1)


def calibration_penalty(joint_logits: Sequence[Tensor], mask: Tensor) -> list[Tensor]:
    """Per step t >= 1: mean over ``mask`` rows of max(P_t - P_{t-1}, 0), P_t = sigmoid(logit_t)
    the probability of reaching step t. Zero when the funnel is monotone. In float32 whatever the
    logits' dtype (a bfloat16 row count is off by one at 1001 rows, like the losses')."""
    m = mask.to(torch.float32)
    probs = [torch.sigmoid(x.float()) for x in joint_logits]
    return [(torch.relu(b - a) * m).sum() / m.sum().clamp_min(1.0) for a, b in zip(probs, probs[1:])]


@MODELS.register("aitm")
class AITM(MultiTaskModel):
    description = "attention-based transfer down the click -> purchase funnel, calibrated (Xi et al., KDD 2021)"

    def __init__(
        self,
        layout: InputLayout,
        tasks: Sequence[TaskSpec],
        *,
        embedding_dim: int = 16,
        tower_dims: tuple[int, ...] = (64,),
        dropout: float = 0.0,
        bottom: Bottom = "mlp",
        cross_layers: int = 2,
        bottom_dims: tuple[int, ...] = (256, 128),
        chain: tuple[str, ...] = (),
        calibration: float = 0.6,
        conditional_loss: bool = False,
    ) -> None:
        super().__init__(layout, tasks)
        if not bottom_dims:
            raise ValueError("aitm: bottom_dims needs at least one layer (the task encoders)")
        self.chain = task_chain(self.tasks, chain, "model.aitm")
        self.derived = joint_tasks(self.chain, self.tasks, "model.aitm")
        self.calibration = calibration
        self.conditional_loss = conditional_loss
        self.embedding = FeatureEmbedding(layout, embedding_dim)
        self.interaction = feature_interaction(bottom, self.embedding.out_dim, cross_layers)
        d, in_chain = self.embedding.out_dim, {t.name for t in self.chain}
        self.encoders = nn.ModuleDict({t.name: MLP(d, bottom_dims, dropout=dropout) for t in self.chain})
        D = bottom_dims[-1]
        self.transfer = nn.ModuleList(MLP(D, (D,)) for _ in self.chain[1:])  # g: z_{t-1} -> p_{t-1}
        self.ait = nn.ModuleList(AIT(D) for _ in self.chain[1:])
        self.towers = nn.ModuleDict({  # funnel tasks: on z_t; the others: a full MLP on the embeddings
            t.name: self.tower(D, t, tower_dims, dropout) if t.name in in_chain
            else self.tower(d, t, tuple(bottom_dims) + tuple(tower_dims), dropout)
            for t in self.tasks
        })  # fmt: skip

    def forward(self, batch: TensorBatch) -> dict[str, Tensor]:
        x = self.interaction(self.embedding(batch))  # [B, d]
        in_chain = {t.name for t in self.chain}
        out = {t.name: self.logits(t, self.towers[t.name](x)) for t in self.tasks if t.name not in in_chain}
        z = self.encoders[self.chain[0].name](x)  # [B, D]
        joint = [self.logits(self.chain[0], self.towers[self.chain[0].name](z))]  # logit P(reach step t)
        for i, task in enumerate(self.chain[1:]):
            z = self.ait[i](self.transfer[i](z), self.encoders[task.name](x))
            joint.append(self.logits(task, self.towers[task.name](z)))
        out[self.chain[0].name] = joint[0]
        for i, (task, derived) in enumerate(zip(self.chain[1:], self.derived), start=1):
            out[derived.spec.name] = joint[i]
            out[task.name] = logit_of(F.logsigmoid(joint[i]) - F.logsigmoid(joint[i - 1]))  # P_t / P_{t-1}
        return {t.name: out[t.name] for t in self.output_tasks}

    @property
    def loss_tasks(self) -> tuple[TaskSpec, ...]:
        if self.conditional_loss:  # also fit each P(step | previous step) on its own sample space
            return self.output_tasks
        conditional = {t.name for t in self.chain[1:]}
        return tuple(t for t in self.output_tasks if t.name not in conditional)

    def auxiliary_losses(self, out: dict[str, Tensor], batch: TensorBatch) -> dict[str, Tensor]:
        if self.calibration == 0:
            return {}
        joint = [out[self.chain[0].name]] + [out[d.spec.name] for d in self.derived]
        penalties = calibration_penalty(joint, batch.masks[self.chain[0].name])
        return {d.spec.name: self.calibration * p for d, p in zip(self.derived, penalties)}
