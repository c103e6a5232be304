"""The reusable blocks against naive references: batched experts, gates, cross layers."""

from __future__ import annotations

import pytest
import torch

from mtlrec.nn import MLP, CrossNetwork, Experts, Gate, feature_interaction, mix, utilisation


def test_batched_experts_equal_independent_mlps():
    torch.manual_seed(0)
    experts = Experts(5, 3, (7, 4))
    x = torch.randn(10, 5)
    got = experts(x)
    assert got.shape == (10, 3, 4) and experts.out_dim == 4
    for k in range(3):
        mlp = MLP(5, (7, 4))
        with torch.no_grad():
            for layer, w, b in zip([m for m in mlp.net if isinstance(m, torch.nn.Linear)], experts.weights, experts.biases):
                layer.weight.copy_(w[k].T)
                layer.bias.copy_(b[k, 0])
        torch.testing.assert_close(got[:, k], mlp(x))


def test_gate_weights_sum_to_one_and_are_recorded_only_while_training():
    torch.manual_seed(0)
    gate = Gate(3, ["a", "b"])
    x, y = torch.randn(6, 3), torch.randn(2, 3)
    w = torch.cat([gate(x), gate(y), gate(torch.zeros(0, 3))])  # an empty batch changes nothing
    torch.testing.assert_close(w.sum(1), torch.ones(8))
    mean = w.mean(0).tolist()  # over all 8 rows seen
    assert gate.utilisation() == pytest.approx({"a": mean[0], "b": mean[1]}, abs=1e-5)
    assert gate.utilisation() is None  # reset after reading
    gate.eval()
    gate(x)
    assert gate.utilisation() is None and utilisation({"g": gate}) == {}
    gate.train()
    mean = gate(x).mean(0).tolist()
    assert utilisation({"g": gate}) == {"experts": {"g": pytest.approx({"a": mean[0], "b": mean[1]}, abs=1e-5)}}


def test_mix_is_the_gate_weighted_sum():
    w, h = torch.softmax(torch.randn(4, 3), -1), torch.randn(4, 3, 5)
    torch.testing.assert_close(mix(w, h), sum(w[:, k : k + 1] * h[:, k] for k in range(3)))


def test_cross_layers_follow_dcn_v2():
    torch.manual_seed(0)
    net = CrossNetwork(6, 2)
    x0 = torch.randn(4, 6)
    x1 = x0 * (x0 @ net.layers[0].weight.T + net.layers[0].bias) + x0
    x2 = x0 * (x1 @ net.layers[1].weight.T + net.layers[1].bias) + x1
    torch.testing.assert_close(net(x0), x2)


def test_the_feature_interaction_bottom():
    plain = feature_interaction("mlp", 6, 3)
    assert not list(plain.parameters()) and plain.out_dim == 6
    x = torch.randn(2, 6)
    assert torch.equal(plain(x), x)
    cross = feature_interaction("dcn", 6, 3)
    assert isinstance(cross, CrossNetwork) and len(cross.layers) == 3 and cross.out_dim == 6
    with pytest.raises(ValueError, match="model.bottom"):
        feature_interaction("fm", 6, 3)
