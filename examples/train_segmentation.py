"""Train a tiny segmentation head on Broden for a few steps: broden.torch.SegmentationDataset with torchvision v2
transforms applied to image and mask together, a DataLoader with workers, and CrossEntropyLoss that ignores the
padding of broden.torch.collate.

    broden sample data/broden-sample
    python examples/train_segmentation.py data/broden-sample --steps 20

Prints the loss every few steps and the pixel accuracy on the val split at the end. The model is deliberately
small (three convolutions) so this runs in seconds on a CPU; swap in any segmentation network.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torchvision.transforms import v2

from broden.torch import IGNORE_INDEX, SegmentationDataset, collate


def tiny_head(num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=2, dilation=2), nn.ReLU(),
        nn.Conv2d(32, num_classes, 1),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help="a Broden dataset folder (or hf://ORG/NAME)")
    parser.add_argument("--category", default="object")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=96, help="training crop size")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    train_tf = v2.Compose([
        v2.RandomResizedCrop(args.size, scale=(0.5, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=True),  # images only: masks keep their int64 class ids
    ])
    eval_tf = v2.Compose([v2.Resize(args.size, antialias=True), v2.ToDtype(torch.float32, scale=True)])
    train = SegmentationDataset(args.dataset, category=args.category, split="train", transforms=train_tf)
    val = SegmentationDataset(args.dataset, category=args.category, split="val", transforms=eval_tf)
    print(f"{len(train)} train / {len(val)} val images, {train.num_classes} classes "
          f"({', '.join(list(train.id2label.values())[1:6])}, ...)")
    loader = torch.utils.data.DataLoader(train, batch_size=args.batch_size, shuffle=True, collate_fn=collate,
                                         num_workers=args.workers, persistent_workers=args.workers > 0)
    model = tiny_head(train.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
    step = 0
    while step < args.steps:
        for images, masks in loader:
            loss = loss_fn(model(images), masks)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step == 1 or step % 5 == 0:
                print(f"step {step}: loss {loss.item():.3f}")
            if step == args.steps:
                break
    correct = total = 0
    model.eval()
    with torch.no_grad():
        for images, masks in torch.utils.data.DataLoader(val, batch_size=16, collate_fn=collate):
            pred = model(images).argmax(1)
            keep = masks != IGNORE_INDEX
            correct += int((pred[keep] == masks[keep]).sum())
            total += int(keep.sum())
    print(f"val pixel accuracy: {correct / max(total, 1):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
