"""Model specs beyond model files: torchvision weights enums, timm, transformers, torch.export, ONNX, TorchScript,
--weights FILE; the preprocessing each records; the Python API against the spec route; one-line loader failures.

Every model is tiny and randomly initialised (timm's test_* models, a transformers ViT config saved to a folder),
so everything runs offline in seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import benchmark
from benchmark.cli import main
from benchmark.models.layers import LayerTaps, list_layers
from benchmark.models.loader import (
    Preprocessing,
    declared_preprocessing,
    load_model,
    resolve_preprocess,
)
from broden.errors import BrodenError
from tests.helpers.paths import REPO

FIELDS = ("size", "interpolation", "mean", "std")
FAST = {"batch_size": 6, "workers": 0, "checkpoint_every_s": 0.0, "device": "cpu", "categories": ["object", "color"]}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from broden.sample import write_sample

    return write_sample(tmp_path_factory.mktemp("specs") / "ds", num_images=12, size=64)


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory):
    """A tiny random transformers ViT classifier with a 0.5/0.5 image processor, saved as save_pretrained does."""
    import transformers as T

    folder = tmp_path_factory.mktemp("hf") / "tiny-vit"
    config = T.ViTConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                         image_size=32, patch_size=8, num_labels=3, architectures=["ViTForImageClassification"])
    torch.manual_seed(1)
    T.ViTForImageClassification(config).save_pretrained(folder)
    T.ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3,
                        resample=3).save_pretrained(folder)
    return folder


def _units(results) -> list:
    return [layer["units"] for layer in results.data["layers"]]


# -- torchvision -----------------------------------------------------------------------------------------------------
def test_torchvision_weights_enum_finds_the_packaged_file_and_records_it() -> None:
    m = load_model("torchvision:mobilenet_v2:IMAGENET1K_V1")
    assert m.weights["enum"] == "MobileNet_V2_Weights.IMAGENET1K_V1"
    assert m.weights_sha256 == "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
    assert m.layers == ["features.18"] and m.record()["weights"]["file"] == "mobilenet_v2-b0353104.pth"
    d = m.preprocess.describe()
    assert d["size"] == [224, 224] and d["crop"] is None and d["sources"] == dict.fromkeys(FIELDS, "model config")
    assert d["not_applied"] == {"resize": [256], "center_crop": [224, 224]}
    # the same tensors as the example model file, which reads the package directly
    ref = load_model(str(REPO / "examples" / "mobilenet_v2.py")).module.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in m.module.state_dict().items())


def test_torchvision_random_init_is_seeded_and_wrong_enum_is_one_line() -> None:
    a, b, c = (load_model("torchvision:squeezenet1_1:none", seed=s) for s in (3, 3, 4))
    assert a.weights == {"kind": "random", "seed": 3} and a.weights_sha256 is None
    w = [m.module.features[0].weight for m in (a, b, c)]
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])
    with pytest.raises(BrodenError, match=r"^torchvision:resnet18:IMAGENET1K_V9: resnet18 has no weights "
                                          r"'IMAGENET1K_V9'; choose one of IMAGENET1K_V1, DEFAULT, or none") as info:
        load_model("torchvision:resnet18:IMAGENET1K_V9")
    assert "\n" not in str(info.value)


def test_weights_file_loads_into_any_spec_with_its_sha256(tmp_path) -> None:
    donor = load_model("torchvision:squeezenet1_1:none", seed=7).module
    path = tmp_path / "mine.pth"
    torch.save(donor.state_dict(), path)
    m = load_model("torchvision:squeezenet1_1", weights_file=path)  # replaces DEFAULT: nothing downloaded
    assert all(torch.equal(v, donor.state_dict()[k]) for k, v in m.module.state_dict().items())
    from broden.utils.hashing import file_digests

    assert m.weights == {"kind": "file", "file": str(path), "sha256": file_digests(path)[0]}
    assert m.record()["weights_sha256"] == file_digests(path)[0]
    with pytest.raises(BrodenError, match=r"--weights .*mine.pth: does not fit torchvision:resnet18:none \(") as info:
        load_model("torchvision:resnet18:none", weights_file=path)
    assert "\n" not in str(info.value)


# -- timm ------------------------------------------------------------------------------------------------------------
def test_timm_spec_layers_shapes_and_preprocessing() -> None:
    m = load_model("timm:test_vit:none")
    assert m.source == "timm" and m.layers == ["blocks.5"] and m.extra_tokens == 1
    assert m.weights == {"kind": "random", "seed": 0}
    d = m.preprocess.describe()
    assert (d["size"], d["mean"], d["std"], d["interpolation"]) == ([160, 160], [0.5] * 3, [0.5] * 3, "bicubic")
    assert d["sources"] == dict.fromkeys(FIELDS, "model config") and d["crop"] is None
    assert d["not_applied"] == {"crop_pct": 0.95, "crop_mode": "center"}
    acts = LayerTaps(m.module.eval(), ["blocks.5", "blocks.0"], m.extra_tokens).run(torch.zeros(2, 3, 160, 160))
    assert acts["blocks.5"].shape == (2, 64, 10, 10) and acts["blocks.0"].shape == (2, 64, 10, 10)
    conv = load_model("timm:test_convnext:none")
    assert conv.layers == ["stages.3"] and conv.extra_tokens is None
    rows = {r["name"]: r for r in list_layers(conv.module.eval(), (160, 160))}
    assert rows["stages.3"]["grid"] == "64x5x5"


@pytest.mark.parametrize("spec, message", [
    ("timm:resnet17", r"^timm:resnet17: no such timm model; closest: "),
    ("timm:test_resnet:pretrained", r"unknown option 'pretrained'; use timm:test_resnet \(pretrained\) or timm:test_resnet:none"),
    ("timm:resnet18", r"^timm:resnet18: cannot get the pretrained weights .*timm:resnet18:none for random weights$"),
])
def test_timm_failures_are_one_line(spec: str, message: str) -> None:
    with pytest.raises(BrodenError, match=message) as info:  # HF_HUB_OFFLINE=1: no download is attempted
        load_model(spec)
    assert "\n" not in str(info.value)


# -- transformers ----------------------------------------------------------------------------------------------------
def test_hf_folder_layers_tokens_and_processor_preprocessing(vit_dir) -> None:
    m = load_model(f"hf:{vit_dir}")
    assert m.source == "hf" and m.layers == ["vit.layers.1"] and m.name == "tiny-vit"
    assert type(m.module).__name__ == "ViTForImageClassification"
    d = m.preprocess.describe()
    assert (d["size"], d["mean"], d["std"], d["interpolation"]) == ([32, 32], [0.5] * 3, [0.5] * 3, "bicubic")
    assert d["sources"] == dict.fromkeys(FIELDS, "model config") and d["crop"] is None
    from broden.utils.hashing import file_digests

    assert m.weights["files"] == {"model.safetensors": file_digests(vit_dir / "model.safetensors")[0]}
    assert m.weights_sha256 == m.weights["files"]["model.safetensors"]
    acts = LayerTaps(m.module.eval(), ["vit.layers.1"], m.extra_tokens).run(torch.zeros(3, 3, 32, 32))
    assert acts["vit.layers.1"].shape == (3, 16, 4, 4)  # 1 class token + 4x4 patches -> a 4x4 grid of 16 units


def test_hf_backbones_deit_dino_swin_convnext_fold_to_grids() -> None:
    import transformers as T

    from benchmark.models.loaders import hf

    small_vit = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
                 "image_size": 32, "patch_size": 8}
    cases = [
        (T.DeiTConfig(**small_vit), (16, 4, 4), 2),
        (T.Dinov2Config(**small_vit), (16, 4, 4), None),
        (T.Dinov2WithRegistersConfig(**small_vit, num_register_tokens=4), (16, 4, 4), 5),
        (T.SwinConfig(embed_dim=8, depths=[1, 1], num_heads=[1, 1], image_size=32, patch_size=4, window_size=2),
         (16, 4, 4), None),
        (T.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2), (16, 4, 4), None),  # /4 stem, /2
    ]
    for config, shape, extra in cases:
        model = T.AutoModel.from_config(config).eval()
        assert hf.extra_tokens(model) == extra, config.model_type
        layer = hf.default_layer(model)
        acts = LayerTaps(model, [layer], hf.extra_tokens(model)).run(torch.zeros(2, 3, 32, 32))
        assert acts[layer].shape == (2, *shape), (config.model_type, layer)


def test_hf_failures_are_one_line(tmp_path) -> None:
    for spec, message in [
        ("hf:nobody/no-such-model", (r"^hf:nobody/no-such-model: cannot read the model config \(not in the local "
                                     r"Hugging Face cache.*pass hf:/that/folder$")),
        (f"hf:{tmp_path}/missing", r"folder not found; pass hf:/path/to/a/folder saved with save_pretrained"),
        (f"hf:{tmp_path}", r"cannot read the model config \(no config.json there\)"),
    ]:
        with pytest.raises(BrodenError, match=message) as info:
            load_model(spec)
        assert "\n" not in str(info.value)


# -- preprocessing ---------------------------------------------------------------------------------------------------
def test_in_memory_modules_get_their_declared_preprocessing(vit_dir) -> None:
    import timm
    import transformers as T

    timm_pre = declared_preprocessing(timm.create_model("test_resnet"))
    assert timm_pre.mean == (0.5,) * 3 and timm_pre.size == (160, 160) and timm_pre.declared_by.startswith("timm")
    hf_pre = declared_preprocessing(T.AutoModelForImageClassification.from_pretrained(vit_dir))
    assert hf_pre.mean == (0.5,) * 3 and hf_pre.size == (32, 32)
    assert declared_preprocessing(nn.Conv2d(3, 3, 1)) is None


def test_custom_statistics_that_differ_from_the_declared_ones_warn(capsys) -> None:
    import timm

    from benchmark.models.loader import from_module

    model = from_module(timm.create_model("test_resnet"), name="tr")
    model.preprocess = Preprocessing(sources=dict.fromkeys(FIELDS, "caller"))  # ImageNet statistics
    pre = resolve_preprocess(model, (64, 64))
    err = capsys.readouterr().err
    assert err.startswith("warning: tr: the model declares mean [0.5, 0.5, 0.5] std [0.5, 0.5, 0.5]") and err.count("\n") == 1
    assert pre.describe()["warnings"] == [err[len("warning: "):].strip()]

    def imagenet(image):  # an opaque function: its statistics are measured from a black and a white image
        return Preprocessing((64, 64))(image)

    model.preprocess = imagenet
    pre = resolve_preprocess(model, (64, 64))
    assert pre.describe()["measured"] == {"size": [64, 64], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    assert "declares mean [0.5, 0.5, 0.5]" in capsys.readouterr().err
    model.preprocess = None
    assert resolve_preprocess(model, (64, 64)).mean == (0.5,) * 3 and capsys.readouterr().err == ""


# -- export, ONNX, TorchScript, state dicts --------------------------------------------------------------------------
def _convnet() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, stride=2, padding=1)).eval()


def test_torch_export_program_keeps_layer_names(tmp_path) -> None:
    net, x = _convnet(), torch.randn(2, 3, 32, 32)
    path = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(net, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},)), path)
    m = load_model(str(path))
    assert m.source == "export" and m.preprocess.size == (32, 32) and m.preprocess.sources["size"] == "model file"
    acts = LayerTaps(m.module, ["2", "0"]).run(x)
    with torch.no_grad():
        assert torch.allclose(acts["2"], net(x), atol=1e-6) and acts["0"].shape == (2, 4, 16, 16)
    static = tmp_path / "static.pt2"
    torch.export.save(torch.export.export(net, (x,)), static)
    with pytest.raises(BrodenError, match=r"exported for batches of exactly 2; re-export with torch.export.export"):
        load_model(str(static))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_model_converts_and_corrupt_onnx_is_one_line(tmp_path) -> None:
    net, x = _convnet(), torch.randn(2, 3, 32, 32)
    path = tmp_path / "net.onnx"
    torch.onnx.export(net, (x[:1],), path, dynamo=False, input_names=["input"], dynamic_axes={"input": {0: "batch"}})
    m = load_model(str(path))
    assert m.source == "onnx" and m.preprocess.size == (32, 32) and len(m.weights["sha256"]) == 64
    names = [n for n, _ in m.module.named_modules() if n]
    acts = LayerTaps(m.module, [names[-1]]).run(x)
    with torch.no_grad():
        assert torch.allclose(acts[names[-1]], net(x), atol=1e-5)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not a protobuf model")
    with pytest.raises(BrodenError, match=r"bad.onnx: not a valid ONNX model .*re-export it with torch.onnx.export$") as info:
        load_model(str(bad))
    assert "\n" not in str(info.value)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_and_state_dict_files_say_what_works_instead(tmp_path) -> None:
    net = _convnet()
    script = tmp_path / "net.pt"
    torch.jit.save(torch.jit.script(net), script)
    with pytest.raises(BrodenError, match=r"net.pt: a TorchScript module, whose layers cannot be tapped .*"
                                          r"pass model.pt2, or pass an ONNX export or a .py model file") as info:
        load_model(str(script))
    assert "\n" not in str(info.value)
    weights = tmp_path / "weights.pth"
    torch.save(net.state_dict(), weights)
    with pytest.raises(BrodenError, match=r"weights.pth: holds a state dict, not a model; .*--weights .*weights.pth"):
        load_model(str(weights))


def test_unknown_spec_prefix_is_one_line() -> None:
    with pytest.raises(BrodenError, match=r"^timmm:resnet18: unknown model spec prefix 'timmm' \(did you mean timm:\?\); "
                                          r"use one of: .*torchvision:NAME\[:WEIGHTS\]"):
        load_model("timmm:resnet18")


# -- the Python API and the command line -----------------------------------------------------------------------------
def test_spec_route_and_in_memory_module_give_identical_results(small, vit_dir, tmp_path) -> None:
    import transformers as T

    by_spec = benchmark.score(f"hf:{vit_dir}", small.path, out=tmp_path / "spec", **FAST)
    module = T.AutoModelForImageClassification.from_pretrained(vit_dir)
    in_memory = benchmark.score(module, small, layers="vit.layers.1", **FAST)
    assert _units(by_spec) == _units(in_memory) and by_spec.data["layers"][0]["shape"] == [16, 4, 4]
    spec_pre, mem_pre = (r.data["protocol"]["preprocess"] for r in (by_spec, in_memory))
    assert spec_pre == mem_pre and spec_pre["mean"] == [0.5] * 3 and spec_pre["crop"] is None
    assert by_spec.data["model"]["source"] == "hf" and in_memory.data["model"]["source"] == "module"
    assert len(in_memory.data["model"]["weights"]["parameters_sha256"]) == 64


def test_timm_spec_and_module_agree_and_results_api(small, tmp_path) -> None:
    import timm

    spec = benchmark.score("timm:test_resnet:none", small, out=tmp_path / "spec", **FAST)
    torch.manual_seed(0)
    module = timm.create_model("test_resnet")
    mem = benchmark.score(module, str(small.path), layers=["layer4"], **FAST)
    assert _units(spec) == _units(mem)
    assert spec.data["protocol"]["preprocess"]["sources"] == dict.fromkeys(FIELDS, "model config")
    assert spec.data["protocol"]["amp"] is False and spec.data["environment"]["device"] == "cpu"
    assert spec.summary()["layer4"]["units"] == 96
    units = mem.units()
    assert len(units) == 96 and list(units.columns[:5]) == ["layer", "unit", "category", "label", "iou"]
    saved = mem.save(tmp_path / "kept")
    assert saved.is_file() and (tmp_path / "kept" / "top_maps.npz").is_file()
    again = benchmark.load_results(tmp_path / "kept")
    assert again.data == mem.data
    index = again.report()
    assert index.is_file() and index.parent == tmp_path / "kept" / "report"
    with pytest.raises(BrodenError, match="unknown setting 'batchsize'"):
        benchmark.score(module, small, batchsize=3)


def test_score_json_quiet_and_layers_command(small, vit_dir, tmp_path, capsys) -> None:
    args = ["score", f"hf:{vit_dir}", "--dataset", str(small.path), "--out", str(tmp_path / "o"), "--workers", "0",
            "--batch-size", "6", "--categories", "object,color", "--quiet"]
    assert main([*args, "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["skipped"] is False and summary["layers"][0]["name"] == "vit.layers.1"
    assert summary["layers"][0]["units"] == 16 and summary["model"]["source"] == "hf"
    assert captured.err == ""
    assert main(args) == 0 and capsys.readouterr().out == ""  # --quiet: nothing on stdout
    assert main(["layers", f"hf:{vit_dir}", "--dissectable"]) == 0
    text = capsys.readouterr().out
    line = next(x for x in text.splitlines() if x.startswith("vit.layers.1 "))
    assert "1x17x16" in line and "16x4x4" in line and "(default)" in line


def test_import_benchmark_stays_light() -> None:
    code = "import sys, benchmark; assert 'torch' not in sys.modules; print(benchmark.score.__module__, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert out.returncode == 0 and out.stdout.split() == ["benchmark.api", "False"], out.stderr


def test_amp_is_off_by_default_and_recorded_when_on(small) -> None:
    plain = benchmark.score(_convnet(), small, layers="2", **FAST)
    mixed = benchmark.score(_convnet(), small, layers="2", amp=True, **FAST)
    assert plain.data["protocol"]["amp"] is False and mixed.data["protocol"]["amp"] is True
    assert plain.data["environment"]["run_key"] != mixed.data["environment"]["run_key"]
    thresholds = [[u["threshold"] for u in r.data["layers"][0]["units"]] for r in (plain, mixed)]
    assert thresholds[0] != thresholds[1]  # bfloat16 on the CPU: the activations change, hence off by default
    assert np.allclose(thresholds[0], thresholds[1], rtol=0.05)
