"""A model's shared part as the weighting methods take it (``weighting.base.SharedPart``): its
shared parameters, and the shared representation of each forward pass, captured by forward hooks
on the modules that ``sharing.py`` chose."""

from __future__ import annotations

import weakref
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from mtlrec.models.sharing import Key, Sharing, output_tensors

if TYPE_CHECKING:
    from mtlrec.models.base import MultiTaskModel


class ModelSharedPart:
    """A model's shared part for the weighting methods (``weighting.base.SharedPart``):
    ``parameters``, and ``representation``: the chosen module outputs of the latest forward pass
    run with gradients, captured by forward hooks (passes without gradients, e.g. evaluation or
    FAMO's recomputed losses, leave them alone)."""

    def __init__(self, model: MultiTaskModel, sharing: Sharing) -> None:
        by_name = dict(model.named_parameters())
        self.parameters = [by_name[n] for n in sharing.parameters]
        self.keys = sharing.representation
        self._model = weakref.ref(model)
        self._captured: dict[Key, Tensor] = {}
        self._calls: dict[str, int] = defaultdict(int)
        modules = dict(model.named_modules())
        wanted: dict[str, dict[int, list[tuple[int, Key]]]] = defaultdict(lambda: defaultdict(list))
        for key in self.keys:
            wanted[key[0]][key[1]].append((key[2], key))
        self._handles = [model.register_forward_pre_hook(lambda m, args: self._start(m))]  # a function: copied as is
        self._handles += [modules[name].register_forward_hook(self._capture(name, modules[name], calls))
                          for name, calls in wanted.items()]  # fmt: skip

    @property
    def representation(self) -> list[Tensor]:
        return [self._captured[key] for key in self.keys if key in self._captured]

    def remove(self) -> None:
        """Uninstall the hooks (``representation`` is then empty)."""
        for h in self._handles:
            h.remove()
        self._handles, self._captured = [], {}

    def __deepcopy__(self, memo: dict) -> None:
        return None  # a deep copy of the model builds its own (its captured tensors cannot be copied)

    def _start(self, model: nn.Module) -> None:
        if model is not self._model():  # a deep copy of the model carries the hooks along: not ours
            return
        self._calls.clear()
        if torch.is_grad_enabled():
            self._captured = {}

    def _capture(self, name: str, owner: nn.Module, wanted: dict[int, list[tuple[int, Key]]]):
        owner_ref = weakref.ref(owner)

        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if module is not owner_ref():
                return
            k, self._calls[name] = self._calls[name], self._calls[name] + 1
            if k in wanted and torch.is_grad_enabled():
                tensors = output_tensors(output)
                for i, key in wanted[k]:
                    if i < len(tensors):
                        self._captured[key] = tensors[i]

        return hook
