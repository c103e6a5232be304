"""The Pareto frontier of fusion weights against several offline objectives, and the rule that
picks one setting from it.

``search`` asks Optuna's multi-objective sampler (TPE or NSGA-II, seeded) for the weights of a
weighted fuser (``product``, ``weighted_sum``), scores each setting with an evaluation function,
and returns every setting tried. Weights are drawn on a log scale relative to an anchor input whose
weight stays 1 (the baseline's pCTR): scaling every weight alike changes no ranking, and trade-offs
such as "keep 98 % of clicks" live at small relative weights, which a log scale samples well.
``pareto_mask`` keeps the settings no other beats on every objective; ``Rule.choose`` picks one.

Selection rule (``--maximize gmv --keep click>=0.98``): among the Pareto-optimal settings, the one
with the highest ``gmv`` whose ``click`` objective is at least 0.98 times the baseline's (ranking
by pCTR alone). Thresholds are ratios to the baseline, not to the frontier's best, so a rule reads
as "lose at most 2 % of clicks against what we do today" and does not move with the search. The
baseline is a candidate itself, so a rule whose thresholds are all <= 1 always has an answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from mtlrec.errors import ConfigError
from mtlrec.rank.fusion import FUSERS, Fuser

# where each weighted fuser's search looks: (low, high, log scale) for every weight but the anchor's,
# which stays 1: both fusers rank the same when every weight is scaled alike, so the anchor fixes the
# scale and the search has one dimension less
SEARCH_SPACES = {
    "product": (1e-3, 2.0, True),  # exponents relative to the anchor's
    "weighted_sum": (1e-4, 10.0, True),  # inputs differ by orders of magnitude (probabilities, money)
}


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """[n, m] objective values, all maximised -> [n] bool, True for the points no other point
    dominates (>= on every objective and > on one). Equal points are all kept; NaN counts as worst."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"pareto_mask: expected an [n, m] array, got shape {v.shape}")
    v = np.where(np.isnan(v), -np.inf, v)
    keep = np.ones(len(v), bool)
    for start in range(0, len(v), 256):  # [256, n, m] at a time
        a = v[start : start + 256, None, :]
        dominated = ((v[None] >= a).all(-1) & (v[None] > a).any(-1)).any(1)
        keep[start : start + 256] = ~dominated
    return keep


_KEEP = re.compile(r"^\s*([A-Za-z_][\w.:-]*)\s*>=\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*$")


@dataclass(frozen=True)
class Rule:
    """Maximise one objective subject to others keeping at least a ratio of the baseline's value."""

    maximize: str
    keep: tuple[tuple[str, float], ...] = ()

    @classmethod
    def parse(cls, maximize: str, keep: Sequence[str], objectives: Sequence[str]) -> "Rule":
        """``maximize="gmv"``, ``keep=["click>=0.98", "purchase>=0.95"]`` (or one comma-separated
        string); every name must be one of ``objectives``."""
        if maximize not in objectives:
            raise ConfigError(f"--maximize '{maximize}': not an objective; expected one of {', '.join(objectives)}")
        rules = []
        for text in (part for item in keep for part in item.split(",") if part.strip()):
            match = _KEEP.match(text)
            if not match:
                raise ConfigError(
                    f"--keep '{text.strip()}': expected OBJECTIVE>=RATIO, e.g. click>=0.98 "
                    f"(at least 98 % of ranking by the baseline alone)"
                )
            name, ratio = match.group(1), float(match.group(2))
            if name not in objectives:
                raise ConfigError(
                    f"--keep '{text.strip()}': '{name}' is not an objective; expected one of {', '.join(objectives)}"
                )
            rules.append((name, ratio))
        return cls(maximize, tuple(rules))

    def __str__(self) -> str:
        keep = ", ".join(f"{n} >= {r:g} x baseline" for n, r in self.keep)
        return f"maximize {self.maximize}" + (f" keeping {keep}" if keep else "")

    def feasible(self, values: np.ndarray, baseline: np.ndarray, objectives: Sequence[str]) -> np.ndarray:
        """[n] bool: the rows of ``values`` [n, m] that meet every ``keep`` threshold."""
        ok = np.ones(len(values), bool)
        for name, ratio in self.keep:
            j = list(objectives).index(name)
            ok &= values[:, j] >= ratio * baseline[j]
        return ok

    def choose(self, values: np.ndarray, baseline: np.ndarray, objectives: Sequence[str],
               candidates: np.ndarray) -> int:  # fmt: skip
        """The index (into ``values``) of the candidate that meets the thresholds with the highest
        ``maximize`` value; ties go to the earliest row."""
        column = list(objectives).index
        ok = candidates & self.feasible(values, baseline, objectives)
        if not ok.any():
            best = ", ".join(
                f"{n} {np.max(values[candidates, column(n)]) / baseline[column(n)]:.4f}" for n, _ in self.keep
            )
            raise ConfigError(f"no Pareto-optimal setting meets {self}; the best ratios to the baseline are {best}")
        maximized = values[:, column(self.maximize)]
        return int(np.flatnonzero(ok)[np.argmax(maximized[ok])])


@dataclass
class Setting:
    """One fusion that was evaluated: ``values`` are the optimised objectives, in order."""

    label: str
    fuser: Fuser
    values: tuple[float, ...]
    metrics: dict = field(default_factory=dict)


def check_searchable(fuser_name: str) -> None:
    """A ConfigError unless ``fuser_name`` is a fuser with weights to search."""
    if fuser_name not in SEARCH_SPACES:
        FUSERS.get(fuser_name)  # an unknown name gets the registry's error
        raise ConfigError(
            f"--fuser '{fuser_name}': has no weights to search; expected one of {', '.join(SEARCH_SPACES)}"
        )


def search(
    fuser_name: str,
    inputs: Sequence[str],
    evaluate: Callable[[Fuser], tuple[tuple[float, ...], dict]],
    n_objectives: int,
    *,
    trials: int = 100,
    seed: int = 0,
    sampler: str = "tpe",
    anchor: str | None = None,
) -> list[Setting]:
    """Every setting of ``fuser_name``'s weights over ``inputs`` that Optuna tried, in order.
    ``evaluate(fuser)`` returns (objective values, all metrics). ``anchor`` (one of ``inputs``, e.g.
    the baseline's click) keeps weight 1. The first trial is every weight at 1 (for product over
    pCTR, pCVR and predicted value: expected GMV)."""
    import warnings

    import optuna

    check_searchable(fuser_name)
    if trials < 1:
        raise ConfigError(f"--trials: expected an integer >= 1, got {trials}")
    if not inputs:
        raise ConfigError("--inputs: expected at least one task or column")
    low, high, log = SEARCH_SPACES[fuser_name]
    cls = FUSERS.get(fuser_name)
    samplers = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, trials // 4))),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }
    if sampler not in samplers:
        raise ConfigError(f"--sampler '{sampler}': expected one of {', '.join(samplers)}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(directions=["maximize"] * n_objectives, sampler=samplers[sampler]())
    if anchor is not None and anchor not in inputs:
        raise ConfigError(f"--inputs: the anchor '{anchor}' is not one of {', '.join(inputs)}")
    searched = [name for name in inputs if name != anchor]
    study.enqueue_trial({name: 1.0 for name in searched})
    settings: list[Setting] = []

    def objective(trial: "optuna.Trial") -> tuple[float, ...]:
        # 4 significant digits: readable in fusion.json, and no ranking depends on the fifth
        drawn = {name: float(f"{trial.suggest_float(name, low, high, log=log):.4g}") for name in searched}
        weights = {name: drawn.get(name, 1.0) for name in inputs}
        fuser = cls(weights=weights)
        values, metrics = evaluate(fuser)
        settings.append(Setting(f"trial {trial.number}", fuser, tuple(values), metrics))
        return tuple(values)

    study.optimize(objective, n_trials=trials)
    return settings
