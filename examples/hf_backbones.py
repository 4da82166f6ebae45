"""A transformers ViT classifier and a DINOv2 (self-supervised, DINO-style) backbone through the ``hf:`` spec.

Offline, with random weights: the script builds each architecture from its config (the published checkpoints'
sizes and image-processor statistics), saves it with ``save_pretrained`` and scores ``hf:/that/folder``:

    python examples/hf_backbones.py --dataset demo-output/broden-sample

With the real weights (downloaded once into the Hugging Face cache):

    benchmark score hf:google/vit-base-patch16-224 --dataset broden1_224 --layers vit.layers.10
    benchmark score hf:facebook/dinov2-small --dataset broden1_224 --layers encoder.layer.10

ViT outputs tokens (B, 1 + 14*14, 768): the class token is dropped and the patches folded into a 14x14 grid. DINOv2
takes the ImageNet statistics of its processor; the ViT checkpoint normalises with 0.5/0.5, which is what is used
and recorded (``model config``), never silently replaced by ImageNet's.
"""

import argparse
from pathlib import Path

import benchmark


def save_random(kind: str, folder: Path) -> Path:
    """A randomly initialised checkpoint folder shaped like the published one."""
    import transformers as T

    T.utils.logging.disable_progress_bar()
    if kind == "vit":
        T.ViTForImageClassification(T.ViTConfig(architectures=["ViTForImageClassification"])).save_pretrained(folder)
        T.ViTImageProcessor(size={"height": 224, "width": 224}, image_mean=[0.5] * 3, image_std=[0.5] * 3,
                            resample=2).save_pretrained(folder)
    else:
        T.Dinov2Model(T.Dinov2Config(hidden_size=384, num_attention_heads=6, image_size=518, patch_size=14)).save_pretrained(folder)
        T.BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}, do_center_crop=True,
                            image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
                            resample=3).save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="Broden dataset directory (e.g. from 'broden sample')")
    parser.add_argument("--out", default="results", help="parent directory of the results and checkpoints")
    args = parser.parse_args()
    for kind, layers in (("vit", ["vit.layers.10"]), ("dinov2", ["encoder.layer.10"])):
        folder = save_random(kind, Path(args.out) / f"random-{kind}-checkpoint")
        results = benchmark.score(f"hf:{folder}", args.dataset, layers=layers, out=Path(args.out) / f"random-{kind}")
        pre = results.data["protocol"]["preprocess"]
        print(f"{kind}: mean {pre['mean']} at {pre['size']}, crop not applied: {pre.get('not_applied')}")
        for layer, s in results.summary().items():
            print(f"  {layer}: {s['detectors']['all']}/{s['units']} detectors")


if __name__ == "__main__":
    main()
