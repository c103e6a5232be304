"""Masked per-task losses against hand computations, and what the mask hides."""

from __future__ import annotations

import math

import pytest
import torch

from mtlrec.data.batches import TensorBatch
from mtlrec.losses import masked_loss, task_losses, to_predictions
from mtlrec.spec import TaskSpec

B, K = 6, 3
MASK = torch.tensor([True, False, True, True, False, True])


def _bce(x: float, y: float) -> float:
    p = 1.0 / (1.0 + math.exp(-x))
    return -(y * math.log(p) + (1.0 - y) * math.log(1.0 - p))


def _poisson(log_rate: float, y: float) -> float:
    """The unit deviance 2 (y log(y / mu) - y + mu) at mu = exp(log_rate)."""
    mu = math.exp(log_rate)
    return 2.0 * ((y * math.log(y / mu) if y > 0 else 0.0) - y + mu)


def _huber(d: float) -> float:
    return 0.5 * d * d if abs(d) < 1.0 else abs(d) - 0.5


def _cross_entropy(row: list[float], y: int) -> float:
    return -(row[y] - math.log(sum(math.exp(v) for v in row)))


def hand(task: TaskSpec, logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> float:
    """The mean over masked rows of each row's loss, one Python float at a time."""
    rows = []
    for i in range(len(mask)):
        if not mask[i]:
            continue
        x, t = logits[i].tolist(), y[i].tolist()
        if task.kind == "multilabel":
            rows.append(sum(_bce(a, b) for a, b in zip(x, t)) / len(x))
        elif task.kind == "multiclass":
            rows.append(_cross_entropy(x, t))
        elif task.kind == "binary":
            rows.append(_bce(x, t))
        elif task.loss_name == "huber":
            rows.append(_huber(x - t))
        elif task.loss_name == "poisson":
            rows.append(_poisson(x, t))
        else:
            rows.append((x - t) ** 2)
    return sum(rows) / len(rows) if rows else 0.0


def example(task: TaskSpec, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    if task.kind == "binary":
        return torch.randn(B, generator=g) * 2, torch.randint(0, 2, (B,), generator=g).float()
    if task.loss_name == "poisson":  # log rates; counts with zeros
        return torch.randn(B, generator=g), torch.randint(0, 4, (B,), generator=g).float()
    if task.kind == "regression":  # differences both below and above huber's delta of 1
        return torch.randn(B, generator=g) * 2, torch.randn(B, generator=g) * 2
    if task.kind == "multiclass":
        return torch.randn(B, K, generator=g), torch.randint(0, K, (B,), generator=g)
    return torch.randn(B, K, generator=g), torch.randint(0, 2, (B, K), generator=g).float()


TASKS = [
    TaskSpec("click", "binary"),
    TaskSpec("value", "regression"),
    TaskSpec("value_huber", "regression", loss="huber"),
    TaskSpec("units", "regression", loss="poisson"),
    TaskSpec("segment", "multiclass", n_classes=K),
    TaskSpec("interests", "multilabel", n_classes=K),
]
IDS = [t.name for t in TASKS]


@pytest.mark.parametrize("task", TASKS, ids=IDS)
def test_masked_loss_equals_a_hand_computation(task):
    logits, y = example(task)
    for mask in (MASK, torch.ones(B, dtype=torch.bool)):
        got = masked_loss(task, logits, y, mask)
        assert got.dim() == 0
        assert got.item() == pytest.approx(hand(task, logits, y, mask), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("task", TASKS, ids=IDS)
def test_rows_outside_the_mask_do_not_count(task):
    logits, y = example(task)
    outside = ~MASK
    logits2, y2 = logits.clone(), y.clone()
    logits2[outside] = logits[outside] * 10 + 3
    if task.kind == "multiclass":
        y2[outside] = (y[outside] + 1) % K
    elif task.kind == "regression":
        y2[outside] = y[outside] + 5
    else:
        y2[outside] = 1 - y[outside]
    assert (logits2 != logits).any() and (y2 != y).any()
    assert masked_loss(task, logits2, y2, MASK).item() == masked_loss(task, logits, y, MASK).item()


@pytest.mark.parametrize("task", TASKS, ids=IDS)
def test_no_gradient_reaches_rows_outside_the_mask(task):
    logits, y = example(task)
    logits.requires_grad_(True)
    masked_loss(task, logits, y, MASK).backward()
    grad = logits.grad.reshape(B, -1)
    assert (grad[~MASK] == 0).all()
    assert (grad[MASK].abs().sum(-1) > 0).all()


@pytest.mark.parametrize("task", TASKS, ids=IDS)
def test_an_empty_sample_space_gives_zero_with_a_gradient_path(task):
    logits, y = example(task)
    logits.requires_grad_(True)
    loss = masked_loss(task, logits, y, torch.zeros(B, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert (logits.grad == 0).all()


def test_task_losses_are_named_and_use_each_tasks_mask():
    logits, labels = {}, {}
    for t in TASKS:
        logits[t.name], labels[t.name] = example(t)
    masks = {t.name: MASK if i % 2 else torch.ones(B, dtype=torch.bool) for i, t in enumerate(TASKS)}
    batch = TensorBatch(torch.zeros(B, 0, dtype=torch.long), torch.zeros(B, 0, 0, dtype=torch.long),
                        torch.zeros(B, 0), labels, masks)  # fmt: skip
    losses = task_losses(TASKS, logits, batch)
    assert list(losses) == IDS
    for t in TASKS:
        want = hand(t, logits[t.name], labels[t.name], masks[t.name])
        assert losses[t.name].item() == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_predictions_per_kind():
    x = torch.tensor([-1.0, 0.0, 2.0])
    assert torch.allclose(to_predictions(TaskSpec("c", "binary"), x), torch.sigmoid(x))
    assert torch.equal(to_predictions(TaskSpec("v", "regression"), x), x)
    assert torch.allclose(to_predictions(TaskSpec("v", "regression", transform="log1p"), x), torch.expm1(x))
    m = torch.randn(4, K)
    probs = to_predictions(TaskSpec("s", "multiclass", n_classes=K), m)
    assert torch.allclose(probs.sum(-1), torch.ones(4))
    assert torch.allclose(to_predictions(TaskSpec("i", "multilabel", n_classes=K), m), torch.sigmoid(m))


def test_poisson_loss_is_zero_at_a_perfect_fit_and_its_gradient_is_twice_mu_minus_y():
    task = TaskSpec("units", "regression", loss="poisson")
    y = torch.tensor([0.0, 1.0, 2.5, 7.0])  # a zero count; non-integer counts (kg) are allowed
    fit = torch.log(y.clamp_min(1e-30)).requires_grad_(True)  # mu = y (mu -> 0 where y = 0)
    assert masked_loss(task, fit, y, torch.ones(4, dtype=torch.bool)).item() == pytest.approx(0.0, abs=1e-6)
    log_rate = torch.tensor([0.3, -1.0, 1.0, 2.0], requires_grad=True)
    masked_loss(task, log_rate, y, torch.ones(4, dtype=torch.bool)).backward()
    assert torch.allclose(log_rate.grad, 2.0 * (log_rate.detach().exp() - y) / 4)  # the mean over 4 rows
    assert to_predictions(task, torch.log(y[1:])).tolist() == pytest.approx(y[1:].tolist())  # expected counts
    # the encoder divides counts by their train mean m: target (0, m); predictions come back as counts
    assert to_predictions(task, torch.zeros(2), (0.0, 3.5)).tolist() == [3.5, 3.5]


@pytest.mark.parametrize("task", TASKS, ids=IDS)
def test_bfloat16_autocast_counts_and_sums_rows_in_float32(task):
    """Under ``precision: bfloat16`` the logits are bf16; the mean must still divide by the exact
    row count (a bf16 count of 1001 rows is 1000) and sum in float32."""
    n, width = 1500, task.out_dim
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=g)
    linear = torch.nn.Linear(4, width)
    y = example_labels(task, n, g)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.randperm(n, generator=g)[:1001]] = True
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = linear(x)
        logits = logits.squeeze(-1) if width == 1 else logits
        assert logits.dtype == torch.bfloat16
        got = masked_loss(task, logits, y, mask)
    assert got.dtype == torch.float32
    want = hand(task, logits.float(), y, mask)  # the float32 mean of the very same bf16 logits
    assert got.item() == pytest.approx(want, rel=1e-6)


def example_labels(task: TaskSpec, n: int, g: torch.Generator) -> torch.Tensor:
    if task.kind == "binary":
        return torch.randint(0, 2, (n,), generator=g).float()
    if task.loss_name == "poisson":
        return torch.randint(0, 4, (n,), generator=g).float()
    if task.kind == "regression":
        return torch.randn(n, generator=g)
    if task.kind == "multiclass":
        return torch.randint(0, K, (n,), generator=g)
    return torch.randint(0, 2, (n, K), generator=g).float()
