"""The monitored validation number: nan where a task has no value, which epoch wins then, and the
warnings that say so when the data is prepared."""

from __future__ import annotations

import math

import pytest
import torch

from mtlrec.data.batches import EncodedData
from mtlrec.spec import TaskSpec
from mtlrec.train.monitor import better, monitored_value, single_class_warnings

NAN = math.nan
TASKS = (TaskSpec("click", "binary"), TaskSpec("purchase", "binary", where="click"), TaskSpec("value", "regression"))


def test_the_mean_is_over_the_tasks_that_have_a_value():
    metrics = {"click": {"auc": 0.7}, "purchase": {"auc": NAN}, "value": {"rmse": 2.0}}
    assert monitored_value("mean.auc", metrics) == 0.7
    assert math.isnan(monitored_value("purchase.auc", metrics))
    assert math.isnan(monitored_value("mean.auc", {"click": {"auc": NAN}, "purchase": {"auc": NAN}}))
    assert monitored_value("value.rmse", metrics) == -2.0  # larger is better


def test_which_epoch_is_better():
    assert better(0.7, 0.6) and not better(0.6, 0.7) and not better(0.6, 0.6)
    assert better(0.6, NAN)  # a number beats nan
    assert not better(NAN, 0.6)  # nan never beats a number
    assert better(NAN, NAN)  # no value at all: the later epoch


def encoded(click: list[int], purchase: list[int]) -> EncodedData:
    """Rows with click and purchase labels (purchase on clicked rows only) and a regression label."""
    n = len(click)
    labels = {"click": torch.tensor(click, dtype=torch.float32),
              "purchase": torch.tensor(purchase, dtype=torch.float32), "value": torch.zeros(n)}  # fmt: skip
    masks = {"click": torch.ones(n, dtype=torch.bool), "purchase": torch.tensor(click, dtype=torch.bool),
             "value": torch.ones(n, dtype=torch.bool)}  # fmt: skip
    return EncodedData(torch.zeros(n, 0, dtype=torch.long), torch.zeros(n, 0, 0, dtype=torch.long),
                       torch.zeros(n, 0), labels, masks)  # fmt: skip


BOTH = encoded([1, 0, 1, 1], [1, 0, 0, 1])


def test_no_warning_when_every_task_has_both_classes():
    assert single_class_warnings(TASKS, {"train": BOTH, "valid": BOTH, "test": BOTH}, "mean.auc") == []


def test_one_class_in_valid_names_task_and_split_and_what_early_stopping_does():
    valid = encoded([1, 0, 1, 0], [0, 0, 0, 0])
    assert single_class_warnings(TASKS, {"train": BOTH, "valid": valid}, "mean.auc") == [
        "task 'purchase': the valid split has only one class (all 0) on its 2 rows where click = 1; its auc, "
        "gauc, calibration are undefined, so early stopping (mean.auc) uses the other tasks (click)"
    ]
    [line] = single_class_warnings(TASKS, {"valid": valid}, "purchase.auc")
    assert line.endswith("so train.monitor 'purchase.auc' has no value (early stopping keeps the last epoch)")
    [line] = single_class_warnings(TASKS, {"valid": valid}, "click.auc")  # the monitor does not need purchase
    assert line.endswith("its auc, gauc, calibration are undefined")


def test_every_task_with_one_class_leaves_the_mean_without_a_value():
    valid = encoded([1, 1, 1], [1, 1, 1])
    lines = single_class_warnings(TASKS, {"valid": valid}, "mean.auc")
    assert lines[0] == (
        "task 'click': the valid split has only one class (all 1) on its 3 rows; its auc, gauc are undefined, "
        "so train.monitor 'mean.auc' has no value (early stopping keeps the last epoch)"
    )
    assert lines[1].startswith("task 'purchase': the valid split has only one class (all 1) on its 3 rows where")


def test_an_empty_sample_space_and_the_train_and_test_splits():
    no_click = encoded([0, 0], [0, 0])
    lines = single_class_warnings(TASKS, {"train": no_click, "test": no_click}, "mean.auc")
    assert lines == [
        "task 'click': the train split has only one class (all 0) on its 2 rows; the model cannot learn to "
        "tell its classes apart",
        "task 'purchase': the train split has no rows where click = 1; the model cannot learn to tell its "
        "classes apart",
        "task 'click': the test split has only one class (all 0) on its 2 rows; its auc, gauc, calibration "
        "are undefined",
        "task 'purchase': the test split has no rows where click = 1; its auc, gauc, logloss, calibration, "
        "accuracy, precision, recall, f1 are undefined",
    ]


@pytest.mark.parametrize("split", ["valid", "test"])
def test_an_empty_split_gets_one_line(split):
    lines = single_class_warnings(TASKS, {"train": BOTH, split: encoded([], [])}, "mean.auc")
    keeps = ", and early stopping keeps the last epoch" if split == "valid" else ""
    assert lines == [f"the {split} split has no rows (data.split.{split}: 0): it has no metrics{keeps}"]
