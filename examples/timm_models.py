"""timm ConvNeXt and ResNet through the ``timm:`` spec, scored with the Python API.

Offline, with random weights (``:none``; nothing is downloaded):

    python examples/timm_models.py --dataset demo-output/broden-sample

With the real ImageNet weights (downloaded once into the Hugging Face cache by timm):

    python examples/timm_models.py --dataset broden1_224 --pretrained
    benchmark score timm:convnext_tiny.fb_in1k --dataset broden1_224       # the same from the command line
    benchmark score timm:resnet50.a1_in1k --dataset broden1_224 --layers layer3,layer4

Each model is preprocessed with timm's own data config (mean, std, interpolation, input size); the whole image is
resized, never centre-cropped, and the results record where every value came from.
"""

import argparse

import benchmark

MODELS = {"timm:convnext_tiny.fb_in1k": ["stages.2", "stages.3"], "timm:resnet50.a1_in1k": ["layer3", "layer4"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="Broden dataset directory (e.g. from 'broden sample')")
    parser.add_argument("--pretrained", action="store_true", help="the real weights instead of random ones")
    parser.add_argument("--out", default="results", help="parent directory of the results (default: results)")
    args = parser.parse_args()
    for spec, layers in MODELS.items():
        spec = spec if args.pretrained else spec.split(".")[0] + ":none"
        results = benchmark.score(spec, args.dataset, layers=layers, out=f"{args.out}/{spec.replace(':', '-')}")
        pre = results.data["protocol"]["preprocess"]
        print(f"{spec}: mean {pre['mean']} std {pre['std']} at {pre['size']} ({pre['sources']['mean']})")
        for layer, s in results.summary().items():
            print(f"  {layer}: {s['detectors']['all']}/{s['units']} detectors, "
                  f"{s['unique_per_category']['all']} unique concepts")


if __name__ == "__main__":
    main()
