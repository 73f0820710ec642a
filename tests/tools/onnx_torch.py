#!/usr/bin/env python3
"""Run an ONNX CNN graph with plain torch ops (test references and benchmarks).

nominal's C runtime is checked against, and timed against, torch. The models
it runs are ONNX files, so the torch side needs a way to execute an ONNX graph
that (a) follows the ONNX semantics of the ops we use exactly, (b) is as fast
as a hand-written torch module, so a benchmark compares nominal with torch and
not with an interpreter, and (c) refuses anything it does not understand
instead of silently computing something else. onnxruntime is not available on
the build machines, hence this small translator.

    from onnx_torch import OnnxTorch
    net = OnnxTorch("resnet50v2_trunk.onnx")          # weights -> buffers
    with torch.inference_mode():
        out = net(x, ["stage2", "stage3"])    # {"stage2": T, "stage3": T}

Supported ops (default domain only): Add, AveragePool, BatchNormalization
(inference), Clip, Concat, Constant, Conv (2-D), Dropout (inference),
Flatten, Gemm, GlobalAveragePool, Identity, MaxPool, Relu, Reshape. Any other
op, any attribute value outside what is implemented, or a weight that is not a
constant raises OnnxUnsupported at construction time.

forward(x, taps) only runs the nodes the requested values depend on and stops
after the last of them; intermediates are released as soon as they are dead
and ReLU/Clip/Add work in place when the overwritten value is provably dead
(like torchvision's inplace=True), so memory traffic matches a hand-written
module. Channels-last: `net.to(memory_format=torch.channels_last)` converts
the 4-D weights; feed a channels-last input too.

Run `python3 onnx_torch.py --selftest` to check it against the golden vectors
in shared/models/refvec and against naive numpy versions of the trickier op
variants (asymmetric pads, ceil_mode, count_include_pad, Gemm flags, ...).
`python3 onnx_torch.py --ops MODEL.onnx...` prints the op/attribute inventory.

Python is only used for test data and benchmarks; nothing here is needed at
run time by the library.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import onnx
import onnx.helper
import onnx.numpy_helper
import torch
import torch.nn.functional as F


class OnnxUnsupported(NotImplementedError):
    """The graph uses an op, attribute value or input form we do not handle."""


def _attr_dict(node):
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, list):
            v = [x.decode() if isinstance(x, bytes) else x for x in v]
        out[a.name] = v
    return out


def _mkldnn_conv2d(x, w, bias, stride, padding, dilation, groups):
    """F.conv2d's signature, always on oneDNN (see OnnxTorch mkldnn_conv)."""
    return torch.mkldnn_convolution(x, w, bias, padding, stride, dilation,
                                    groups)


def _pool_out_len(n, k, s, pad_begin, pad_end, d, ceil_mode):
    """Output length of an ONNX pooling window along one axis.

    With ceil_mode a last window that would start in the end padding is
    dropped (ONNX opset 19 wording; torch has always done this)."""
    eff = (k - 1) * d + 1
    span = n + pad_begin + pad_end - eff
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n + pad_begin:
        out -= 1
    return out


class _Step:
    """One graph node turned into a torch call.

    fn(*args) computes the output; ifn, when not None, is the same computation
    writing into args[0] (used only when the plan proves args[0] dead).
    ins are (is_buffer, name) pairs. view: the output may share storage with
    input 0 (reshape-like ops), which matters for in-place decisions.
    commutative: args 0 and 1 may be swapped to find a dead one to overwrite.
    """
    __slots__ = ("fn", "ifn", "ins", "out", "view", "commutative", "what")

    def __init__(self, fn, ins, out, what, ifn=None, view=False,
                 commutative=False):
        self.fn, self.ifn, self.ins, self.out = fn, ifn, ins, out
        self.what, self.view, self.commutative = what, view, commutative


class OnnxTorch(torch.nn.Module):
    """torch.nn.Module executing an ONNX graph; see the module docstring."""

    def __init__(self, model, *, name=None, mkldnn_conv=False):
        """model: path or onnx.ModelProto. mkldnn_conv: call oneDNN's
        convolution directly instead of F.conv2d. torch 1.13 itself only
        picks oneDNN for stride-1 1x1 convs when running on > 1 thread; on
        one thread it uses its native path, which on Debian goes through the
        generic reference BLAS (~15x slower). Same arithmetic otherwise."""
        super().__init__()
        self._mkldnn_conv = mkldnn_conv
        if isinstance(model, (str, os.PathLike)):
            name = name or os.fspath(model)
            model = onnx.load(os.fspath(model))
        self.source = name or "<model>"
        self.opset = None
        for imp in model.opset_import:
            if imp.domain in ("", "ai.onnx"):
                self.opset = imp.version
            else:
                raise OnnxUnsupported(f"{self.source}: operator set domain "
                                      f"'{imp.domain}' not supported")
        if self.opset is None:
            raise OnnxUnsupported(f"{self.source}: no ai.onnx opset import")
        g = model.graph

        # Constant values known at construction time (initializers, Constant
        # nodes, Identity of a constant), as numpy arrays, by ONNX name.
        self._consts = {t.name: onnx.numpy_helper.to_array(t)
                        for t in g.initializer}
        self._bufname = {}          # ONNX constant name -> registered buffer
        inputs = [i.name for i in g.input if i.name not in self._consts]
        if len(inputs) != 1:
            raise OnnxUnsupported(f"{self.source}: expected exactly one "
                                  f"non-constant graph input, got {inputs}")
        self.input_name = inputs[0]
        self.output_names = [o.name for o in g.output]
        self._steps = []
        self._producer = {self.input_name: -1}

        for node in g.node:
            handler = getattr(self, "_op_" + node.op_type, None)
            if node.domain not in ("", "ai.onnx") or handler is None:
                raise OnnxUnsupported(
                    f"{self.source}: node '{node.name}': op "
                    f"{node.domain + '::' if node.domain else ''}"
                    f"{node.op_type} is not supported by onnx_torch")
            attrs = _attr_dict(node)
            handler(node, attrs)
            if attrs:
                # Handlers pop every attribute they honour; what is left would
                # be silently ignored, so refuse it.
                raise OnnxUnsupported(
                    f"{self.source}: node '{node.name}' ({node.op_type}): "
                    f"attribute(s) {sorted(attrs)} not supported")
        for o in self.output_names:
            if o not in self._producer:
                raise OnnxUnsupported(f"{self.source}: graph output '{o}' is "
                                      f"not computed by any node")
        self._plans = {}
        # The constants only needed as Python numbers (pads, clip bounds,
        # shapes) are not kept; the weights live on as buffers.
        del self._consts

    # ----------------------------------------------------------- building --
    def _fail(self, node, msg):
        raise OnnxUnsupported(f"{self.source}: node '{node.name}' "
                              f"({node.op_type}): {msg}")

    def _const(self, node, name, what):
        """Value of a constant input (for Python-level parameters)."""
        if name not in self._consts:
            self._fail(node, f"{what} ('{name}') must be a constant")
        return self._consts[name]

    def _buf(self, node, name, what, dtype=torch.float32):
        """Register constant input `name` as a buffer; returns an input spec."""
        if name not in self._consts:
            self._fail(node, f"{what} ('{name}') must be a constant "
                       f"initializer")
        if name not in self._bufname:
            arr = np.ascontiguousarray(self._consts[name])
            bname = f"c{len(self._bufname)}"
            self.register_buffer(bname, torch.from_numpy(arr.copy()).to(dtype))
            self._bufname[name] = bname
        return (True, self._bufname[name])

    def _add_buffer(self, tensor):
        bname = f"c{len(self._bufname)}"
        self._bufname[f"<derived {bname}>"] = bname
        self.register_buffer(bname, tensor.contiguous())
        return (True, bname)

    def _val(self, node, name):
        """Input spec of a value computed by an earlier node (or the input)."""
        if name not in self._producer:
            if name in self._consts:
                self._fail(node, f"constant data input '{name}' not "
                           f"supported")
            self._fail(node, f"input '{name}' is used before it is produced "
                       f"(graph not topologically sorted?)")
        return (False, name)

    def _arg(self, node, name, what):
        """Spec for an input that may be a computed value or a constant."""
        if name in self._consts and name not in self._producer:
            return self._buf(node, name, what)
        return self._val(node, name)

    def _outputs(self, node, allowed=1):
        outs = [o for o in node.output]
        extra = [o for o in outs[allowed:] if o]
        if extra or not outs or not outs[0]:
            self._fail(node, f"only {allowed} output(s) supported, got "
                       f"{list(node.output)}")
        return outs[0]

    def _emit(self, node, fn, ins, **kw):
        out = self._outputs(node)
        if out in self._producer or out in self._consts:
            self._fail(node, f"value '{out}' is defined twice")
        self._producer[out] = len(self._steps)
        self._steps.append(_Step(fn, tuple(ins), out,
                                 f"{node.op_type} '{node.name}'", **kw))

    def _pads_2d(self, node, attrs):
        """ONNX pads [t, l, b, r] after resolving auto_pad (static kinds)."""
        auto = attrs.pop("auto_pad", "NOTSET")
        pads = attrs.pop("pads", [0, 0, 0, 0])
        if auto == "VALID":
            pads = [0, 0, 0, 0]
        elif auto != "NOTSET":
            # SAME_* pads depend on the input size; none of our models use it.
            self._fail(node, f"auto_pad={auto} not supported")
        if len(pads) != 4 or min(pads) < 0:
            self._fail(node, f"pads={pads} not supported (2-D, >= 0 only)")
        return list(pads)

    @staticmethod
    def _ints(attrs, key, default):
        return list(attrs.pop(key, default))

    # ------------------------------------------------------------ the ops --
    def _op_Constant(self, node, attrs):
        out = self._outputs(node)
        if "value" in attrs:
            val = onnx.numpy_helper.to_array(attrs.pop("value"))
        elif "value_float" in attrs:
            val = np.array(attrs.pop("value_float"), np.float32)
        elif "value_floats" in attrs:
            val = np.array(attrs.pop("value_floats"), np.float32)
        elif "value_int" in attrs:
            val = np.array(attrs.pop("value_int"), np.int64)
        elif "value_ints" in attrs:
            val = np.array(attrs.pop("value_ints"), np.int64)
        else:
            self._fail(node, f"constant kind {sorted(attrs)} not supported")
        self._consts[out] = val

    def _op_Identity(self, node, attrs):
        src = node.input[0]
        if src in self._consts and src not in self._producer:
            self._consts[self._outputs(node)] = self._consts[src]
            return
        self._emit(node, lambda x: x, [self._val(node, src)], view=True)

    def _op_Dropout(self, node, attrs):
        # Inference: identity. Opset 12+ may carry a training_mode input.
        attrs.pop("seed", None)
        attrs.pop("ratio", None)          # opset < 12 attribute; irrelevant
        attrs.pop("is_test", None)        # very old opsets
        if len(node.input) > 2 and node.input[2]:
            if bool(self._const(node, node.input[2], "training_mode")):
                self._fail(node, "training_mode=1 not supported")
        self._emit(node, lambda x: x, [self._val(node, node.input[0])],
                   view=True)

    def _op_Conv(self, node, attrs):
        w = self._const(node, node.input[1], "weight W")
        if w.ndim != 4:
            self._fail(node, f"only 2-D convolution supported (W {w.shape})")
        kernel = self._ints(attrs, "kernel_shape", w.shape[2:])
        if list(kernel) != list(w.shape[2:]):
            self._fail(node, f"kernel_shape {kernel} != weight {w.shape}")
        strides = self._ints(attrs, "strides", [1, 1])
        dil = self._ints(attrs, "dilations", [1, 1])
        groups = attrs.pop("group", 1)
        t, l, b, r = self._pads_2d(node, attrs)
        ins = [self._val(node, node.input[0]), self._buf(node, node.input[1],
                                                         "weight W")]
        if len(node.input) > 2 and node.input[2]:
            ins.append(self._buf(node, node.input[2], "bias B"))
        strides, dil = tuple(strides), tuple(dil)
        conv2d = _mkldnn_conv2d if self._mkldnn_conv else F.conv2d
        if t == b and l == r:
            pad = (t, l)

            def conv(x, w, bias=None):
                return conv2d(x, w, bias, strides, pad, dil, groups)
        else:
            # torch only pads symmetrically; zero-pad explicitly first.
            fpad = (l, r, t, b)

            def conv(x, w, bias=None):
                return conv2d(F.pad(x, fpad), w, bias, strides, (0, 0), dil,
                              groups)
        self._emit(node, conv, ins)

    def _op_BatchNormalization(self, node, attrs):
        eps = float(attrs.pop("epsilon", 1e-5))
        attrs.pop("momentum", None)       # training-only
        if attrs.pop("spatial", 1) != 1:
            self._fail(node, "spatial=0 not supported")
        if attrs.pop("training_mode", 0) != 0:
            self._fail(node, "training_mode=1 not supported")
        attrs.pop("is_test", None)
        x = self._val(node, node.input[0])
        scale, bias, mean, var = (
            self._buf(node, node.input[i], what) for i, what in
            ((1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")))

        # F.batch_norm in inference mode is exactly what torch.nn.BatchNorm2d
        # runs in eval(), so the reference matches an un-folded torch module.
        def bn(x, scale, bias, mean, var):
            return F.batch_norm(x, mean, var, scale, bias, False, 0.0, eps)
        self._emit(node, bn, [x, scale, bias, mean, var])

    def _op_Relu(self, node, attrs):
        self._emit(node, F.relu, [self._val(node, node.input[0])],
                   ifn=torch.relu_)

    def _op_Clip(self, node, attrs):
        if self.opset < 11:
            lo = attrs.pop("min", -math.inf)
            hi = attrs.pop("max", math.inf)
        else:
            lo = hi = None
            if len(node.input) > 1 and node.input[1]:
                lo = float(self._const(node, node.input[1], "min"))
            if len(node.input) > 2 and node.input[2]:
                hi = float(self._const(node, node.input[2], "max"))
        lo = None if lo is None or lo == -math.inf else float(lo)
        hi = None if hi is None or hi == math.inf else float(hi)
        if lo is None and hi is None:
            self._emit(node, lambda x: x, [self._val(node, node.input[0])],
                       view=True)
            return
        self._emit(node, lambda x: torch.clamp(x, lo, hi),
                   [self._val(node, node.input[0])],
                   ifn=lambda x: torch.clamp_(x, lo, hi))

    def _op_Add(self, node, attrs):
        a = self._arg(node, node.input[0], "A")
        b = self._arg(node, node.input[1], "B")

        def add_(x, y):
            # Only when no broadcasting grows x; else fall back to a new tensor.
            return x.add_(y) if x.shape == y.shape else torch.add(x, y)
        self._emit(node, torch.add, [a, b], ifn=add_, commutative=True)

    def _op_Concat(self, node, attrs):
        if "axis" not in attrs:
            self._fail(node, "missing axis")
        axis = attrs.pop("axis")
        ins = [self._arg(node, n, "input") for n in node.input]
        self._emit(node, lambda *xs: torch.cat(xs, axis), ins)

    def _op_Flatten(self, node, attrs):
        axis = attrs.pop("axis", 1)

        def flatten(x):
            a = axis + x.dim() if axis < 0 else axis
            return x.reshape(math.prod(x.shape[:a]), -1)
        self._emit(node, flatten, [self._val(node, node.input[0])], view=True)

    def _op_Reshape(self, node, attrs):
        shape = [int(s) for s in self._const(node, node.input[1], "shape")]
        if attrs.pop("allowzero", 0) and 0 in shape:
            self._fail(node, "allowzero=1 with a 0 in shape not supported")
        if 0 in shape:
            # ONNX 0 = copy this dimension from the input.
            def reshape(x):
                return x.reshape([x.shape[i] if s == 0 else s
                                  for i, s in enumerate(shape)])
        else:
            def reshape(x):
                return x.reshape(shape)
        self._emit(node, reshape, [self._val(node, node.input[0])], view=True)

    def _op_GlobalAveragePool(self, node, attrs):
        def gap(x):
            if x.dim() != 4:
                raise OnnxUnsupported(f"GlobalAveragePool on {x.dim()}-D input")
            return F.adaptive_avg_pool2d(x, 1)
        self._emit(node, gap, [self._val(node, node.input[0])])

    def _pool_common(self, node, attrs):
        if "kernel_shape" not in attrs:
            self._fail(node, "missing kernel_shape")
        k = self._ints(attrs, "kernel_shape", None)
        if len(k) != 2:
            self._fail(node, f"only 2-D pooling supported ({k})")
        s = self._ints(attrs, "strides", [1, 1])
        d = self._ints(attrs, "dilations", [1, 1])
        ceil = bool(attrs.pop("ceil_mode", 0))
        pads = self._pads_2d(node, attrs)
        return tuple(k), tuple(s), tuple(d), ceil, pads

    def _op_MaxPool(self, node, attrs):
        k, s, d, ceil, (t, l, b, r) = self._pool_common(node, attrs)
        if attrs.pop("storage_order", 0) != 0:
            self._fail(node, "storage_order=1 not supported")
        if t == b and l == r and 2 * t <= k[0] and 2 * l <= k[1]:
            # torch pads with -inf and drops ceil windows that would start in
            # the end padding: the ONNX semantics, in one call.
            pad = (t, l)

            def maxpool(x):
                return F.max_pool2d(x, k, s, pad, d, ceil)
        else:
            # Asymmetric (or over-large) pads: pad with -inf ourselves, then
            # cut the extra window torch may keep because it cannot tell the
            # explicit end padding from data.
            fpad = (l, r, t, b)

            def maxpool(x):
                oh = _pool_out_len(x.shape[2], k[0], s[0], t, b, d[0], ceil)
                ow = _pool_out_len(x.shape[3], k[1], s[1], l, r, d[1], ceil)
                y = F.max_pool2d(F.pad(x, fpad, value=-math.inf), k, s, 0, d,
                                 ceil)
                return y[:, :, :oh, :ow]
        self._emit(node, maxpool, [self._val(node, node.input[0])])

    def _op_AveragePool(self, node, attrs):
        k, s, d, ceil, (t, l, b, r) = self._pool_common(node, attrs)
        cip = bool(attrs.pop("count_include_pad", 0))
        if d != (1, 1):
            self._fail(node, f"dilations={list(d)} not supported")
        if t == b and l == r and 2 * t <= k[0] and 2 * l <= k[1]:
            pad = (t, l)

            def avgpool(x):
                return F.avg_pool2d(x, k, s, pad, ceil, cip)
        else:
            fpad = (l, r, t, b)

            def sizes(x):
                return (_pool_out_len(x.shape[2], k[0], s[0], t, b, 1, ceil),
                        _pool_out_len(x.shape[3], k[1], s[1], l, r, 1, ceil))
            if cip:
                # Zero pads count: padding explicitly then averaging with
                # pads counted gives the same divisor as ONNX.
                def avgpool(x):
                    oh, ow = sizes(x)
                    y = F.avg_pool2d(F.pad(x, fpad), k, s, 0, ceil, True)
                    return y[:, :, :oh, :ow]
            else:
                # Pads excluded: window sum / number of real elements, both
                # from sum-pooling (divisor 1) of the padded data and of a
                # padded ones-mask.
                def avgpool(x):
                    oh, ow = sizes(x)
                    num = F.avg_pool2d(F.pad(x, fpad), k, s, 0, ceil, True, 1)
                    ones = torch.ones((1, 1) + tuple(x.shape[2:]),
                                      dtype=x.dtype)
                    den = F.avg_pool2d(F.pad(ones, fpad), k, s, 0, ceil, True,
                                       1)
                    return (num / den)[:, :, :oh, :ow]
        self._emit(node, avgpool, [self._val(node, node.input[0])])

    def _op_Gemm(self, node, attrs):
        alpha = float(attrs.pop("alpha", 1.0))
        beta = float(attrs.pop("beta", 1.0))
        trans_a = bool(attrs.pop("transA", 0))
        trans_b = bool(attrs.pop("transB", 0))
        a = self._val(node, node.input[0])
        bm = self._const(node, node.input[1], "B")
        if bm.ndim != 2:
            self._fail(node, f"B must be 2-D, got {bm.shape}")
        # F.linear wants weight [out, in]: that is B itself when transB=1.
        wt = torch.from_numpy(np.array(bm if trans_b else bm.T, np.float32,
                                       order="C"))
        w = self._add_buffer(wt.float())
        n_out = wt.shape[0]
        bias = None         # 1-D bias folded into F.linear
        c_full = None       # any other C shape: added after
        if len(node.input) > 2 and node.input[2]:
            c = self._const(node, node.input[2], "C").astype(np.float32)
            if c.size == n_out and (c.ndim == 1 or c.shape == (1, n_out)):
                bias = self._add_buffer(torch.from_numpy(
                    (c.reshape(n_out) * np.float32(beta)
                     if beta != 1.0 else c.reshape(n_out)).copy()))
            else:
                c_full = self._add_buffer(torch.from_numpy(
                    (c * np.float32(beta)).copy()))
        ins = [a, w] + [x for x in (bias, c_full) if x is not None]
        has_bias, has_full = bias is not None, c_full is not None

        def gemm(x, w, *rest):
            if trans_a:
                x = x.t()
            if alpha == 1.0:
                y = F.linear(x, w, rest[0] if has_bias else None)
            elif has_bias:
                # alpha scales A.B only, not the bias: beta*C + alpha*(A.B).
                y = torch.addmm(rest[0], x, w.t(), alpha=alpha)
            else:
                y = F.linear(x, w) * alpha
            return y + rest[-1] if has_full else y
        self._emit(node, gemm, ins)

    # ---------------------------------------------------------- executing --
    def _plan_for(self, taps):
        key = tuple(taps)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        for t in taps:
            if t not in self._producer:
                raise KeyError(f"{self.source}: no value named '{t}'; graph "
                               f"outputs are {self.output_names}")
        # 1. Keep only the nodes the taps depend on (this also stops the run
        #    right after the last tap is computed).
        need = set(taps)
        keep = []
        for st in reversed(self._steps):
            if st.out in need:
                keep.append(st)
                need.update(n for is_buf, n in st.ins if not is_buf)
        keep.reverse()
        # 2. Last use of every value; taps and the caller's input never die.
        last = {}
        for i, st in enumerate(keep):
            for is_buf, n in st.ins:
                if not is_buf:
                    last[n] = i
        pinned = set(taps) | {self.input_name}
        # 3. Values that may share storage (reshape-like outputs) form groups;
        #    a group may be overwritten only if no member is pinned or used
        #    later.
        group = {}

        def root(n):
            while group.get(n, n) != n:
                n = group[n]
            return n
        for st in keep:
            if st.view:
                group[st.out] = root(st.ins[0][1])
        g_last, g_pinned = {}, set()
        for n, i in last.items():
            r = root(n)
            g_last[r] = max(g_last.get(r, -1), i)
        for n in pinned:
            g_pinned.add(root(n))

        def disposable(spec, i):
            is_buf, n = spec
            if is_buf:
                return False
            r = root(n)
            return r not in g_pinned and g_last.get(r, -1) == i

        steps = []
        for i, st in enumerate(keep):
            fn, ins = st.fn, st.ins
            if st.ifn is not None:
                if disposable(ins[0], i) and ins.count(ins[0]) == 1:
                    fn = st.ifn
                elif (st.commutative and len(ins) > 1 and ins[0] != ins[1]
                      and disposable(ins[1], i)):
                    fn, ins = st.ifn, (ins[1], ins[0]) + ins[2:]
            drops = tuple(sorted({n for is_buf, n in ins
                                  if not is_buf and last.get(n) == i
                                  and n not in pinned}))
            steps.append((fn, ins, st.out, drops, st.what))
        plan = self._plans[key] = steps
        return plan

    def forward(self, x, taps=None):
        """Run the graph on x; returns {tap: tensor} in the order requested.

        taps: list of value names (graph outputs or any intermediate), a
        single name, or None for all graph outputs."""
        if taps is None:
            taps = self.output_names
        elif isinstance(taps, str):
            taps = [taps]
        bufs = self._buffers
        env = {self.input_name: x}
        for fn, ins, out, drops, what in self._plan_for(taps):
            try:
                env[out] = fn(*[bufs[n] if is_buf else env[n]
                                for is_buf, n in ins])
            except Exception as e:
                raise RuntimeError(f"{self.source}: {what}: {e}") from e
            for n in drops:
                del env[n]
        return {t: env[t] for t in taps}


# ============================================================ inventory ====
def op_inventory(path):
    """{op_type: count} and {(op_type, attr): set(values)} of an ONNX file."""
    m = onnx.load(path, load_external_data=False)
    counts, attrs = {}, {}
    for n in m.graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
        for k, v in _attr_dict(n).items():
            if isinstance(v, onnx.TensorProto):
                v = f"tensor{list(v.dims)}"
            elif isinstance(v, list):
                v = tuple(v)
            attrs.setdefault((n.op_type, k), set()).add(v)
    return counts, attrs


def format_inventory(path):
    counts, attrs = op_inventory(path)
    lines = [f"{os.path.basename(path)}: " +
             ", ".join(f"{k} x{v}" for k, v in sorted(counts.items()))]
    for (op, k), vals in sorted(attrs.items()):
        vs = sorted(vals, key=lambda v: (str(type(v)), v))
        lines.append(f"    {op}.{k}: " + ", ".join(
            str(list(v)) if isinstance(v, tuple) else str(v) for v in vs))
    return "\n".join(lines)


# ============================================================= selftest ====
def _rel_err(got, ref):
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        return math.inf
    scale = max(float(np.max(np.abs(ref))), 1e-30)
    return float(np.max(np.abs(got - ref))) / scale


def _selftest_refvec(refdir, tol, channels_last):
    """Golden vectors made by torch modules (refvec/refvectors.json)."""
    with open(os.path.join(refdir, "refvectors.json")) as f:
        spec = json.load(f)
    inputs = {}
    for k, v in spec["inputs"].items():
        arr = np.fromfile(os.path.join(refdir, v["file"]), "<f4")
        inputs[k] = torch.from_numpy(arr.reshape(v["shape"]).copy())
    worst, failures, n_checked = 0.0, [], 0
    models_dir = os.path.dirname(os.path.abspath(refdir))
    for mname, m in spec["models"].items():
        # The channels-last pass also uses direct oneDNN convolutions: that
        # is how bench/bench_torch.py runs by default.
        net = OnnxTorch(os.path.join(models_dir, m["onnx"]),
                        mkldnn_conv=channels_last).eval()
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        for cname, case in m["cases"].items():
            if channels_last and cname != "small_random_64x80":
                continue        # one case is enough for the layout path
            x = inputs[case["input"]]
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            t0 = time.perf_counter()
            with torch.inference_mode():
                outs = net(x, list(case["outputs"]))
            ms = (time.perf_counter() - t0) * 1e3
            for oname, o in case["outputs"].items():
                y = outs[oname].contiguous().numpy().astype(np.float64)
                errs = {}
                if list(y.shape) != o["shape"]:
                    failures.append(f"{mname}/{cname}/{oname}: shape "
                                    f"{list(y.shape)} != {o['shape']}")
                    continue
                scale = max(abs(o["min"]), abs(o["max"]))
                if "file" in o:
                    ref = np.fromfile(os.path.join(refdir, o["file"]), "<f4")
                    errs["full"] = _rel_err(y.reshape(-1), ref)
                if "crop" in o:
                    c = o["crop"]
                    ref = np.fromfile(os.path.join(refdir, c["file"]), "<f4")
                    sl = y[tuple(slice(0, n) for n in c["shape"])]
                    errs["crop"] = (float(np.max(np.abs(sl.reshape(-1) - ref)))
                                    / scale)
                flat = y.reshape(-1)
                errs["samples"] = max(
                    abs(flat[s["flat_index"]] - s["value"]) / scale
                    for s in o["samples"]) if o.get("samples") else 0.0
                errs["min/max"] = max(abs(flat.min() - o["min"]),
                                      abs(flat.max() - o["max"])) / scale
                errs["l2"] = abs(np.sqrt(np.sum(flat * flat)) - o["l2"]) / \
                    o["l2"]
                # A sum of n values with element errors e*scale can move by
                # n*e*scale; normalise by what cancellation cannot hide.
                errs["sum"] = abs(flat.sum() - o["sum"]) / (
                    math.sqrt(flat.size) * o["l2"])
                e = max(errs.values())
                worst = max(worst, e)
                n_checked += 1
                status = "ok" if e <= tol else "FAIL"
                if e > tol:
                    failures.append(f"{mname}/{cname}/{oname}: {errs}")
                first = oname == next(iter(case["outputs"]))
                print(f"  {status:4s} {mname:18s} {cname:19s} {oname:9s} "
                      f"{'x'.join(map(str, y.shape)):15s} rel err {e:.1e} "
                      f"({', '.join(sorted(errs))})"
                      + (f"  [{ms:.0f} ms]" if first else ""))
    return n_checked, worst, failures


# --- naive numpy versions of the op variants the golden vectors miss --------
def _np_pad(x, t, l, b, r, value):
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


def _np_conv(x, w, bias, strides, pads, dil, group):
    t, l, b, r = pads
    xp = _np_pad(x.astype(np.float64), t, l, b, r, 0.0)
    n, c, hp, wp = xp.shape
    o, cg, kh, kw = w.shape
    oh = (hp - (kh - 1) * dil[0] - 1) // strides[0] + 1
    ow = (wp - (kw - 1) * dil[1] - 1) // strides[1] + 1
    y = np.zeros((n, o, oh, ow))
    og = o // group
    for g in range(group):
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, g * cg:(g + 1) * cg,
                           i * dil[0]:i * dil[0] + strides[0] * (oh - 1) + 1:
                           strides[0],
                           j * dil[1]:j * dil[1] + strides[1] * (ow - 1) + 1:
                           strides[1]]
                y[:, g * og:(g + 1) * og] += np.einsum(
                    "nchw,oc->nohw", patch, w[g * og:(g + 1) * og, :, i, j])
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y


def _np_pool(x, kind, k, s, pads, ceil, dil=(1, 1), cip=False):
    """Window by window, straight from the ONNX operator description."""
    t, l, b, r = pads
    n, c, h, w = x.shape
    oh = _pool_out_len(h, k[0], s[0], t, b, dil[0], ceil)
    ow = _pool_out_len(w, k[1], s[1], l, r, dil[1], ceil)
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            rows = [i * s[0] - t + a * dil[0] for a in range(k[0])]
            cols = [j * s[1] - l + a * dil[1] for a in range(k[1])]
            vr = [q for q in rows if 0 <= q < h]
            vc = [q for q in cols if 0 <= q < w]
            win = x[:, :, vr][:, :, :, vc].astype(np.float64)
            if kind == "max":
                y[:, :, i, j] = win.max(axis=(2, 3))
            else:
                if cip:   # positions inside the padded extent count
                    cnt = (sum(-t <= q < h + b for q in rows)
                           * sum(-l <= q < w + r for q in cols))
                else:
                    cnt = len(vr) * len(vc)
                y[:, :, i, j] = win.sum(axis=(2, 3)) / cnt
    return y


def _mk_model(nodes, inits, in_shape, outs, opset=13):
    h = onnx.helper
    g = h.make_graph(
        nodes, "t",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, in_shape)],
        [h.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None)
         for o in outs],
        [onnx.numpy_helper.from_array(v, k) for k, v in inits.items()])
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def _selftest_ops(tol):
    """Each synthetic graph against an independent numpy computation."""
    h = onnx.helper
    rng = np.random.default_rng(7)
    results = []

    def check(label, model, x, expect, taps=None, **kw):
        net = OnnxTorch(model, name=label, **kw).eval()
        with torch.inference_mode():
            got = net(torch.from_numpy(x), taps or list(expect))
        e = max(_rel_err(got[k].numpy(), v) for k, v in expect.items())
        results.append((label, e))

    x = rng.standard_normal((2, 4, 9, 11)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(6).astype(np.float32)
    for pads, st, dl in (([0, 1, 2, 1], [2, 1], [1, 2]),
                         ([1, 1, 1, 1], [2, 2], [1, 1])):
        node = h.make_node("Conv", ["x", "w", "b"], ["y"], pads=pads,
                           strides=st, dilations=dl, group=2,
                           kernel_shape=[3, 3])
        for mk in (False, True):
            check(f"Conv pads={pads} strides={st} dil={dl} group=2"
                  f"{' mkldnn_conv' if mk else ''}",
                  _mk_model([node], {"w": w, "b": bias}, x.shape, ["y"]), x,
                  {"y": _np_conv(x, w, bias, st, pads, dl, 2)},
                  mkldnn_conv=mk)

    x = rng.standard_normal((2, 3, 10, 9)).astype(np.float32)
    pool_cases = [
        ("max", [3, 2], [2, 2], [1, 0, 0, 1], True, [1, 1], False),
        ("max", [3, 3], [2, 2], [0, 0, 0, 0], True, [1, 1], False),
        ("max", [3, 3], [2, 1], [1, 1, 1, 1], False, [2, 1], False),
        ("max", [2, 3], [3, 2], [0, 2, 2, 0], False, [1, 1], False),
        ("avg", [3, 3], [2, 2], [1, 1, 1, 1], False, [1, 1], False),
        ("avg", [3, 3], [2, 2], [1, 1, 1, 1], False, [1, 1], True),
        ("avg", [3, 3], [2, 2], [1, 1, 1, 1], True, [1, 1], False),
        ("avg", [3, 2], [2, 2], [2, 0, 1, 1], False, [1, 1], False),
        ("avg", [3, 2], [2, 2], [2, 0, 1, 1], False, [1, 1], True),
        ("avg", [3, 3], [2, 2], [0, 1, 2, 0], True, [1, 1], False),
    ]
    for kind, k, s, p, ceil, d, cip in pool_cases:
        kw = dict(kernel_shape=k, strides=s, pads=p, ceil_mode=int(ceil))
        if kind == "max":
            kw["dilations"] = d
            node = h.make_node("MaxPool", ["x"], ["y"], **kw)
        else:
            node = h.make_node("AveragePool", ["x"], ["y"],
                               count_include_pad=int(cip), **kw)
        check(f"{'MaxPool' if kind == 'max' else 'AveragePool'} k={k} s={s} "
              f"pads={p} ceil={int(ceil)}"
              + (f" dil={d}" if kind == "max" else f" cip={int(cip)}"),
              _mk_model([node], {}, x.shape, ["y"]), x,
              {"y": _np_pool(x, kind, k, s, p, ceil, d, cip)})

    a = rng.standard_normal((5, 3)).astype(np.float32)   # used as A^T: 3x5
    bmat = rng.standard_normal((5, 4)).astype(np.float32)
    for c in (rng.standard_normal((1, 4)).astype(np.float32),
              rng.standard_normal((3, 4)).astype(np.float32)):
        node = h.make_node("Gemm", ["x", "B", "C"], ["y"], alpha=0.5,
                           beta=2.0, transA=1, transB=0)
        ref = 0.5 * (a.T.astype(np.float64) @ bmat) + 2.0 * c
        check(f"Gemm alpha=0.5 beta=2 transA=1 transB=0 C{list(c.shape)}",
              _mk_model([node], {"B": bmat, "C": c}, a.shape, ["y"]), a,
              {"y": ref})
    a2 = rng.standard_normal((3, 5)).astype(np.float32)
    bt = rng.standard_normal((4, 5)).astype(np.float32)
    node = h.make_node("Gemm", ["x", "B"], ["y"], alpha=0.25, transB=1)
    check("Gemm alpha=0.25 transB=1 no C",
          _mk_model([node], {"B": bt}, a2.shape, ["y"]), a2,
          {"y": 0.25 * (a2.astype(np.float64) @ bt.T)})

    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32) * 4
    nodes = [
        h.make_node("Constant", [], ["lo"], value=onnx.numpy_helper.from_array(
            np.array(-1.5, np.float32))),
        h.make_node("Clip", ["x", "lo", ""], ["c1"]),
        h.make_node("Clip", ["x", "z", "six"], ["c2"]),
        h.make_node("Reshape", ["c2", "shp"], ["r"]),
        h.make_node("Flatten", ["c1"], ["f"], axis=2),
        h.make_node("Identity", ["f"], ["fi"]),
        h.make_node("Concat", ["x", "c1"], ["cat"], axis=-1),
    ]
    inits = {"z": np.array(0, np.float32), "six": np.array(6, np.float32),
             "shp": np.array([0, -1, 5], np.int64)}
    c1 = np.maximum(x, -1.5)
    c2 = np.clip(x, 0, 6)
    check("Constant/Clip/Reshape(0,-1)/Flatten(axis=2)/Identity/Concat(-1)",
          _mk_model(nodes, inits, x.shape, ["c1", "r", "fi", "cat"]), x,
          {"c1": c1, "r": c2.reshape(2, -1, 5), "fi": c1.reshape(6, 20),
           "cat": np.concatenate([x, c1], -1)})
    check("Clip opset 6 attributes",
          _mk_model([h.make_node("Clip", ["x"], ["y"], min=-1.0, max=2.0)],
                    {}, x.shape, ["y"], opset=6), x,
          {"y": np.clip(x, -1, 2)})

    # In-place safety: taps and values aliased by a view must survive the
    # in-place ReLU/Add of later nodes, whatever subset of taps is asked for.
    w1 = rng.standard_normal((3, 3, 1, 1)).astype(np.float32)
    scale = rng.uniform(0.5, 1.5, 3).astype(np.float32)
    shift = rng.standard_normal(3).astype(np.float32)
    mean = rng.standard_normal(3).astype(np.float32)
    var = rng.uniform(0.5, 2, 3).astype(np.float32)
    nodes = [h.make_node("Conv", ["x", "w1"], ["a"], kernel_shape=[1, 1]),
             h.make_node("BatchNormalization", ["a", "s", "bb", "m", "v"],
                         ["bn"], epsilon=1e-3),
             h.make_node("Relu", ["bn"], ["b"]),
             h.make_node("Add", ["b", "a"], ["c"]),
             h.make_node("Relu", ["c"], ["d"]),
             h.make_node("Flatten", ["a"], ["fa"]),
             h.make_node("Relu", ["a"], ["e"]),
             h.make_node("Add", ["e", "d"], ["g"])]
    inits = {"w1": w1, "s": scale, "bb": shift, "m": mean, "v": var}
    ra = _np_conv(x, w1, None, [1, 1], [0, 0, 0, 0], [1, 1], 1)
    rbn = ((ra - mean.reshape(1, 3, 1, 1)) /
           np.sqrt(var.reshape(1, 3, 1, 1) + 1e-3) * scale.reshape(1, 3, 1, 1)
           + shift.reshape(1, 3, 1, 1))
    rb = np.maximum(rbn, 0)
    rd = np.maximum(rb + ra, 0)
    ref = {"a": ra, "b": rb, "c": rb + ra, "d": rd, "fa": ra.reshape(2, -1),
           "e": np.maximum(ra, 0), "g": np.maximum(ra, 0) + rd}
    model = _mk_model(nodes, inits, x.shape, ["g"])
    for taps in (["g"], ["a", "g"], ["fa", "g"], ["b", "d"], ["c", "g"],
                 ["d"], ["e", "fa"]):
        check(f"BatchNormalization + in-place safety, taps={taps}", model, x,
              {t: ref[t] for t in taps}, taps)

    # Refusals must be loud.
    refusals = [
        ("op Mul", _mk_model([h.make_node("Mul", ["x", "x"], ["y"])], {},
                             x.shape, ["y"])),
        ("Conv auto_pad=SAME_UPPER", _mk_model(
            [h.make_node("Conv", ["x", "w1"], ["y"], auto_pad="SAME_UPPER")],
            {"w1": w1}, x.shape, ["y"])),
        ("MaxPool Indices output", _mk_model(
            [h.make_node("MaxPool", ["x"], ["y", "idx"], kernel_shape=[2, 2])],
            {}, x.shape, ["y"])),
        ("Relu with unknown attribute", _mk_model(
            [h.make_node("Relu", ["x"], ["y"], alpha=0.1)], {}, x.shape,
            ["y"])),
        ("Conv with computed weight", _mk_model(
            [h.make_node("Relu", ["x"], ["r"]),
             h.make_node("Conv", ["x", "r"], ["y"])], {}, x.shape, ["y"])),
    ]
    refused = []
    for label, model in refusals:
        try:
            OnnxTorch(model, name=label)
            refused.append((label, None))
        except OnnxUnsupported as e:
            refused.append((label, str(e)))
    return results, refused


def selftest(shared, tol):
    refdir = os.path.join(shared, "models", "refvec")
    t0 = time.time()
    ok = True
    print(f"onnx_torch selftest: torch {torch.__version__}, onnx "
          f"{onnx.__version__}, {torch.get_num_threads()} threads, "
          f"tolerance {tol:g} x max|ref|")
    if os.path.isfile(os.path.join(refdir, "refvectors.json")):
        for cl in (False, True):
            mode = "channels-last, mkldnn_conv" if cl else "contiguous NCHW"
            print(f"golden vectors {refdir} ({mode}):")
            n, worst, fails = _selftest_refvec(refdir, tol, cl)
            print(f"  {n} outputs, worst rel err {worst:.2e}, "
                  f"{len(fails)} failures")
            for f in fails:
                print("  FAIL", f)
            ok &= not fails and n > 0
    else:
        print(f"golden vectors: {refdir} not found -> FAIL")
        ok = False
    print("op variants vs naive numpy (float64):")
    results, refused = _selftest_ops(tol)
    for label, e in results:
        good = e <= tol
        ok &= good
        print(f"  {'ok' if good else 'FAIL':4s} {label}: rel err {e:.1e}")
    for label, msg in refused:
        ok &= msg is not None
        print(f"  {'ok' if msg else 'FAIL':4s} refuses {label}"
              f"{': ' + msg.split(': ', 1)[-1] if msg else ' (NOT refused)'}")
    print(f"selftest {'PASSED' if ok else 'FAILED'} in "
          f"{time.time() - t0:.1f} s")
    return ok


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--selftest", action="store_true",
                    help="check against shared/models/refvec and numpy")
    ap.add_argument("--shared", default=os.path.normpath(
        os.path.join(here, "..", "..", "..", "shared")),
        help="shared data folder (holds models/); default ../shared from "
             "the repository root")
    ap.add_argument("--tol", type=float, default=1e-5,
                    help="max |torch - ref| / max|ref| (default 1e-5)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--ops", nargs="+", metavar="MODEL",
                    help="print op types and attribute values of ONNX files")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.ops:
        for p in args.ops:
            print(format_inventory(p))
        return 0
    if args.selftest:
        return 0 if selftest(args.shared, args.tol) else 1
    ap.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
