"""UCI Census-Income (KDD), the two-task benchmark of the MMoE and PLE papers.

Read as distributed: ``census-income.data`` (train) and ``census-income.test`` (.gz ok), no header,
fields separated by comma + space, ``?`` for a missing value; ``columns.txt`` (one name a line), if
present, names the 42 columns, else the UCI order below. As in the papers, train is the .data file and
the .test file is split 1:1 at random (``data.split.seed``) into validation and test.
Tasks: ``income`` (1 if '50000+.') and ``marital`` (1 if marital_stat is 'Never married'); the label
columns and ``instance_weight`` (a sampling weight) are not features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from mtlrec.config import DataConfig
from mtlrec.data.columns import RowOrigin
from mtlrec.data.datasets._files import TextFile, numbers, predefined_splits, read_delimited
from mtlrec.data.sources import SOURCES, DataSource, Source, require_path
from mtlrec.errors import ConfigError, DataError
from mtlrec.spec import FeatureSpec, Schema, TaskSpec

COLUMNS = (
    "age class_of_worker detailed_industry_recode detailed_occupation_recode education wage_per_hour "
    "enroll_in_edu_inst_last_wk marital_stat major_industry_code major_occupation_code race hispanic_origin "
    "sex member_of_a_labor_union reason_for_unemployment full_or_part_time_employment_stat capital_gains "
    "capital_losses dividends_from_stocks tax_filer_stat region_of_previous_residence "
    "state_of_previous_residence detailed_household_and_family_stat detailed_household_summary_in_household "
    "instance_weight migration_code_change_in_msa migration_code_change_in_reg migration_code_move_within_reg "
    "live_in_this_house_1_year_ago migration_prev_res_in_sunbelt num_persons_worked_for_employer "
    "family_members_under_18 country_of_birth_father country_of_birth_mother country_of_birth_self "
    "citizenship own_business_or_self_employed fill_inc_questionnaire_for_veterans_admin veterans_benefits "
    "weeks_worked_in_year year income"
).split()
# numeric columns and their transform; every other column but the excluded ones is categorical
NUMERIC = {
    "age": "standardize",
    "wage_per_hour": "log1p",
    "capital_gains": "log1p",
    "capital_losses": "log1p",
    "dividends_from_stocks": "log1p",
    "num_persons_worked_for_employer": "standardize",
    "weeks_worked_in_year": "standardize",
}
NOT_FEATURES = ("instance_weight", "income", "marital_stat", "marital")
INCOME = {"- 50000.": 0, "50000+.": 1}
NEVER_MARRIED = "Never married"


def default_schema(columns: list[str], numeric_categories: Sequence[str] = (), min_count: int = 1) -> Schema:
    """Categorical and numeric features (``min_count``: a category seen fewer times in train is
    'unseen'); each numeric column named in ``numeric_categories`` is also a categorical feature
    ``<column>_cat``, an embedding per value (weeks_worked_in_year 52 and 51 need not lie on a line)."""
    features: list[FeatureSpec] = []
    for c in columns:
        if c in NOT_FEATURES:
            continue
        if c not in NUMERIC:
            features.append(FeatureSpec(c, "categorical", min_count=min_count))
            continue
        features.append(FeatureSpec(c, "numeric", transform=NUMERIC[c]))
        if c in numeric_categories:
            features.append(FeatureSpec(f"{c}_cat", "categorical", column=c, min_count=min_count))
    return Schema(tuple(features), (TaskSpec("income", "binary"), TaskSpec("marital", "binary")))


def column_names(folder: Path) -> list[str]:
    path = folder / "columns.txt"
    if not path.is_file():
        return list(COLUMNS)
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    needed = [c for c in ("income", "marital_stat", "instance_weight", *NUMERIC) if c not in names]
    if needed:
        raise DataError(f"{path}: no column(s) {', '.join(needed)} (expected 42 names: {', '.join(COLUMNS[:3])}, ...)")
    if "marital" in names:
        raise DataError(f"{path}: 'marital' is the name of the derived marital task; rename that column")
    return names


def _find(folder: Path, kind: str) -> Path:
    paths = sorted(folder.glob(f"census-income.{kind}*"))
    if len(paths) != 1:
        found = f"found {', '.join(p.name for p in paths)}" if paths else "found none"
        raise DataError(f"{folder}: expected one file census-income.{kind}[.csv][.gz], {found}")
    return paths[0]


def read_census(path: Path, names: list[str]) -> pa.Table:
    """One census file: text columns trimmed ('?' -> missing), numeric columns as float64, the
    labels ``income`` and ``marital`` as 0/1."""
    raw, file = read_delimited(path, names=names, delimiter=",")
    cols: dict[str, pa.Array | np.ndarray] = {}
    for name in names:
        text = pc.utf8_trim_whitespace(raw[name])
        text = pc.if_else(pc.equal(text, "?"), pa.scalar(None, pa.string()), text)
        if name in NUMERIC or name == "instance_weight":
            cols[name] = numbers(pa.table({name: text}), name, file, missing=True)
        elif name == "income":
            cols[name] = _income(text, file)
        else:
            cols[name] = text
    cols["marital"] = np.asarray(pc.equal(cols["marital_stat"], NEVER_MARRIED).fill_null(False), dtype=np.int8)
    return pa.table(cols)


def _income(text: pa.ChunkedArray, file: TextFile) -> np.ndarray:
    known = pc.is_in(text, value_set=pa.array(list(INCOME)))
    ok = np.asarray(known.fill_null(False))
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        raise file.error(
            row, f"column 'income': expected {' or '.join(map(repr, INCOME))}, got {text[row].as_py()!r}"
        )
    return np.asarray(pc.equal(text, "50000+."), dtype=np.int8)


@SOURCES.register("census_income")
class CensusIncome(DataSource):
    description = "UCI Census-Income (KDD), the MMoE/PLE two-task benchmark; valid/test = halves of .test"
    path_help = "a folder with census-income.data and census-income.test (.gz ok; columns.txt optional)"
    tasks = ("income", "marital")

    def __init__(
        self, *, numeric_categories: tuple[str, ...] = (), min_count: Annotated[int, Field(ge=1)] = 1
    ) -> None:
        unknown = [c for c in numeric_categories if c not in NUMERIC]
        if unknown:
            raise ConfigError(
                f"data.census_income.numeric_categories: '{unknown[0]}' is not a numeric column; "
                f"expected some of: {', '.join(NUMERIC)}"
            )
        self.numeric_categories = numeric_categories
        self.min_count = min_count

    def load(self, cfg: DataConfig) -> Source:
        folder = require_path(cfg)
        if not folder.is_dir():
            raise ConfigError(f"data.path: {folder} is a file; census_income reads {self.path_help}")
        names = column_names(folder)
        files = {"train": _find(folder, "data"), "test": _find(folder, "test")}
        tables = {role: read_census(path, names) for role, path in files.items()}
        origins = {role: RowOrigin(path.name) for role, path in files.items()}
        splits, split_origins = predefined_splits(tables, origins, cfg.split, self.registered_name, files)
        schema = default_schema(names, self.numeric_categories, self.min_count)
        return Source(pa.concat_tables(splits.values()), schema, RowOrigin(folder.name), splits, split_origins)
