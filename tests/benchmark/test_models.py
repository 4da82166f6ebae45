"""Loading models: the model-file contract, its failure messages, torchvision names and the shipped examples."""

from __future__ import annotations

import pickle
import textwrap
import urllib.error

import pytest
import torch

from benchmark.models.loader import Preprocessing, load_model
from benchmark.models.loaders.torchvision import default_layer
from broden.errors import BrodenError
from tests.helpers.paths import REPO

GOOD = """
import torch
NAME = "tiny"
LAYERS = ["0"]
EXTRA_TOKENS = 0
METADATA = {"architecture": "conv", "training_data": "none", "weights_sha256": "AB" * 32, "extra": (1, 2)}

def build_model():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1))

def preprocess(image):
    return torch.ones(3, 4, 4)
"""


def _write(tmp_path, text: str, name: str = "model.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_model_file_contract(tmp_path) -> None:
    path = _write(tmp_path, GOOD)
    m = load_model(str(path))
    assert m.name == "tiny" and m.layers == ["0"] and m.extra_tokens == 0 and m.source == "file"
    rec = m.record()
    assert rec["weights_sha256"] == "ab" * 32 and rec["architecture"] == "conv" and rec["training_data"] == "none"
    assert rec["metadata"]["extra"] == [1, 2] and len(rec["file_sha256"]) == 64
    # the preprocess survives pickling (DataLoader workers that are spawned re-import the file)
    pre = pickle.loads(pickle.dumps(m.preprocess))
    assert torch.equal(pre(None), torch.ones(3, 4, 4))
    assert m.preprocess.describe()["kind"] == "model-file"


@pytest.mark.parametrize(
    "text, message",
    [
        ("def build_model(:\n", "does not import .*SyntaxError"),
        ("import not_a_module_xyz\n", "does not import .*ModuleNotFoundError"),
        ("X = 1\n", "defines no build_model"),
        ("def build_model():\n    raise ValueError('no weights here')\n", "build_model\\(\\) raised ValueError: no weights here"),
        ("def build_model():\n    return 3\n", "returned int, not a torch.nn.Module"),
        ("import torch\nLAYERS = 'layer4'\ndef build_model():\n    return torch.nn.ReLU()\n", "LAYERS must be a list"),
    ],
)
def test_model_file_errors(tmp_path, text: str, message: str) -> None:
    path = _write(tmp_path, text, f"m{abs(hash(text))}.py")
    with pytest.raises(BrodenError, match=message) as info:
        load_model(str(path))
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_missing_model_file(tmp_path) -> None:
    with pytest.raises(BrodenError, match="model file not found"):
        load_model(str(tmp_path / "nope.py"))


def test_torchvision_names(monkeypatch) -> None:
    with pytest.raises(BrodenError, match="no such torchvision .*closest: resnet18"):
        load_model("torchvision:resnet17")
    arch = load_model("torchvision:resnet18", weights=False)
    assert arch.layers == ["layer4"] and arch.source == "torchvision" and arch.weights["kind"] == "random"
    assert default_layer("vit_b_16") == "encoder.layers.encoder_layer_10"

    from torchvision.models import ResNet18_Weights

    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(type(ResNet18_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    with pytest.raises(BrodenError, match=r"cannot get weights ResNet18_Weights.IMAGENET1K_V1 .*resnet18-f37072fd\.pth"):
        load_model("torchvision:resnet18")
    # the example file goes through the same message
    with pytest.raises(BrodenError, match="cannot get weights ResNet18_Weights"):
        load_model(str(REPO / "examples" / "resnet18.py"))


def test_mobilenet_example_uses_packaged_weights() -> None:
    m = load_model(str(REPO / "examples" / "mobilenet_v2.py"))
    assert m.layers == ["features.18"]
    assert m.weights_sha256 == "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
    assert m.record()["training_data"] == "ImageNet-1k"
    assert float(m.module.features[0][0].weight.detach().abs().sum()) > 1.0  # trained, not freshly initialised


def test_default_preprocess_resizes_and_normalises() -> None:
    from PIL import Image

    pre = Preprocessing((8, 6))
    x = pre(Image.new("RGB", (3, 4), (255, 0, 0)))
    assert x.shape == (3, 8, 6)
    assert torch.allclose(x[0], torch.full((8, 6), (1 - 0.485) / 0.229))
    assert pre.describe()["size"] == [8, 6] and pre.describe()["crop"] is None
    sized = Preprocessing(mean=(0.5,) * 3, sources={"mean": "model config"}).with_size((8, 6))
    assert sized.describe()["sources"] == {"size": "default", "interpolation": "default", "mean": "model config",
                                           "std": "default"}
