#!/usr/bin/env python3
"""Export a torchvision backbone to ONNX for nominal, with the stage outputs
as named graph outputs (layer1, layer2, layer3) and dynamic N, H, W.

    /usr/bin/python3 tools/export_backbone.py --arch wide_resnet50_2 \
        --weights wide_resnet50_2-95faca4d.pth --out wrn50.onnx

Needs Debian's python3-torch and python3-torchvision (scripts/deps.sh
--test installs them). Nothing is downloaded: --weights is a torchvision
state dict you already have (e.g. from torch hub's cache on another
machine). Without --weights the network gets random weights, which is only
useful for testing. The network is cut after layer3 (PatchCore and PaDiM
use layer1..layer3), so the file holds only the weights those need.

Then:  nominal fit --backbone wrn50.onnx --taps layer2,layer3 --train DIR -o m.nmm
"""
import argparse
import sys

import torch
import torchvision

ARCHS = ("resnet18", "resnet34", "resnet50", "wide_resnet50_2", "wide_resnet101_2")


class Trunk(torch.nn.Module):
    """stem + layer1..layer3 of a torchvision ResNet, returning each stage."""

    def __init__(self, net):
        super().__init__()
        self.stem = torch.nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3

    def forward(self, x):
        x1 = self.layer1(self.stem(x))
        x2 = self.layer2(x1)
        return x1, x2, self.layer3(x2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", choices=ARCHS, required=True)
    ap.add_argument("--weights", help="torchvision state dict (.pth); omit for random weights")
    ap.add_argument("--out", required=True, help="ONNX file to write")
    ap.add_argument("--size", type=int, default=224, help="example input size for tracing")
    a = ap.parse_args()

    net = getattr(torchvision.models, a.arch)(weights=None)
    if a.weights:
        state = torch.load(a.weights, map_location="cpu")
        missing, unexpected = net.load_state_dict(state, strict=False)
        # fc.* may be absent or extra; anything else means the wrong file
        bad = [k for k in list(missing) + list(unexpected) if not k.startswith("fc.")]
        if bad:
            sys.exit(f"{a.weights}: does not fit {a.arch} (e.g. {bad[0]})")
    else:
        print("export_backbone: no --weights: exporting RANDOM weights (testing only)",
              file=sys.stderr)
    trunk = Trunk(net).eval()
    names = ["layer1", "layer2", "layer3"]
    dyn = {"input": {0: "N", 2: "H", 3: "W"}}
    dyn.update({n: {0: "N", 2: f"H_{n}", 3: f"W_{n}"} for n in names})
    x = torch.zeros(1, 3, a.size, a.size)
    with torch.no_grad():
        torch.onnx.export(trunk, x, a.out, opset_version=13, input_names=["input"],
                          output_names=names, dynamic_axes=dyn)
    print(f"export_backbone: wrote {a.out} ({a.arch}, outputs {', '.join(names)})")


if __name__ == "__main__":
    main()
