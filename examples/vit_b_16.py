"""ViT-B/16 trained on ImageNet-1k (torchvision), dissected at a late encoder block.

The encoder blocks output tokens (B, 197, 768): the class token is dropped (EXTRA_TOKENS = 1) and the 196 patch
tokens are folded into a 14x14 grid of 768 units. Weights come through torchvision's enum (downloaded once).

    benchmark score examples/vit_b_16.py --dataset broden1_224
"""

import torch
from torchvision.models import ViT_B_16_Weights, vit_b_16

from benchmark.models.loaders.torchvision import state_dict

NAME = "ViT-B/16 (ImageNet)"
LAYERS = ["encoder.layers.encoder_layer_10"]
EXTRA_TOKENS = 1
WEIGHTS = ViT_B_16_Weights.IMAGENET1K_V1
METADATA = {
    "architecture": "ViT-B/16 (torchvision vit_b_16)",
    "training_data": "ImageNet-1k",
    "paper": "Dosovitskiy et al., An Image is Worth 16x16 Words, ICLR 2021",
    "weights_url": WEIGHTS.url,
}


def build_model() -> torch.nn.Module:
    model = vit_b_16()
    model.load_state_dict(state_dict(WEIGHTS)[0])
    return model
