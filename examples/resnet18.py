"""ResNet-18 trained on ImageNet-1k, through torchvision's weights enum (downloaded once into torch's hub cache).

Equivalent to ``benchmark score torchvision:resnet18:IMAGENET1K_V1`` (that route also takes the enum's preprocessing); offline, with the weights not cached, the run stops with a
one-line message naming the file and where to put it.

    benchmark score examples/resnet18.py --dataset broden1_224 --layers layer3,layer4
"""

import torch
from torchvision.models import ResNet18_Weights, resnet18

from benchmark.models.loaders.torchvision import state_dict

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
    model.load_state_dict(state_dict(WEIGHTS)[0])
    return model
