"""Broden for training and evaluating segmentation models with PyTorch.

:class:`SegmentationDataset` serves ``(image, mask)`` pairs of one pixel category and one label-map layer:
``image`` a ``tv_tensors.Image`` (3, H, W) uint8, ``mask`` a ``tv_tensors.Mask`` (H, W) int64 of class ids, so
torchvision's v2 transforms (``transforms=v2.Compose([...])``) resize, crop and flip both together, with nearest
interpolation for the mask. Broden stores masks at half the image size; they are upsampled (nearest) to the image
size first, so both share one size. Class ids are dense: 0 = unlabeled (no label of the category there), then the
category's labels in Broden's per-category code order (most frequent first); ``id2label`` / ``label2id`` map them
to names, ``numbers`` to Broden's label numbers. Only the images that have a label map for that category and
layer are served. :func:`collate` batches pairs of different sizes by padding (mask padding = ``ignore_index``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from broden.dataset import Broden, decode_row, load
from broden.errors import BrodenError

IGNORE_INDEX = 255


class SegmentationDataset(torch.utils.data.Dataset):
    """``(image, mask)`` pairs of ``category`` (a pixel category: object, part, material, color) at label-map
    ``layer`` (0 = first; ADE parts of parts are layer 1) from ``split`` ("train", "val" or None for both)."""

    def __init__(
        self,
        dataset: Broden | str | os.PathLike[str],
        category: str = "object",
        split: str | None = "train",
        layer: int = 0,
        transforms: Callable[[Any, Any], tuple[Any, Any]] | None = None,
    ) -> None:
        ds = dataset if isinstance(dataset, Broden) else load(dataset)
        if category not in ds.pixel_categories:
            raise BrodenError(f"category {category!r}: not a pixel category of {ds.path}; choose from "
                              f"{', '.join(ds.pixel_categories)}")
        if layer < 0:
            raise BrodenError(f"layer {layer}: give a label-map layer >= 0")
        self.category, self.layer, self.transforms = category, layer, transforms
        self.mask_categories = list(ds.pixel_categories)
        labels = ds.labels.in_category(category)
        self.numbers = [0] + [lab.number for lab in labels]
        self.id2label = {0: "unlabeled", **{i: lab.name for i, lab in enumerate(labels, start=1)}}
        self.label2id = {name: i for i, name in self.id2label.items()}
        self._lut = np.zeros(ds.labels.max_number + 1, np.int64)
        self._lut[self.numbers[1:]] = np.arange(1, len(self.numbers))
        cols = ds.rows.select_columns(["split", "layers"]).to_dict()
        self.indices = [
            i for i, (s, layers) in enumerate(zip(cols["split"], cols["layers"]))
            if (split is None or s == split) and (layers or {}).get(category, 0) > layer
        ]
        if not self.indices:
            raise BrodenError(f"{ds.path}: no {split or 'any'} image has a {category} map at layer {layer}")
        self.rows = ds.rows.select_columns(
            ["id", "image", "split", "source", "height", "width", "seg_height", "seg_width", "layers", "masks"]
        )

    @property
    def num_classes(self) -> int:
        return len(self.numbers)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        from PIL import Image
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional as F

        example = decode_row(self.rows[self.indices[i]], self.mask_categories, [self.category], [])
        image = example.image()
        ids = self._lut[example.pixel[self.category][self.layer]]
        mask = np.asarray(Image.fromarray(ids.astype(np.int32)).resize(image.size, Image.NEAREST), np.int64)
        pair = tv_tensors.Image(F.pil_to_tensor(image)), tv_tensors.Mask(torch.from_numpy(mask))
        return self.transforms(*pair) if self.transforms is not None else pair


def collate(batch: Sequence[tuple[torch.Tensor, torch.Tensor]], ignore_index: int = IGNORE_INDEX):
    """Stack ``(image, mask)`` pairs into ``(B, C, H, W)`` images and ``(B, H, W)`` masks, padding smaller ones at the
    bottom and right (images with 0, masks with ``ignore_index``, for ``CrossEntropyLoss(ignore_index=...)``)."""
    h = max(int(img.shape[-2]) for img, _ in batch)
    w = max(int(img.shape[-1]) for img, _ in batch)
    first = batch[0][0]
    images = torch.zeros((len(batch), first.shape[0], h, w), dtype=first.dtype)
    masks = torch.full((len(batch), h, w), ignore_index, dtype=torch.int64)
    for j, (img, mask) in enumerate(batch):
        images[j, :, : img.shape[-2], : img.shape[-1]] = img
        masks[j, : mask.shape[-2], : mask.shape[-1]] = mask
    return images, masks
