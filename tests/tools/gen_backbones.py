#!/usr/bin/env python3
"""Fixtures for the backbone tests: ONNX models, inputs and torch references.

Run by tests/tools/make_fixtures.sh as
    gen_backbones.py --out build/fixtures/backbones --shared ../shared \
                     --nominal build/nominal          (--nominal is ignored)

Everything goes into --out as raw little-endian float32 (C order, no header),
plus `cases.txt`, one line per (model, input, tap):

    MODEL_PATH INPUT_BIN N C H W TAP_NAME REF_BIN RANK D0 D1 [D2 D3]

(absolute paths, whitespace separated, `#` starts a comment line; the lines of
one model are contiguous). What is covered:

 (a) the shared models (shared/models/*.onnx) on inputs whose sizes the golden
     vectors do not use: N=1 3x97x131 (odd, ceil_mode differs from floor) and
     N=2 3x64x80 (batch), every graph output. Reference: onnx_torch, which
     reproduces the torch golden vectors to ~4e-6 (onnx_torch.py --selftest).
     Skipped with a message when --shared has no models.
 (b) torchvision architectures with random weights, exported here by
     torch.onnx.export (opset 13, dynamic N/H/W): resnet18, resnet50,
     wide_resnet50_2 (taps layer1, layer2, layer3, logits = full net through
     avgpool + fc), mobilenet_v2 (ReLU6 -> Clip; taps features_6, features_13,
     logits), and resnet18_bn.onnx: the same resnet18 exported without
     Conv+BN folding, so BatchNormalization nodes reach the C runtime, which
     must fold or run them itself. Reference: the torchvision module (not the
     ONNX) on 1x3x64x64 and 2x3x80x72.
 (c) pools_tiny.onnx, a small random module for the pooling corner cases:
     AveragePool 3x3/2 pads 1 with count_include_pad 0 and 1, MaxPool
     ceil_mode on sizes where the last window overhangs, MaxPool with -inf
     padding on signed data, and Concat.

Each exported model is also run through onnx_torch and compared with the
torch module, so a broken export (or a broken onnx_torch) stops the generator
instead of producing fixtures that blame the C code.
"""

import argparse
import copy
import math
import os
import sys
import time
import warnings

import numpy as np
import onnx
import onnx.helper
import onnx.numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from onnx_torch import OnnxTorch, format_inventory  # noqa: E402

SEED = 20241130
SHARED_MODELS = ("resnet50v2_trunk.onnx", "squeezenet1.1.onnx",
                 "mobilenetv2_gluon_features.onnx")
SHARED_INPUTS = ((1, 3, 97, 131), (2, 3, 64, 80))
TV_INPUTS = ((1, 3, 64, 64), (2, 3, 80, 72))
# H=46 and W=20 are even: a 3/2 ceil_mode window overhangs there.
TINY_INPUTS = ((1, 3, 33, 46), (2, 3, 20, 27))
RESNET_TAPS = ["layer1", "layer2", "layer3", "logits"]
MOBILENET_TAPS = ["features_6", "features_13", "logits"]
# onnx_torch on the export vs the torch module. Observed: ~1e-6 (BN folding
# re-rounds the weights); a wrong export is off by O(1).
XCHECK_TOL = 1e-4


class ResNetTaps(nn.Module):
    """torchvision ResNet returning layer1..3 and the logits of the full net."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        l1 = n.layer1(x)
        l2 = n.layer2(l1)
        l3 = n.layer3(l2)
        # Same as ResNet.forward; torch.flatten(x, 1) exports as Flatten.
        y = n.fc(torch.flatten(n.avgpool(n.layer4(l3)), 1))
        return l1, l2, l3, y


class MobileNetV2Taps(nn.Module):
    """torchvision MobileNetV2 returning features[6], features[13], logits."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        taps = []
        for i, layer in enumerate(self.net.features):
            x = layer(x)
            if i in (6, 13):
                taps.append(x)
        # As MobileNetV2.forward (adaptive pool to 1x1 -> GlobalAveragePool).
        x = torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1)
        return taps[0], taps[1], self.net.classifier(x)


class PoolsTiny(nn.Module):
    """Pooling corner cases on signed data (a ReLU in front would hide a
    runtime that pads max pooling with 0 instead of -inf)."""
    taps = ["avg_excl", "avg_incl", "max_ceil", "max_pad", "cat_pool"]

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.mix = nn.Conv2d(16, 8, 1)

    def forward(self, x):
        x = self.conv(x)
        a = F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
        b = F.avg_pool2d(x, 3, 2, 1, count_include_pad=True)
        m = F.max_pool2d(x, 3, 2, 0, ceil_mode=True)
        p = F.max_pool2d(x, 3, 2, 1)
        c = F.max_pool2d(self.mix(torch.cat([a, b], 1)), 3, 2,
                         ceil_mode=True)
        return a, b, m, p, c


def randomize_bn(model, calib, gen, gamma=(0.5, 1.5)):
    """Make every BatchNorm a real, non-identity affine map.

    Fresh torchvision BNs are identity in eval mode (mean 0, var 1, gamma 1,
    beta 0), which would let a runtime that ignores them pass. Running
    statistics are first measured on a random batch (so activations keep a
    sane scale through 50 layers), then perturbed, and gamma/beta drawn at
    random. Keep gamma modest: with gamma up to 4 MobileNetV2 becomes chaotic
    (float32 vs float64 differ by 30% at features_13), which no tolerance can
    test; with (0.5, 1.5) they agree to ~5e-6 and ~1% of the ReLU6 outputs
    still hit the ceiling."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None               # cumulative average = batch stats
    model.train()
    with torch.no_grad():
        model(calib)
    model.eval()
    with torch.no_grad():
        for m, mom in zip(bns, saved):
            m.momentum = mom
            c = m.num_features
            m.running_mean += 0.2 * torch.randn(c, generator=gen) * \
                m.running_var.sqrt()
            m.running_var *= torch.empty(c).uniform_(0.7, 1.4, generator=gen)
            m.weight.copy_(torch.empty(c).uniform_(*gamma, generator=gen))
            m.bias.copy_(0.25 * torch.randn(c, generator=gen))


def fold_pad_into_avgpool(model):
    """Undo torch 1.13's export of avg_pool2d(count_include_pad=True).

    torch exports it as Pad(constant 0) + AveragePool(pads 0), which is the
    same arithmetic only for ceil_mode=0; fold such pairs back into a single
    AveragePool(pads, count_include_pad=1) so the fixture exercises that
    attribute and needs no Pad op. Returns the number of folds."""
    g = model.graph
    consts = {n.output[0]: onnx.numpy_helper.to_array(n.attribute[0].t)
              for n in g.node if n.op_type == "Constant"}
    consts.update({t.name: onnx.numpy_helper.to_array(t)
                   for t in g.initializer})
    graph_outs = {o.name for o in g.output}
    folds, dead = 0, []
    for pad in [n for n in g.node if n.op_type == "Pad"]:
        users = [n for n in g.node if pad.output[0] in n.input]
        if (len(users) != 1 or users[0].op_type != "AveragePool"
                or pad.output[0] in graph_outs):
            continue
        ap = users[0]
        pattrs = {a.name: onnx.helper.get_attribute_value(a)
                  for a in pad.attribute}
        aattrs = {a.name: onnx.helper.get_attribute_value(a)
                  for a in ap.attribute}
        p = [int(v) for v in consts.get(pad.input[1], [])]
        value = (float(consts[pad.input[2]]) if len(pad.input) > 2
                 and pad.input[2] else 0.0)
        if (pattrs.get("mode", b"constant") != b"constant" or value != 0.0
                or len(p) != 8 or p[0] or p[1] or p[4] or p[5] or min(p) < 0
                or any(aattrs.get("pads", [0, 0, 0, 0]))
                or aattrs.get("ceil_mode", 0) or "auto_pad" in aattrs):
            raise RuntimeError(f"unexpected Pad+AveragePool form: {pad} {ap}")
        keep = [a for a in ap.attribute
                if a.name not in ("pads", "count_include_pad")]
        del ap.attribute[:]
        ap.attribute.extend(keep + [
            onnx.helper.make_attribute("pads", [p[2], p[3], p[6], p[7]]),
            onnx.helper.make_attribute("count_include_pad", 1)])
        ap.input[0] = pad.input[0]
        dead.append(pad)
        folds += 1
    for pad in dead:
        g.node.remove(pad)
    used = {i for n in g.node for i in n.input}
    for n in [n for n in g.node if n.op_type == "Constant"
              and n.output[0] not in used]:
        g.node.remove(n)
    onnx.checker.check_model(model)
    return folds


class Gen:
    def __init__(self, out):
        self.out = out
        self.cases = []        # manifest lines, grouped by model
        self.files = []        # (path, bytes) for the summary
        self.notes = []
        self.inputs = {}       # shape -> (path, torch tensor)

    def save(self, path, tensor):
        arr = np.ascontiguousarray(tensor.detach().contiguous().numpy(),
                                   dtype="<f4")
        arr.tofile(path)
        self.files.append((path, arr.nbytes))
        return path

    def input(self, shape, seed):
        key = (tuple(shape), seed)
        if key not in self.inputs:
            rng = np.random.default_rng(seed)
            x = torch.from_numpy(rng.standard_normal(shape)
                                 .astype(np.float32))
            name = "in_" + "x".join(map(str, shape)) + f"_s{seed}.bin"
            self.inputs[key] = (self.save(os.path.join(self.out, name), x), x)
        return self.inputs[key]

    def add_cases(self, model_path, label, inputs, taps, refs):
        """refs[i][tap] = reference tensor for inputs[i]."""
        os.makedirs(os.path.join(self.out, "ref"), exist_ok=True)
        self.cases.append(f"# {label}")
        for (ipath, x), ref in zip(inputs, refs):
            tag = "x".join(map(str, x.shape))
            for t in taps:
                y = ref[t]
                rpath = self.save(os.path.join(
                    self.out, "ref", f"{label}.{tag}.{t}.bin"), y)
                self.cases.append(" ".join(
                    [os.path.abspath(model_path), os.path.abspath(ipath)]
                    + [str(d) for d in x.shape] + [t, os.path.abspath(rpath),
                                                   str(y.dim())]
                    + [str(d) for d in y.shape]))


def rel_err(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def conditioning(gen, label, module, inputs, taps, refs):
    """Record how far the float32 references are from float64 torch.

    That is the floor for any float32 runtime's tolerance; a random network
    that amplifies rounding (see randomize_bn) is refused."""
    m64 = copy.deepcopy(module).double()
    worst = 0.0
    with torch.inference_mode():
        for (_, x), ref in zip(inputs, refs):
            for t, y in zip(taps, m64(x.double())):
                worst = max(worst, rel_err(ref[t].double(), y))
    del m64
    gen.notes.append(f"{label}: torch float32 vs float64: max |diff|/max|ref|"
                     f" = {worst:.1e}")
    if worst > XCHECK_TOL:
        raise SystemExit(f"{label}: random network is ill-conditioned "
                         f"(float32 vs float64 {worst:.2e})")


def cross_check(gen, path, label, inputs, taps, refs):
    """onnx_torch on the exported file vs the torch module's references."""
    net = OnnxTorch(path).eval()
    worst = 0.0
    with torch.inference_mode():
        for (_, x), ref in zip(inputs, refs):
            got = net(x, taps)
            for t in taps:
                if got[t].shape != ref[t].shape:
                    raise SystemExit(f"{label}: {t} shape {list(got[t].shape)}"
                                     f" != torch {list(ref[t].shape)}")
                worst = max(worst, rel_err(got[t], ref[t]))
    gen.notes.append(f"{label}: onnx_torch(export) vs torch module: max "
                     f"|diff|/max|ref| = {worst:.1e}")
    if worst > XCHECK_TOL:
        raise SystemExit(f"{label}: exported ONNX disagrees with the torch "
                         f"module ({worst:.2e} > {XCHECK_TOL:g})")


def export(module, path, taps, example, **kw):
    dyn = {"input": {0: "N", 2: "H", 3: "W"}}
    for t in taps:
        dyn[t] = {0: "N"} if t == "logits" else {0: "N", 2: f"H_{t}",
                                                 3: f"W_{t}"}
    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, path, opset_version=13,
                          input_names=["input"], output_names=taps,
                          dynamic_axes=dyn, **kw)
    # export() restores the train/eval flags it found; make sure nothing
    # came back in training mode (references would use batch statistics).
    assert not any(m.training for m in module.modules()), path


def run_shared(gen, shared):
    models = os.path.join(shared, "models") if shared else None
    if not models or not all(os.path.isfile(os.path.join(models, m))
                             for m in SHARED_MODELS):
        msg = (f"(a) shared models not found under {models}: skipping the "
               f"shared-model cases")
        print("gen_backbones: " + msg, file=sys.stderr)
        gen.notes.append(msg)
        return
    inputs = [gen.input(s, SEED + i) for i, s in enumerate(SHARED_INPUTS)]
    for m in SHARED_MODELS:
        path = os.path.join(models, m)
        net = OnnxTorch(path).eval()
        with torch.inference_mode():
            refs = [net(x) for _, x in inputs]
        gen.add_cases(path, os.path.splitext(m)[0], inputs, net.output_names,
                      refs)


def run_torchvision(gen, timings):
    inputs = [gen.input(s, SEED + 10 + i) for i, s in enumerate(TV_INPUTS)]
    calib = torch.from_numpy(np.random.default_rng(SEED + 20).standard_normal(
        (4, 3, 64, 64)).astype(np.float32))
    specs = [("resnet18", ResNetTaps, RESNET_TAPS),
             ("resnet50", ResNetTaps, RESNET_TAPS),
             ("wide_resnet50_2", ResNetTaps, RESNET_TAPS),
             ("mobilenet_v2", MobileNetV2Taps, MOBILENET_TAPS)]
    for k, (name, wrap, taps) in enumerate(specs):
        t0 = time.time()
        torch.manual_seed(SEED + 100 + k)
        gen_bn = torch.Generator().manual_seed(SEED + 200 + k)
        net = getattr(torchvision.models, name)(weights=None)
        randomize_bn(net, calib, gen_bn)
        module = wrap(net).eval()
        with torch.inference_mode():
            outs = [module(x) for _, x in inputs]
        refs = [dict(zip(taps, o)) for o in outs]
        conditioning(gen, name, module, inputs, taps, refs)
        t1 = time.time()
        path = os.path.join(gen.out, name + ".onnx")
        export(module, path, taps, inputs[0][1])
        gen.files.append((path, os.path.getsize(path)))
        t2 = time.time()
        gen.add_cases(path, name, inputs, taps, refs)
        cross_check(gen, path, name, inputs, taps, refs)
        t3 = time.time()
        timings.append((name, t1 - t0, t2 - t1, t3 - t2))
        if name == "resnet18":
            # Same weights, BatchNormalization kept: PRESERVE keeps the eval
            # mode of the module but skips the eval-only Conv+BN fusion pass,
            # and without constant folding nothing else merges them either.
            t0 = time.time()
            bpath = os.path.join(gen.out, "resnet18_bn.onnx")
            export(module, bpath, taps, inputs[0][1],
                   training=torch.onnx.TrainingMode.PRESERVE,
                   do_constant_folding=False)
            gen.files.append((bpath, os.path.getsize(bpath)))
            n_bn = sum(n.op_type == "BatchNormalization"
                       for n in onnx.load(bpath).graph.node)
            if n_bn == 0:
                raise SystemExit("resnet18_bn.onnx: BatchNormalization was "
                                 "folded anyway")
            t1 = time.time()
            gen.add_cases(bpath, "resnet18_bn", inputs, taps, refs)
            cross_check(gen, bpath, "resnet18_bn", inputs, taps, refs)
            timings.append(("resnet18_bn", 0.0, t1 - t0, time.time() - t1))
        if name == "mobilenet_v2":
            # Record how often the ReLU6 ceiling is reached: a runtime that
            # ran Clip as plain Relu must not pass by accident.
            counts = [0, 0]

            def hook(mod, inp, out):
                counts[0] += int((out == 6.0).sum())
                counts[1] += out.numel()
            hooks = [m.register_forward_hook(hook) for m in net.modules()
                     if isinstance(m, nn.ReLU6)]
            with torch.inference_mode():
                module(inputs[0][1])
            for h in hooks:
                h.remove()
            gen.notes.append(f"mobilenet_v2: {counts[0]} of {counts[1]} "
                             f"ReLU6 outputs sit at the ceiling 6.0 "
                             f"(1x3x64x64 input)")
        del net, module


def run_identity(gen, timings):
    """resnet18 with torchvision's default init: its BatchNorms are all
    alike, so torch's exporter merges the identical folded weight tensors
    and feeds them through Identity nodes. The runtime must see through
    Identity both on weights and on activations."""
    t0 = time.time()
    torch.manual_seed(SEED + 400)
    module = ResNetTaps(torchvision.models.resnet18(weights=None)).eval()
    taps = RESNET_TAPS
    inputs = [gen.input(s, SEED + 40 + i) for i, s in enumerate(TV_INPUTS)]
    with torch.inference_mode():
        refs = [dict(zip(taps, module(x))) for _, x in inputs]
    path = os.path.join(gen.out, "resnet18_identity.onnx")
    export(module, path, taps, inputs[0][1])
    n_id = sum(n.op_type == "Identity" for n in onnx.load(path).graph.node)
    if n_id == 0:
        raise SystemExit("resnet18_identity.onnx: no Identity nodes exported")
    gen.notes.append(f"resnet18_identity: {n_id} Identity nodes")
    gen.files.append((path, os.path.getsize(path)))
    gen.add_cases(path, "resnet18_identity", inputs, taps, refs)
    timings.append(("resnet18_identity", 0.0, time.time() - t0, 0.0))


def run_tiny(gen, timings):
    t0 = time.time()
    torch.manual_seed(SEED + 300)
    module = PoolsTiny().eval()
    inputs = [gen.input(s, SEED + 30 + i) for i, s in enumerate(TINY_INPUTS)]
    taps = PoolsTiny.taps
    with torch.inference_mode():
        refs = [dict(zip(taps, module(x))) for _, x in inputs]
    path = os.path.join(gen.out, "pools_tiny.onnx")
    export(module, path, taps, inputs[0][1])
    m = onnx.load(path)
    folds = fold_pad_into_avgpool(m)
    if folds != 1:
        raise SystemExit(f"pools_tiny: expected one Pad+AveragePool, "
                         f"folded {folds}")
    onnx.save(m, path)
    gen.files.append((path, os.path.getsize(path)))
    gen.add_cases(path, "pools_tiny", inputs, taps, refs)
    cross_check(gen, path, "pools_tiny", inputs, taps, refs)
    timings.append(("pools_tiny", 0.0, time.time() - t0, 0.0))


def verify_manifest(path):
    """Read cases.txt back as a C test would and check every file size, so a
    bug here shows up as a generator failure, not as a confusing test one."""
    seen, last, n = set(), None, 0
    with open(path) as f:
        for ln in f:
            if not ln.strip() or ln.startswith("#"):
                continue
            p = ln.split()
            model, inp, ref = p[0], p[1], p[7]
            dims, rank, rdims = [int(v) for v in p[2:6]], int(p[8]), [
                int(v) for v in p[9:]]
            assert rank in (2, 4) and len(rdims) == rank, ln
            assert os.path.getsize(inp) == 4 * math.prod(dims), ln
            assert os.path.getsize(ref) == 4 * math.prod(rdims), ln
            assert rdims[0] == dims[0], ln
            if model != last:   # lines of one model must be contiguous
                assert model not in seen, f"{model} lines not contiguous"
                seen.add(model)
                last = model
            n += 1
    return n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--shared", default=None,
                    help="shared data folder holding models/ (optional)")
    ap.add_argument("--nominal", default=None, help="ignored")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    t_start = time.time()
    torch.set_num_threads(args.threads)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    gen = Gen(out)
    timings = []

    t0 = time.time()
    run_shared(gen, args.shared)
    t_shared = time.time() - t0
    run_torchvision(gen, timings)
    run_identity(gen, timings)
    run_tiny(gen, timings)

    with open(os.path.join(out, "cases.txt"), "w") as f:
        f.write("# nominal backbone fixtures, made by tests/tools/"
                "gen_backbones.py\n"
                f"# torch {torch.__version__}, torchvision "
                f"{torchvision.__version__}, onnx {onnx.__version__}\n"
                "# MODEL_PATH INPUT_BIN N C H W TAP_NAME REF_BIN RANK D0 D1 "
                "[D2 D3]  (raw little-endian float32, C order)\n")
        f.write("\n".join(gen.cases) + "\n")

    n_lines = verify_manifest(os.path.join(out, "cases.txt"))
    exported = sorted(p for p, _ in gen.files if p.endswith(".onnx"))
    lines = [f"gen_backbones: {out}",
             f"  {n_lines} cases (cases.txt re-read and checked), "
             f"{len(gen.files)} files, "
             f"{sum(b for _, b in gen.files) / 2**20:.1f} MiB",
             f"  (a) shared models: {t_shared:.1f} s"]
    for name, t_build, t_export, t_check in timings:
        lines.append(f"  {name:16s} build+refs {t_build:5.1f} s  export "
                     f"{t_export:5.1f} s  cases+check {t_check:5.1f} s")
    for p in exported:
        lines.append(f"  {os.path.basename(p):22s} "
                     f"{os.path.getsize(p) / 2**20:8.1f} MiB")
    lines += ["  " + n for n in gen.notes]
    lines.append("op inventory of the exported graphs:")
    lines += ["  " + ln for p in exported for ln in
              format_inventory(p).split("\n")]
    lines.append(f"total {time.time() - t_start:.1f} s")
    text = "\n".join(lines)
    with open(os.path.join(out, "summary.txt"), "w") as f:
        f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
