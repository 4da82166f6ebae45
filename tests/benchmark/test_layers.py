"""Layer taps: dotted names, several layers in one pass, token grids, vectors and tuples, the layer listing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmark.models.layers import LayerTaps, list_layers, resolve_layers, to_grid, token_grid_size
from broden.errors import BrodenError


class Explodes(nn.Module):
    def forward(self, x):
        raise AssertionError("the forward pass should stop after the last tapped layer")


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()),
        nn.Sequential(nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU()),
        Explodes(),
    ).eval()


class Tokens(nn.Module):
    """(B, extra + side*side, C) tokens: token t of image b, channel c = 1000*extra_flag + t*10 + c."""

    def __init__(self, extra: int, side: int, channels: int = 3) -> None:
        super().__init__()
        self.extra, self.side, self.channels = extra, side, channels
        self.block = nn.Identity()

    def forward(self, x):
        n = self.extra + self.side * self.side
        t = torch.arange(n, dtype=torch.float32)[None, :, None] * 10 + torch.arange(self.channels)[None, None, :]
        return self.block(t.expand(x.shape[0], n, self.channels))


class Pair(nn.Module):
    def forward(self, x):
        return (x * 2, "aux")


def test_nested_layers_in_one_pass_and_early_stop() -> None:
    net = _net()
    x = torch.randn(2, 3, 16, 16)
    out = LayerTaps(net, ["1.0", "0"]).run(x)
    assert list(out) == ["1.0", "0"]
    assert out["0"].shape == (2, 4, 16, 16) and out["1.0"].shape == (2, 6, 8, 8)
    with torch.no_grad():
        first = net[0](x)
        assert torch.equal(out["0"], first)
        assert torch.equal(out["1.0"], net[1][0](first))


def test_unknown_layer_lists_closest_names() -> None:
    with pytest.raises(BrodenError, match=r"layer '1\.O' not found.*closest: .*1\.0"):
        resolve_layers(_net(), ["1.O"])
    with pytest.raises(BrodenError, match="benchmark layers"):
        resolve_layers(_net(), ["zzzzzzzz"])


def test_tokens_fold_into_grid_dropping_class_token() -> None:
    grid = LayerTaps(Tokens(1, 4), ["block"]).run(torch.zeros(2, 3, 8, 8))["block"]
    assert grid.shape == (2, 3, 4, 4)
    # grid[b, c, i, j] is patch token 1 + i*4 + j (token 0 is the class token)
    assert grid[0, 2, 1, 3] == (1 + 1 * 4 + 3) * 10 + 2
    assert grid[1, 0, 0, 0] == 10


def test_token_counts() -> None:
    assert token_grid_size(197, None, "x") == (1, 14)
    assert token_grid_size(196, None, "x") == (0, 14)
    assert token_grid_size(200, 4, "x") == (4, 14)
    with pytest.raises(BrodenError, match="198 tokens do not form a square grid.*EXTRA_TOKENS"):
        token_grid_size(198, None, "x")
    with pytest.raises(BrodenError, match="197 tokens .* with 4 extra"):
        token_grid_size(197, 4, "x")
    grid = LayerTaps(Tokens(4, 3), ["block"], extra_tokens=4).run(torch.zeros(1, 3, 8, 8))["block"]
    assert grid.shape == (1, 3, 3, 3) and grid[0, 0, 0, 0] == 40


def test_vectors_rejected_and_tuples_use_first_tensor() -> None:
    with pytest.raises(BrodenError, match=r"layer 'fc'.*\(batch, 5\) vector"):
        to_grid(torch.zeros(2, 5), "fc")
    with pytest.raises(BrodenError, match="not a tensor"):
        to_grid({"a": 1}, "d")
    net = nn.Sequential(Pair())
    x = torch.randn(1, 3, 4, 4)
    assert torch.equal(LayerTaps(net, ["0"]).run(x)["0"], x * 2)


def test_uncalled_layer_is_an_error() -> None:
    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Conv2d(3, 2, 1), nn.Conv2d(3, 2, 1)

        def forward(self, x):
            return self.used(x)

    with pytest.raises(BrodenError, match="'unused' was not called"):
        LayerTaps(Skips(), ["unused"]).run(torch.zeros(1, 3, 4, 4))


def test_list_layers_shapes() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    rows = {r["name"]: r for r in list_layers(net, (32, 32))}
    assert rows["0"]["output"] == "1x4x16x16" and rows["0"]["grid"] == "4x16x16"
    assert rows["2"]["grid"] is None and rows["3"]["output"] == "1x2"
