"""Fusers: per-item task predictions -> one ranking score (higher ranks first).

A fuser reads named inputs: a task's prediction (``click`` = pCTR, ``purchase`` = pCVR,
``order_value`` = predicted value) or, where no task has that name, a numeric column of the
candidates (``price``). Build one from the config (``fusion: {name: product, product: {weights:
{click: 1.0, purchase: 0.5}}}``) with ``build_fuser``, or from a run directory with ``load_fusion``
(its ``fusion.json``, written by ``mtlrec frontier``, else the config's ``fusion``, else pCTR only).

    fuser = load_fusion("runs/x")
    values = fusion_inputs(fuser, predictor.predict(table), table)   # {input: [N]}
    score = fuser(values)                                            # [N]
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from mtlrec.errors import ConfigError
from mtlrec.registry import Registry


class Fuser:
    """Base of every fuser: typed keyword-only hyperparameters, ``inputs`` (the names it reads)
    and ``__call__({name: [N] values}) -> [N] scores``."""

    description = ""
    registered_name = ""

    @property
    def inputs(self) -> tuple[str, ...]:
        raise NotImplementedError

    def score(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        """[N] float64 scores from [N] float64 inputs (every name in ``inputs`` is present)."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this fuser (JSON-ready)."""
        raise NotImplementedError

    def __call__(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        missing = [name for name in self.inputs if name not in values]
        if missing:
            raise ConfigError(
                f"fuser '{self.registered_name}': input '{missing[0]}' is neither a task prediction nor a "
                f"column; available: {', '.join(values) or 'none'}"
            )
        arrays = {name: np.asarray(values[name], dtype=np.float64) for name in self.inputs}
        for name, a in arrays.items():
            if a.ndim != 1:
                raise ConfigError(
                    f"fuser '{self.registered_name}': input '{name}' has shape {a.shape}; expected one value "
                    f"per item (a binary or regression task, or a numeric column)"
                )
        return self.score(arrays)

    def describe(self) -> str:
        """The formula, e.g. ``click^1 * purchase^0.5``."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The config form: ``{"name": ..., name: {parameters}}`` (what ``build_fuser`` reads)."""
        return {"name": self.registered_name, self.registered_name: self.params()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{self.registered_name}({args})"


FUSERS: Registry[Fuser] = Registry("fuser")


def _check_weights(weights: Mapping[str, float], where: str) -> dict[str, float]:
    if not weights:
        raise ConfigError(f"{where}.weights: expected at least one input, e.g. {{click: 1.0}}")
    out = {}
    for name, w in weights.items():
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not math.isfinite(w):
            raise ConfigError(f"{where}.weights.{name}: expected a finite number, got {w!r}")
        out[str(name)] = float(w)
    return out


@FUSERS.register("weighted_sum")
class WeightedSum(Fuser):
    """sum_i w_i * x_i. Inputs on different scales (probabilities, prices) need weights to match."""

    description = "sum of w * input"

    def __init__(self, *, weights: dict[str, float]) -> None:
        self.weights = _check_weights(weights, "fusion.weighted_sum")

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(self.weights)

    def score(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        return sum(w * values[name] for name, w in self.weights.items())

    def describe(self) -> str:
        return " + ".join(f"{w:.4g} * {name}" for name, w in self.weights.items())

    def params(self) -> dict[str, Any]:
        return {"weights": dict(self.weights)}


@FUSERS.register("product")
class Product(Fuser):
    """prod_i max(x_i, floor) ** w_i, e.g. pCTR^1 * pCVR^0.5 * value^0.3; scaling every exponent
    by the same factor keeps the ranking. Computed in log space (no underflow to 0 for ranking)."""

    description = "product of input ** w"

    def __init__(self, *, weights: dict[str, float], floor: float = 1e-6) -> None:
        self.weights = _check_weights(weights, "fusion.product")
        if not floor > 0:
            raise ConfigError(f"fusion.product.floor: expected a number > 0, got {floor!r}")
        self.floor = float(floor)

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(self.weights)

    def log_score(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        return sum(w * np.log(np.maximum(values[name], self.floor)) for name, w in self.weights.items())

    def score(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.exp(self.log_score(values))

    def describe(self) -> str:
        return " * ".join(f"{name}^{w:.4g}" for name, w in self.weights.items())

    def params(self) -> dict[str, Any]:
        return {"weights": dict(self.weights), "floor": self.floor}


@FUSERS.register("expected_value")
class ExpectedValue(Fuser):
    """prod(chain) * value: with chain [click, purchase] (pCVR is P(purchase | click)) and value
    price or the predicted order value, the expected GMV of showing the item once."""

    description = "product of a funnel's probabilities, times a value"

    def __init__(self, *, chain: tuple[str, ...] = ("click", "purchase"), value: str | None = "price") -> None:
        if not chain:
            raise ConfigError("fusion.expected_value.chain: expected at least one task, e.g. [click, purchase]")
        self.chain = tuple(chain)
        self.value = value

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.chain + ((self.value,) if self.value else ())

    def score(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.prod([values[name] for name in self.inputs], axis=0)

    def describe(self) -> str:
        return " * ".join(self.inputs)

    def params(self) -> dict[str, Any]:
        return {"chain": list(self.chain), "value": self.value}


def build_fuser(spec: Any, where: str = "fusion") -> Fuser:
    """A fuser from a FusionConfig or its dict form ``{"name": ..., name: {parameters}}``."""
    from mtlrec.config import FusionConfig
    from mtlrec.hyper import build_registered, keyword_parameters

    if not isinstance(spec, FusionConfig):
        import pydantic

        try:
            spec = FusionConfig.model_validate(spec)
        except pydantic.ValidationError as err:
            e = err.errors()[0]
            loc = ".".join(map(str, e["loc"]))
            raise ConfigError(f"{where}{'.' + loc if loc else ''}: {e['msg'].removeprefix('Value error, ')}") from None
    cls = FUSERS.get(spec.name)
    for name in spec.sections():
        if name not in FUSERS:
            raise ConfigError(f"{where}.{name}: unknown key (not a registered fuser: {', '.join(FUSERS.names())})")
    section = spec.section(spec.name)
    required = [n for n, p in keyword_parameters(cls).items() if p.default is inspect.Parameter.empty]
    missing = [n for n in required if n not in section]
    if missing:
        raise ConfigError(f"{where}.{spec.name}.{missing[0]}: required")
    return build_registered(FUSERS, spec, where)


def default_fuser(tasks: Iterable[Any]) -> Fuser:
    """Ranking by pCTR: the first binary task without ``where`` (the top of the funnel), else the
    first binary or regression task."""
    tasks = list(tasks)
    top = [t for t in tasks if t.kind == "binary" and not t.where]
    scalar = [t for t in tasks if t.kind in ("binary", "regression")]
    if not (top or scalar):
        raise ConfigError("fusion: no binary or regression task to rank by; add a fusion section to the config")
    return Product(weights={(top or scalar)[0].name: 1.0})


def load_fusion(run_dir: str | Path) -> Fuser:
    """The run's fusion: ``fusion.json`` (chosen by ``mtlrec frontier``) if present, else the
    config's ``fusion`` section, else ``default_fuser`` (pCTR only)."""
    from mtlrec.artifacts import read_json, read_yaml
    from mtlrec.config import parse_config

    run_dir = Path(run_dir)
    path = run_dir / "fusion.json"
    if path.is_file():
        stored = read_json(path)
        if not isinstance(stored, dict) or not isinstance(stored.get("fuser"), dict):
            raise ConfigError(f"{path}: expected an object with a 'fuser' entry")
        return build_fuser(stored["fuser"], where=f"{path}: fuser")
    config_path = run_dir / "config.yaml"
    config = parse_config(read_yaml(config_path) or {}, where=str(config_path))
    if config.fusion is not None:
        return build_fuser(config.fusion, where=f"{config_path}: fusion")
    if config.schema_ is None:
        raise ConfigError(f"{config_path}: no schema, so no default fusion; add a fusion section")
    return default_fuser(config.schema_.tasks)


def fusion_inputs(
    fuser: Fuser, preds: Mapping[str, np.ndarray], table: Any = None, where: str = "data"
) -> dict[str, np.ndarray]:
    """``{input: [N]}`` for ``fuser``: task predictions first, then numeric columns of ``table``
    (a pyarrow Table) for inputs that are not tasks."""
    values: dict[str, np.ndarray] = {}
    for name in fuser.inputs:
        if name in preds:
            values[name] = np.asarray(preds[name])
        elif table is not None and name in table.column_names:
            from mtlrec.data.columns import as_float

            values[name] = as_float(table[name], name, where)
        else:
            have = list(preds) + (list(table.column_names) if table is not None else [])
            raise ConfigError(
                f"fuser '{fuser.registered_name}': input '{name}' is neither a task prediction nor a column "
                f"of {where}; available: {', '.join(have) or 'none'}"
            )
    return values
