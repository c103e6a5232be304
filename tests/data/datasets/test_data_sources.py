"""The source registry and data.<source> option sections: typed options, unknown keys, missing
paths; the `mtlrec datasets` listing; a run directory re-loads the same predefined splits."""

from __future__ import annotations

import pytest

from mtlrec.config import parse_config
from mtlrec.data.sources import SOURCES, load_source
from mtlrec.errors import ConfigError

ADAPTERS = ("census_income", "ali_ccp", "aliexpress", "taobao_userbehavior")


def data(**keys):
    return parse_config({"data": keys}).data


def test_every_adapter_is_registered_and_described():
    for name in ADAPTERS:
        cls = SOURCES.get(name)
        assert cls.description and cls.path_help and cls.tasks, name


@pytest.mark.parametrize(
    "keys, message",
    [
        ({"taobao_userbehavior": {"negativs": 2}}, r"data.taobao_userbehavior.negativs: unknown hyperparameter; expected one of: negatives, history"),
        ({"taobao_userbehavior": {"negatives": -1}}, r"data.taobao_userbehavior.negatives: Input should be greater than or equal to 0"),
        ({"ali_ccp": {"unclicked_purchases": "ignore"}}, r"data.ali_ccp.unclicked_purchases: Input should be 'drop' or 'keep'"),
        ({"census_income": {"rows": 5}}, r"data.census_income.rows: unknown hyperparameter; expected one of: numeric_categories, min_count"),
        ({"nosuch": {"a": 1}}, r"data.nosuch: unknown key \(not a registered data source"),
    ],
)
def test_option_sections_are_checked(keys, message):
    # every section present is checked, even when another source is chosen
    with pytest.raises(ConfigError, match=message):
        load_source(data(source="taobao_userbehavior", path="/nonexistent/x.csv", **keys))


def test_a_scalar_stray_key_is_a_config_error():
    with pytest.raises(ConfigError, match=r"data: unknown key 'pth'"):
        data(source="census_income", pth="x")


def test_path_errors_say_what_the_source_reads(tmp_path):
    with pytest.raises(ConfigError, match=r"data.path: .*nope does not exist \(data.source 'aliexpress' reads one AliExpress CSV"):
        load_source(data(source="aliexpress", path=str(tmp_path / "nope")))
    with pytest.raises(ConfigError, match=r"data.path: .* is a folder; taobao_userbehavior reads the UserBehavior.csv"):
        load_source(data(source="taobao_userbehavior", path=str(tmp_path)))


def test_datasets_command_lists_the_adapters(capsys):
    from mtlrec.cli.main import main

    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ADAPTERS + ("synthetic", "file"):
        assert f"\n{name} " in "\n" + out, name
    assert "options: negatives=4, history=20, seed=0, split_by_time=True" in out
    assert "tasks: income, marital" in out


def test_run_directory_config_reloads_the_same_splits(shared, tmp_path):
    """The saved config keeps data.<source> sections; evaluate re-loads the same valid/test rows."""
    import yaml

    from mtlrec.experiment import load_splits

    path = shared("ali-ccp/paddlerec_esmm_raw")
    raw = {"data": {"source": "ali_ccp", "path": str(path), "ali_ccp": {"unclicked_purchases": "keep"},
                    "split": {"seed": 3}}}  # fmt: skip
    cfg = parse_config(raw)
    again = parse_config(yaml.safe_load(yaml.safe_dump(cfg.to_dict())))
    assert again.data.section("ali_ccp") == {"unclicked_purchases": "keep"}
    a, b = load_splits(cfg)[1], load_splits(again)[1]
    assert all(a[k].equals(b[k]) for k in ("train", "valid", "test"))
