"""ESMM, Entire Space Multi-task Model (Ma et al., SIGIR 2018).

A conversion (purchase) is only observed after a click, so a CVR model trained on clicked rows is
trained on a biased sample and sees few positives. ESMM trains on all impressions instead: the
click tower gives pCTR, the conversion tower pCVR = P(purchase | click), and their product
pCTCVR = P(click and purchase) is trained against the label click x purchase on every impression;
pCVR is never fitted on its own, it is learned through pCTCVR. The towers share the embeddings,
and click and click_and_purchase both go through the CTR tower: it is shared too (``shared_parameters``).

The funnel comes from the tasks' sample spaces (``purchase`` with ``where: click``), or from
``chain``. Outputs: the schema's tasks (``purchase`` is pCVR, evaluated on clicked rows) and the
joint ``click_and_purchase`` (pCTCVR, evaluated on all rows). Longer funnels (click -> cart ->
purchase, ESM2-style) multiply along the chain. Tasks outside the funnel get a tower each.
"""

from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from mtlrec.data.batches import TensorBatch
from mtlrec.models._chain import joint_tasks, logit_of, task_chain
from mtlrec.models.base import MODELS, MultiTaskModel
from mtlrec.nn import FeatureEmbedding, feature_interaction
from mtlrec.nn.dcn import Bottom
from mtlrec.spec import InputLayout, TaskSpec


@MODELS.register("esmm")
class ESMM(MultiTaskModel):
    description = "pCTCVR = pCTR x pCVR trained on all impressions, shared embeddings (Ma et al., SIGIR 2018)"

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
        conditional_loss: bool = False,
    ) -> None:
        super().__init__(layout, tasks)
        self.chain = task_chain(self.tasks, chain, "model.esmm")
        self.derived = joint_tasks(self.chain, self.tasks, "model.esmm")
        self.conditional_loss = conditional_loss
        self.embedding = FeatureEmbedding(layout, embedding_dim)
        self.interaction = feature_interaction(bottom, self.embedding.out_dim, cross_layers)
        dims = tuple(bottom_dims) + tuple(tower_dims)
        self.towers = nn.ModuleDict({t.name: self.tower(self.embedding.out_dim, t, dims, dropout) for t in self.tasks})

    def forward(self, batch: TensorBatch) -> dict[str, Tensor]:
        x = self.interaction(self.embedding(batch))  # [B, d]
        out = {t.name: self.logits(t, self.towers[t.name](x)) for t in self.tasks}
        log_p = F.logsigmoid(out[self.chain[0].name])  # log pCTR
        for task, joint in zip(self.chain[1:], self.derived):
            log_p = log_p + F.logsigmoid(out[task.name])  # log pCTR + log pCVR = log pCTCVR
            out[joint.spec.name] = logit_of(log_p)
        return out

    @property
    def loss_tasks(self) -> tuple[TaskSpec, ...]:
        if self.conditional_loss:  # also fit pCVR on clicked rows (not in the paper)
            return self.output_tasks
        conditional = {t.name for t in self.chain[1:]}
        return tuple(t for t in self.output_tasks if t.name not in conditional)
