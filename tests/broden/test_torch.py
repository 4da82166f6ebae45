"""broden.torch.SegmentationDataset: (image, mask) pairs with dense class ids, v2 transforms applied jointly, in a
DataLoader with worker processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

import broden
from broden.torch import IGNORE_INDEX, SegmentationDataset, collate


@pytest.fixture(scope="module")
def ds(sample_dataset: Path) -> broden.Broden:
    return broden.load(sample_dataset)


def test_pairs_map_label_numbers_to_dense_ids(ds: broden.Broden) -> None:
    seg = SegmentationDataset(ds, category="object", split="val")
    rows = [r for r in ds.iter_rows() if r["split"] == "val" and r["layers"]["object"] > 0]
    assert len(seg) == len(rows)
    objects = ds.labels.in_category("object")
    assert seg.id2label == {0: "unlabeled", **{i: lab.name for i, lab in enumerate(objects, 1)}}
    assert all(seg.label2id[name] == i for i, name in seg.id2label.items())
    image, mask = seg[3]
    assert isinstance(image, tv_tensors.Image) and isinstance(mask, tv_tensors.Mask)
    assert image.dtype == torch.uint8 and mask.dtype == torch.int64 and image.shape[1:] == mask.shape == (224, 224)
    example = ds[ds.ids.index(rows[3]["id"])]
    numbers = example.pixel["object"][0]  # 112 x 112 label numbers
    up = np.asarray(Image.fromarray(numbers).resize((224, 224), Image.NEAREST))
    names = np.vectorize(lambda n: ds.labels.name(int(n)) or "unlabeled")(up)
    assert (np.vectorize(seg.id2label.get)(mask.numpy()) == names).all()
    parts = SegmentationDataset(ds, category="part", split=None, layer=1)
    assert len(parts) == sum(1 for r in ds.iter_rows() if r["layers"]["part"] == 2)


def test_transforms_apply_to_image_and_mask_together(ds: broden.Broden) -> None:
    plain = SegmentationDataset(ds, category="object")
    flipped = SegmentationDataset(ds, category="object", transforms=v2.RandomHorizontalFlip(p=1.0))
    (image, mask), (fimage, fmask) = plain[0], flipped[0]
    assert torch.equal(fimage, image.flip(-1)) and torch.equal(fmask, mask.flip(-1))
    small = SegmentationDataset(ds, transforms=v2.Compose([v2.Resize(64), v2.ToDtype(torch.float32, scale=True)]))
    image, mask = small[0]
    assert image.dtype == torch.float32 and mask.dtype == torch.int64 and mask.shape == (64, 64)
    assert set(mask.unique().tolist()) <= set(plain[0][1].unique().tolist())  # nearest: no new ids


def test_a_dataloader_with_two_workers_batches_random_crops(ds: broden.Broden) -> None:
    tf = v2.Compose([v2.RandomResizedCrop(48, scale=(0.3, 1.0)), v2.RandomHorizontalFlip(),
                     v2.ToDtype(torch.float32, scale=True)])
    seg = SegmentationDataset(ds, category="material", transforms=tf)
    loader = torch.utils.data.DataLoader(seg, batch_size=8, num_workers=2, collate_fn=collate)
    batches = list(loader)
    assert sum(len(m) for _, m in batches) == len(seg)
    images, masks = batches[0]
    assert images.shape == (8, 3, 48, 48) and masks.shape == (8, 48, 48)
    assert 0 <= int(masks.min()) and int(masks.max()) < seg.num_classes


def test_collate_pads_masks_with_the_ignore_index() -> None:
    a = (torch.ones(3, 4, 5), torch.ones(4, 5, dtype=torch.int64))
    b = (torch.ones(3, 6, 2), torch.full((6, 2), 2, dtype=torch.int64))
    images, masks = collate([a, b])
    assert images.shape == (2, 3, 6, 5) and masks.shape == (2, 6, 5)
    assert (masks[0, 4:] == IGNORE_INDEX).all() and (masks[1, :, 2:] == IGNORE_INDEX).all()
    assert images[1, :, :, 2:].abs().sum() == 0 and masks[1, :6, :2].eq(2).all()


def test_a_category_without_maps_is_a_one_line_error(ds: broden.Broden) -> None:
    with pytest.raises(broden.BrodenError, match="not a pixel category"):
        SegmentationDataset(ds, category="scene")
    with pytest.raises(broden.BrodenError, match="no train image has a part map at layer 5"):
        SegmentationDataset(ds, category="part", layer=5)
