"""Check a config section of hyperparameters against a class's typed keyword-only arguments."""

from __future__ import annotations

import inspect
from typing import Any

import pydantic

from mtlrec.errors import ConfigError


def keyword_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword-only parameters of ``cls.__init__`` (its hyperparameters)."""
    params = inspect.signature(cls.__init__, eval_str=True).parameters.values()
    return {p.name: p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def check_hyperparameters(cls: type, values: dict[str, Any], where: str) -> dict[str, Any]:
    """Validate and coerce ``values`` against the annotations of ``cls``'s keyword arguments."""
    params = keyword_parameters(cls)
    unknown = sorted(set(values) - set(params))
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown hyperparameter; expected one of: {', '.join(params) or 'none'}"
        )
    fields = {
        name: (p.annotation if p.annotation is not inspect.Parameter.empty else Any, p.default)
        for name, p in params.items()
        if name in values
    }
    model = pydantic.create_model(f"{cls.__name__}Params", __config__=pydantic.ConfigDict(extra="forbid"), **fields)
    try:
        checked = model.model_validate(values)
    except pydantic.ValidationError as err:
        e = err.errors()[0]
        raise ConfigError(f"{where}.{'.'.join(map(str, e['loc']))}: {e['msg']}") from None
    return {name: getattr(checked, name) for name in values}


def build_registered(registry: Any, cfg: Any, where: str, *args: Any, common: dict[str, Any] | None = None) -> Any:
    """Build ``registry.get(cfg.name)(*args, **hyperparameters)`` from a config with per-name
    sections (``model.mmoe.n_experts``); every section present is checked, not only the chosen one."""
    cls = registry.get(cfg.name)
    for name, section in cfg.sections().items():
        if name not in registry:
            raise ConfigError(
                f"{where}.{name}: unknown key (not a registered {registry.kind}: {', '.join(registry.names())})"
            )
        check_hyperparameters(registry.get(name), section, f"{where}.{name}")
    kwargs = check_hyperparameters(cls, {**(common or {}), **cfg.section(cfg.name)}, f"{where}.{cfg.name}")
    return cls(*args, **kwargs)
