#!/usr/bin/env python3
"""Reference timing: the same backbone run by torch on the CPU.

    bench_torch.py MODEL.onnx --taps stage3 --size 224 --batch 1 --threads 2
    bench_torch.py --model wrn50 --size 224            (torchvision WRN-50-2,
                                                        random weights, up to
                                                        layer3)

The ONNX graph is executed by tests/tools/onnx_torch.py, which issues the same
torch calls a hand-written module would (weights as buffers, nothing decided
per call, in-place ReLU/Add, only the nodes the taps need). torch's CPU
convolutions are oneDNN (mkldnn) kernels, so this is oneDNN-through-torch
against nominal's direct use of oneDNN.

Memory format: channels-last by default, because it is the faster one here.
Measured on the 2-core dev VM (AMD EPYC, AVX-512; torch 1.13 Debian build,
oneDNN 2.6.3), --threads 2, batch 1, 224x224, interleaved runs, quiet-moment
medians (other jobs share the VM: single runs can be 10x slower):
    resnet50v2_trunk.onnx stage3:  NCHW 30-31 ms   channels-last 26-27 ms
    wrn50 (layer3):                NCHW 71-73 ms   channels-last 64-66 ms
Whole bench_torch.py runs of resnet50v2 stage3 gave medians of 40-56 ms
(median ~45 ms) and wrn50 ~70 ms while other jobs were running: compare
with nominal back to back, several times.
Flush-to-zero (torch.set_flush_denormal) made no difference. --nchw measures
the contiguous layout instead.

Convolutions call torch.mkldnn_convolution (oneDNN) directly. That is what
F.conv2d picks anyway on >= 2 threads (same timings), but on 1 thread torch
1.13 sends stride-1 1x1 convolutions to its native path, which in Debian's
build goes through the reference netlib BLAS: resnet50v2 stage3 takes ~800 ms
instead of ~44 ms. --plain-conv restores torch's own choice.

The last line printed is `torch ms/image: X`, X = median over the timed
iterations of (iteration wall time / batch).
"""

import argparse
import functools
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "tools"))


class WRN50Trunk(nn.Module):
    """torchvision wide_resnet50_2 with random weights, cut after layer3
    (the usual PatchCore backbone), returning the requested layer taps."""
    order = ["layer1", "layer2", "layer3"]

    def __init__(self):
        super().__init__()
        import torchvision
        torch.manual_seed(0)
        net = torchvision.models.wide_resnet50_2(weights=None)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3 = (net.layer1, net.layer2,
                                                 net.layer3)
        del net     # layer4 and fc are never run

    def forward(self, x, taps):
        out = {}
        x = self.stem(x)
        last = max(self.order.index(t) for t in taps)
        for name in self.order[:last + 1]:
            x = getattr(self, name)(x)
            if name in taps:
                out[name] = x
        return {t: out[t] for t in taps}


def _mkldnn_conv_forward(conv, x):
    return torch.mkldnn_convolution(x, conv.weight, conv.bias, conv.padding,
                                    conv.stride, conv.dilation, conv.groups)


def parse_size(s):
    if "x" in s:
        h, w = s.split("x")
        return int(h), int(w)
    return int(s), int(s)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("onnx", nargs="?", help="ONNX model (or use --model)")
    ap.add_argument("--model", choices=["wrn50"],
                    help="built-in torchvision reference instead of an ONNX "
                         "file: wrn50 = wide_resnet50_2 up to layer3")
    ap.add_argument("--taps", default=None,
                    help="comma-separated output names (default: all graph "
                         "outputs; layer3 for wrn50)")
    ap.add_argument("--size", default="224", help="H or HxW (default 224)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--plain-conv", action="store_true",
                    help="let torch choose its convolution kernel (F.conv2d) "
                         "instead of calling oneDNN's directly; identical on "
                         ">= 2 threads, ~15x slower on 1 thread here")
    ap.add_argument("--nchw", dest="channels_last", action="store_false",
                    help="contiguous NCHW tensors instead of the default "
                         "channels-last (NHWC), which is faster here")
    args = ap.parse_args(argv)
    if (args.onnx is None) == (args.model is None):
        ap.error("give exactly one of MODEL.onnx or --model")

    torch.set_num_threads(args.threads)
    h, w = parse_size(args.size)
    if args.model == "wrn50":
        net = WRN50Trunk()
        if not args.plain_conv:
            for m in net.modules():
                if isinstance(m, nn.Conv2d):
                    m.forward = functools.partial(_mkldnn_conv_forward, m)
        taps = args.taps.split(",") if args.taps else ["layer3"]
        bad = [t for t in taps if t not in WRN50Trunk.order]
        if bad:
            ap.error(f"wrn50 taps are {WRN50Trunk.order}, not {bad}")
        what = "torchvision wide_resnet50_2 (random weights) up to layer3"
    else:
        from onnx_torch import OnnxTorch
        net = OnnxTorch(args.onnx, mkldnn_conv=not args.plain_conv)
        taps = args.taps.split(",") if args.taps else net.output_names
        what = os.path.basename(args.onnx) + " via onnx_torch"
    net.eval()
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(
        (args.batch, 3, h, w)).astype(np.float32)).contiguous(
            memory_format=fmt)

    times = []
    with torch.no_grad(), torch.inference_mode():
        out = net(x, taps)      # first call also builds the plan
        shapes = ", ".join(f"{k} {'x'.join(map(str, v.shape))}"
                           for k, v in out.items())
        del out
        for _ in range(args.warmup):
            net(x, taps)
        for _ in range(args.iters):
            t0 = time.perf_counter()
            net(x, taps)
            times.append((time.perf_counter() - t0) * 1e3 / args.batch)
    print(f"model: {what}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'channels-last' if args.channels_last else 'NCHW'}, "
          f"{'F.conv2d' if args.plain_conv else 'oneDNN conv'}, input "
          f"{args.batch}x3x{h}x{w}, taps: {shapes}")
    print(f"{args.iters} iterations after {args.warmup} warm-up: ms/image "
          f"min {min(times):.2f} mean {statistics.mean(times):.2f} "
          f"max {max(times):.2f}")
    print(f"torch ms/image: {statistics.median(times):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
