"""Warm start (``--init-from``): the vocabularies grow instead of being refitted, the parent's
weights and optimizer state move into the grown model (known ids keep their rows, new ids get
fresh rows and zero moments), and a parent with another schema, model or weighting is refused."""

from __future__ import annotations

import copy
import dataclasses

import pyarrow as pa
import pytest
import torch

from mtlrec.artifacts import load_tensors, read_json
from mtlrec.cli.main import main
from mtlrec.config import ExperimentConfig, TrainConfig
from mtlrec.data.encode import Encoder
from mtlrec.data.readers import write_table
from mtlrec.data.synthetic import default_schema, simulate
from mtlrec.errors import ConfigError, RunError
from mtlrec.experiment import prepare, run_experiment
from mtlrec.models import build_model
from mtlrec.spec import FeatureSpec, Schema, TaskSpec
from mtlrec.train.optim import Optimizers
from mtlrec.train.state import TrainState
from mtlrec.train.warm_start import Parent
from mtlrec.weighting import build_weighting


TASKS = (TaskSpec("click", "binary"),)


def schema_with_ids() -> Schema:
    base = default_schema()
    ids = (FeatureSpec("item_id", "categorical"), FeatureSpec("brand_seen", "categorical", column="brand", min_count=3))
    return Schema(features=base.features + ids, tasks=base.tasks[:3], group=base.group)


def raw_config(path, schema: Schema) -> dict:
    return {
        "data": {"source": "file", "path": str(path)},
        "schema": dataclasses.asdict(schema),
        "model": {"name": "mmoe", "embedding_dim": 4, "tower_dims": [8], "mmoe": {"n_experts": 2, "expert_dims": [8]}},
        "train": {"epochs": 1, "batch_size": 256, "progress": False, "seed": 0},
    }


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    """Two days of one shop: day 2 shows items (ids 200-259) that day 1 never did."""
    root = tmp_path_factory.mktemp("days")
    write_table(simulate(rows=3000, users=300, items=200, seed=1), root / "day1.parquet")
    write_table(simulate(rows=3000, users=300, items=260, seed=2), root / "day2.parquet")
    return root


@pytest.fixture(scope="module")
def parent(days, tmp_path_factory):
    out = tmp_path_factory.mktemp("parent") / "run"
    run_experiment(ExperimentConfig.model_validate(raw_config(days / "day1.parquet", schema_with_ids())), out)
    return out


# -- the encoder grows ---------------------------------------------------------------------------
def test_the_vocabulary_grows_and_known_values_keep_their_index(tmp_path):
    spec = FeatureSpec("c", "categorical", min_count=2, max_size=5)
    schema = Schema(features=(spec, FeatureSpec("x", "numeric"), FeatureSpec("s", "sequence")), tasks=TASKS)
    day1 = pa.table({"c": ["a", "a", "b", "b", "b", "r"], "x": [1.0, 2, 3, 4, 5, 6], "s": ["1|2", "2", "", "", "", ""]})
    day2 = pa.table({"c": ["r", "n", "n", "n", "b", "m"], "x": [100.0] * 6, "s": ["3|3", "2", "", "", "", ""]})
    old = Encoder(schema).fit(day1)
    assert old.vocabs_["c"] == ["b", "a"]  # r seen once: below min_count
    new = old.grow(day2)
    # r: 1 + 1 = 2 passes min_count now; n: 3; m: 1 stays out; max_size 5 leaves room for both
    assert new.vocabs_["c"] == ["b", "a", "n", "r"]
    assert new.counts_["c"] == {"a": 2, "b": 4, "r": 2, "n": 3, "m": 1}
    assert new.vocabs_["s"] == ["2", "1", "3"] and new.counts_["s"] == {"1": 1, "2": 3, "3": 2}
    assert new.numeric_ == old.numeric_  # scaling stays the parent's
    assert old.vocabs_["c"] == ["b", "a"]  # the parent's encoder is not changed
    enc = new.transform(pa.table({"c": ["b", "a", "n", "r", "m"], "x": [0.0] * 5, "s": [""] * 5}), labels=False)
    assert enc.cat[:, 0].tolist() == [1, 2, 3, 4, 0]
    capped = Encoder(dataclasses.replace(schema, features=(dataclasses.replace(spec, max_size=3),))).fit(day1)
    assert capped.grow(day2).vocabs_["c"] == ["b", "a", "n"]  # max_size counts the kept values too
    new.save_counts(tmp_path / "counts.json")  # apart from encoder.json, which serving reads
    assert "counts" not in new.to_dict()
    again = Encoder.from_dict(new.to_dict()).load_counts(tmp_path / "counts.json")
    assert again.counts_ == new.counts_ and again.grow(day2).vocabs_["c"][:4] == new.vocabs_["c"]


def test_an_encoder_saved_without_counts_still_grows():
    schema = Schema(features=(FeatureSpec("c", "categorical"),), tasks=TASKS)
    old = Encoder(schema).fit(pa.table({"c": ["a", "b", "b"]}))
    grown = Encoder.from_dict(old.to_dict()).grow(pa.table({"c": ["z", "a"]}))  # counts.json not read
    assert grown.vocabs_["c"] == ["b", "a", "z"]


# -- the model and the optimizer state move over -------------------------------------------------
def _child(parent_run, data, *, reset_optimizer=False):
    cfg = ExperimentConfig.model_validate(raw_config("unused", data.schema))
    torch.manual_seed(0)
    model = build_model(cfg.model, data.encoder.layout(), data.schema.tasks)
    weighting = build_weighting(cfg.weighting, model.loss_tasks)
    optimizers = Optimizers(model, [*weighting.parameters()], TrainConfig())
    state = TrainState(model, weighting, optimizers, [], seed=0)
    fresh = copy.deepcopy(model.state_dict())
    Parent.load(parent_run).restore(state, data.encoder.layout(), reset_optimizer=reset_optimizer)
    return state, fresh


def test_known_ids_keep_their_rows_and_new_ids_get_fresh_ones(parent, days):
    pre = Parent.load(parent)
    data = prepare(ExperimentConfig.model_validate(raw_config(days / "day2.parquet", schema_with_ids())), grow=pre.encoder)
    old_vocab, new_vocab = pre.encoder.vocabs_["item_id"], data.encoder.vocabs_["item_id"]
    assert new_vocab[: len(old_vocab)] == old_vocab and len(new_vocab) > len(old_vocab)
    state, fresh = _child(parent, data)
    old_layout, new_layout = pre.encoder.layout(), data.encoder.layout()
    field = old_layout.cat_names.index("item_id")
    old_at, new_at = sum(old_layout.cat_sizes[:field]), sum(new_layout.cat_sizes[:field])
    old_table, new_table = pre.weights["embedding.table.weight"], state.model.embedding.table.weight.detach()
    known, n_old = len(old_vocab) + 1, len(old_vocab) + 1
    torch.testing.assert_close(new_table[new_at : new_at + known], old_table[old_at : old_at + known], rtol=0, atol=0)
    grown = slice(new_at + n_old, new_at + new_layout.cat_sizes[field])
    torch.testing.assert_close(new_table[grown], fresh["embedding.table.weight"][grown], rtol=0, atol=0)
    for name, value in state.model.state_dict().items():  # every other weight is the parent's
        if "table" not in name and "bag" not in name:
            torch.testing.assert_close(value, pre.weights[name], rtol=0, atol=0)

    table_state = state.optimizers.rowwise.state[state.model.embedding.table.weight]
    parent_state = pre.train["optimizers"]["rowwise"]["state"]["embedding.table.weight"]
    assert table_state["step"] == parent_state["step"] > 0
    torch.testing.assert_close(table_state["moments"][new_at : new_at + known],
                               parent_state["moments"][old_at : old_at + known], rtol=0, atol=0)  # fmt: skip
    assert not table_state["moments"][grown].any() and not table_state["last"][grown].any()
    assert table_state["exp_avg"].data_ptr() == table_state["moments"].data_ptr()  # the views are views again
    dense_name = "experts.weights.0"
    param = dict(state.model.named_parameters())[dense_name]
    torch.testing.assert_close(state.optimizers.dense.state[param]["exp_avg"],
                               pre.train["optimizers"]["dense"]["state"][dense_name]["exp_avg"], rtol=0, atol=0)  # fmt: skip
    assert state.optimizers.dense.param_groups[0]["lr"] == TrainConfig().lr  # the new run's settings

    reset, _ = _child(parent, data, reset_optimizer=True)
    assert not reset.optimizers.dense.state and not reset.optimizers.rowwise.state


def test_a_warm_started_run_records_its_parent_and_trains(parent, days, tmp_path, capsys):
    cfg = ExperimentConfig.model_validate(raw_config(days / "day2.parquet", schema_with_ids()))
    metrics = run_experiment(cfg, tmp_path / "child", init_from=parent)
    assert "starting from" in capsys.readouterr().err
    info, parent_info = read_json(tmp_path / "child" / "run.json"), read_json(parent / "run.json")
    assert info["parent"] == {"run": str(parent.resolve()), "id": parent_info["id"]} and info["id"] != parent_info["id"]
    assert info["data"]["files"][0]["path"].endswith("day2.parquet") and len(info["data"]["files"][0]["sha256"]) == 64
    fresh = run_experiment(cfg, tmp_path / "fresh")  # one epoch on day 2 alone
    assert metrics["test"]["click"]["auc"] > fresh["test"]["click"]["auc"]  # it kept what day 1 taught
    assert (tmp_path / "child" / "counts.json").is_file() and not (tmp_path / "child" / "parent.json").exists()
    encoder = Encoder.load(tmp_path / "child" / "encoder.json")
    assert encoder.vocabs_["item_id"][: 200] == Encoder.load(parent / "encoder.json").vocabs_["item_id"][:200]
    weights = load_tensors(tmp_path / "child" / "model.safetensors")
    assert weights["embedding.table.weight"].shape[0] > load_tensors(parent / "model.safetensors")["embedding.table.weight"].shape[0]


def test_the_command_line_warm_start_and_its_errors(parent, days, tmp_path, capsys):
    import yaml

    config = tmp_path / "day2.yaml"
    config.write_text(yaml.safe_dump(raw_config(days / "day2.parquet", schema_with_ids())))
    assert main(["train", str(config), "--init-from", str(parent), "--out", str(tmp_path / "c")]) == 0
    other = raw_config(days / "day2.parquet", schema_with_ids())
    other["schema"]["features"][5]["transform"] = "standardize"  # price was log1p
    config.write_text(yaml.safe_dump(other))
    assert main(["train", str(config), "--init-from", str(parent), "--out", str(tmp_path / "d")]) == 2
    assert "schema.features.price.transform is 'standardize' here but 'log1p' in that run" in capsys.readouterr().err
    for key, value, message in [
        ("model.mmoe.n_experts", "3", "model.mmoe.n_experts is 3 here but 2"),
        ("weighting.name", "famo", "weighting.name is 'famo' here but 'static'"),
    ]:
        config.write_text(yaml.safe_dump(raw_config(days / "day2.parquet", schema_with_ids())))
        assert main(["train", str(config), "--init-from", str(parent), "--set", f"{key}={value}",
                     "--out", str(tmp_path / "e")]) == 2  # fmt: skip
        assert message in capsys.readouterr().err
    reordered = raw_config(days / "day2.parquet", schema_with_ids())
    reordered["schema"]["tasks"] = reordered["schema"]["tasks"][::-1]
    config.write_text(yaml.safe_dump(reordered))
    assert main(["train", str(config), "--init-from", str(parent), "--out", str(tmp_path / "r")]) == 2
    assert ("schema.tasks are in the order ['purchase', 'add_to_cart', 'click'] here but ['click', 'add_to_cart', "
            "'purchase'] in that run") in capsys.readouterr().err  # fmt: skip
    config.write_text(yaml.safe_dump(raw_config(days / "day2.parquet", schema_with_ids())))
    assert main(["train", str(config), "--reset-optimizer", "--out", str(tmp_path / "f")]) == 2
    assert "--reset-optimizer: only with --init-from" in capsys.readouterr().err
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.yaml").write_text("{}")
    with pytest.raises(RunError, match="not a complete run directory"):
        run_experiment(ExperimentConfig.model_validate(raw_config(days / "day2.parquet", schema_with_ids())),
                       tmp_path / "g", init_from=tmp_path / "half")  # fmt: skip
    with pytest.raises(ConfigError, match="that is --out itself"):
        run_experiment(ExperimentConfig.model_validate(raw_config(days / "day1.parquet", schema_with_ids())),
                       parent, init_from=parent, overwrite=True)  # fmt: skip
    assert (parent / "run.json").is_file()
    with pytest.raises(ValueError, match="data= cannot be given with resume or init_from"):
        run_experiment(ExperimentConfig.model_validate(raw_config(days / "day2.parquet", schema_with_ids())),
                       tmp_path / "h", init_from=parent, data=prepare(ExperimentConfig.model_validate(
                           raw_config(days / "day2.parquet", schema_with_ids()))))  # fmt: skip


def test_a_warm_start_stopped_before_its_first_checkpoint_resumes_from_its_parent(
    parent, days, tmp_path, capsys, monkeypatch
):
    from mtlrec import experiment

    cfg = ExperimentConfig.model_validate(raw_config(days / "day2.parquet", schema_with_ids()))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies once config, encoder and parent.json are written

    with monkeypatch.context() as patch:
        patch.setattr(experiment, "_train_into", crash)
        with pytest.raises(KeyboardInterrupt):
            run_experiment(cfg, tmp_path / "child", init_from=parent, reset_optimizer=True)
    assert (tmp_path / "child" / "parent.json").is_file() and not (tmp_path / "child" / "checkpoints").exists()
    capsys.readouterr()
    run_experiment(cfg, tmp_path / "child", resume=True)  # the same command with --resume, no --init-from
    assert f"no checkpoint to resume from; starting afresh from {parent.resolve()}" in capsys.readouterr().err
    assert read_json(tmp_path / "child" / "run.json")["parent"]["run"] == str(parent.resolve())
    (tmp_path / "other").mkdir()  # a warm start from another run stopped before its first checkpoint
    (tmp_path / "other" / "parent.json").write_text('{"run": "/elsewhere", "id": "x", "reset_optimizer": false}')
    with pytest.raises(ConfigError, match="the run in .*other started from /elsewhere"):
        run_experiment(cfg, tmp_path / "other", resume=True, init_from=parent)
