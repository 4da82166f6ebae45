"""ResNet-18 trained on ImageNet-1k, through torchvision's weights enum (downloaded once into torch's hub cache).

Equivalent to ``benchmark score torchvision:resnet18``; offline, with the weights not cached, the run stops with a
one-line message naming the file and where to put it.

    benchmark score examples/resnet18.py --dataset broden1_224 --layers layer3,layer4
"""

import torch
from torchvision.models import ResNet18_Weights, resnet18

from benchmark.models.loader import torchvision_state_dict

NAME = "ResNet-18 (ImageNet)"
LAYERS = ["layer4"]
WEIGHTS = ResNet18_Weights.IMAGENET1K_V1
METADATA = {
    "architecture": "ResNet-18 (torchvision resnet18)",
    "training_data": "ImageNet-1k",
    "paper": "He et al., Deep Residual Learning for Image Recognition, CVPR 2016",
    "weights_url": WEIGHTS.url,
}


def build_model() -> torch.nn.Module:
    model = resnet18()
    model.load_state_dict(torchvision_state_dict(WEIGHTS))
    return model
