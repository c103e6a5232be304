"""The experiment config: YAML loading, --set overrides, unknown keys anywhere, and the example
config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mtlrec.config import ExperimentConfig, apply_overrides, load_config, parse_config
from mtlrec.errors import ConfigError
from mtlrec.models import build_model
from mtlrec.spec import InputLayout, TaskSpec
from mtlrec.weighting import build_weighting

EXAMPLE = Path(__file__).resolve().parents[1] / "configs" / "synthetic.yaml"
LAYOUT = InputLayout(
    cat_names=("user",), cat_sizes=(5,), seq_names=(), seq_sizes=(), seq_lens=(), dense_names=("price",)
)
TASKS = (TaskSpec("click", "binary"), TaskSpec("value", "regression", where="click"))
SCHEMA = {
    "features": [{"name": "user", "kind": "categorical"}, {"name": "price", "kind": "numeric"}],
    "tasks": [{"name": "click", "kind": "binary"}],
}


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- overrides -----------------------------------------------------------------------------------
def test_overrides_parse_yaml_values():
    raw = apply_overrides(
        {"train": {"epochs": 5}},
        [
            "train.epochs=3",
            "train.lr=0.5",
            "train.progress=false",
            "model.tower_dims=[32, 16]",
            "model.shared_bottom.bottom_dims=[8]",
            "data.split.method=time",
            "data.split.column=ts",
            "train.monitor=click.auc",
        ],
    )
    assert raw["train"] == {"epochs": 3, "lr": 0.5, "progress": False, "monitor": "click.auc"}
    assert raw["model"] == {"tower_dims": [32, 16], "shared_bottom": {"bottom_dims": [8]}}
    assert raw["data"] == {"split": {"method": "time", "column": "ts"}}


def test_overrides_reach_the_validated_config(tmp_path):
    path = write(tmp_path, "train:\n  epochs: 5\n  lr: 0.1\n")
    cfg = load_config(path, ["train.lr=1e-3", "train.epochs=2", "model.tower_dims=[4]", "train.progress=no"])
    assert cfg.train.lr == pytest.approx(1e-3)
    assert cfg.train.epochs == 2
    assert cfg.model.tower_dims == (4,)
    assert cfg.train.progress is False
    assert load_config(path).train.epochs == 5  # the file is untouched


@pytest.mark.parametrize("item", ["train.lr", "=3", " =3"])
def test_override_without_key_or_equals_sign(item):
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides({}, [item])


def test_override_into_a_value_that_is_not_a_section():
    with pytest.raises(ConfigError, match="'lr' is not a section"):
        apply_overrides({"train": {"lr": 0.1}}, ["train.lr.x=1"])


def test_wrong_type_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"train\.lr: .*number"):
        load_config(write(tmp_path, "{}\n"), ["train.lr=abc"])
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        parse_config({"train": {"epochs": 0}})


# -- unknown keys --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, key",
    [
        ({"trian": {"epochs": 1}}, "trian"),
        ({"train": {"epochz": 1}}, "train.epochz"),
        ({"data": {"synthetic": {"rowz": 10}}}, "data.synthetic.rowz"),
        ({"data": {"split": {"sed": 1}}}, "data.split.sed"),
        ({"schema": {**SCHEMA, "grup": "user"}}, "schema.grup"),
        ({"schema": {**SCHEMA, "features": [{"name": "a", "kind": "numeric", "bogus": 1}]}},
         "schema.features.0.bogus"),
        ({"schema": {**SCHEMA, "tasks": [{"name": "y", "kind": "binary", "wher": "click"}]}},
         "schema.tasks.0.wher"),
        ({"model": {"n_experts": 4}}, "n_experts"),
        ({"weighting": {"alpha": 0.5}}, "alpha"),
    ],
)  # fmt: skip
def test_unknown_keys_are_errors_naming_the_key(raw, key):
    with pytest.raises(ConfigError) as err:
        parse_config(raw, where="exp.yaml")
    message = str(err.value)
    assert message.startswith("exp.yaml: ")
    assert key in message and "unknown key" in message


def build(model: dict) -> object:
    return build_model(ExperimentConfig.model_validate({"model": model}).model, LAYOUT, TASKS)


def test_model_builds_from_its_section():
    model = build({"name": "shared_bottom", "tower_dims": [4], "shared_bottom": {"bottom_dims": [8]}})
    assert model.registered_name == "shared_bottom"
    assert model.bottom.out_dim == 8


@pytest.mark.parametrize(
    "model, key",
    [
        ({"mmoee": {"n_experts": 4}}, "model.mmoee"),  # a section named after no model
        ({"shared_bottom": {"bottom_dimz": [8]}}, "model.shared_bottom.bottom_dimz"),
        ({"single_task": {"typo": 1}}, "model.single_task.typo"),  # sections of other models too
        ({"shared_bottom": {"embedding_dimm": 8}}, "model.shared_bottom.embedding_dimm"),
    ],
)
def test_unknown_model_sections_and_hyperparameters_fail_when_built(model, key):
    ExperimentConfig.model_validate({"model": model})  # sections are free-form until built
    with pytest.raises(ConfigError, match=rf"{key}\b.*unknown"):
        build(model)


def test_model_hyperparameter_of_the_wrong_type_names_it():
    with pytest.raises(ConfigError, match=r"model\.shared_bottom\.bottom_dims"):
        build({"shared_bottom": {"bottom_dims": "wide"}})


def test_unknown_model_name():
    with pytest.raises(ConfigError, match=r"unknown model 'nosuch'.*shared_bottom"):
        build({"name": "nosuch"})


def test_unknown_weighting_section():
    cfg = ExperimentConfig.model_validate({"weighting": {"pcgradd": {"x": 1}}}).weighting
    with pytest.raises(ConfigError, match=r"weighting\.pcgradd"):
        build_weighting(cfg, TASKS)


def test_schema_rules_are_config_errors():
    bad = {"features": SCHEMA["features"], "tasks": [{"name": "seg", "kind": "multiclass", "n_classes": 1}]}
    with pytest.raises(ConfigError, match="schema.tasks.0: task 'seg'.*n_classes >= 2"):
        parse_config({"schema": bad})
    with pytest.raises(ConfigError, match="split method 'time' needs a column"):
        parse_config({"data": {"split": {"method": "time"}}})


@pytest.mark.parametrize(
    "task, message",
    [
        ({"kind": "binary", "loss": "poisson"},
         r"task 'y': loss 'poisson' does not fit a binary task \(it is for regression tasks\); expected one of bce"),
        ({"kind": "multilabel", "n_classes": 3, "loss": "poisson"}, r"task 'y': loss 'poisson' does not fit a multilabel task \(it is for regression"),
        ({"kind": "regression", "loss": "poisson", "transform": "log1p"}, r"task 'y': loss poisson .*remove transform"),
        ({"kind": "binary", "metrics": ["wape"]}, r"task 'y': unknown binary metric\(s\) wape"),
    ],
)  # fmt: skip
def test_poisson_is_a_loss_of_regression_tasks_only(task, message):
    bad = {"features": SCHEMA["features"], "tasks": [{"name": "y", **task}]}
    with pytest.raises(ConfigError, match=rf"schema.tasks.0: {message}"):
        parse_config({"schema": bad})


def test_count_metrics_are_a_poisson_tasks_defaults_and_any_regression_tasks_choice():
    from mtlrec.spec import DEFAULT_METRICS, TaskSpec

    assert TaskSpec("units", "regression", loss="poisson").metric_names == ("poisson_deviance", "wape", "rmse", "mae")
    assert TaskSpec("revenue", "regression").metric_names == DEFAULT_METRICS["regression"] == ("mse", "rmse", "mae")
    assert TaskSpec("revenue", "regression", metrics=("wape", "rmse")).metric_names == ("wape", "rmse")


# -- files ---------------------------------------------------------------------------------------
def test_malformed_yaml_names_the_file(tmp_path):
    path = write(tmp_path, "train:\n  epochs: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML") as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: ")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text, kind", [("- 1\n- 2\n", "list"), ("just text\n", "str"), ("3\n", "int")])
def test_top_level_must_be_a_mapping(tmp_path, text, kind):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=rf"{path}: expected a mapping at the top level, got {kind}"):
        load_config(path)


def test_missing_config_file_names_it(tmp_path):
    with pytest.raises(ConfigError, match=rf"{tmp_path / 'nope.yaml'}: cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_empty_file_means_all_defaults(tmp_path):
    assert load_config(write(tmp_path, "# nothing\n")) == ExperimentConfig()


def test_errors_name_the_file_they_came_from(tmp_path):
    path = write(tmp_path, "train:\n  epochz: 1\n")
    with pytest.raises(ConfigError, match=rf"^{path}: train\.epochz: unknown key$"):
        load_config(path)


def test_config_round_trips_through_yaml(tmp_path):
    cfg = parse_config({"schema": SCHEMA, "model": {"shared_bottom": {"bottom_dims": [8]}}, "train": {"lr": 0.01}})
    path = write(tmp_path, yaml.safe_dump(cfg.to_dict()))
    assert load_config(path) == cfg


def test_the_example_config_loads_and_builds(tmp_path):
    from mtlrec.data.encode import Encoder
    from mtlrec.experiment import load_splits

    cfg = load_config(EXAMPLE, ["data.synthetic.rows=1000", "data.synthetic.users=100", "data.synthetic.items=100"])
    assert cfg.schema_ is not None and cfg.schema_.tasks
    schema, tables = load_splits(cfg)  # every column the schema names exists in the simulated data
    encoder = Encoder(schema).fit(tables["train"])
    model = build_model(cfg.model, encoder.layout(), schema.tasks)  # and every model section is valid
    assert set(model(encoder.transform(tables["valid"]).take(slice(0, 4)))) == set(schema.task_names)
    build_weighting(cfg.weighting, schema.tasks)
