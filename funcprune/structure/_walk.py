"""Walk a captured ATen graph and record which parameter slices are coupled.

Every tensor value carries per dim either the atoms of its indices or ``None`` (fixed). Each op
rule says how atoms flow from inputs to outputs and which couplings or prohibitions the op
implies; anything an op does not prove safe is forbidden, with the reason, never guessed.

>>> import torch
>>> from funcprune.structure._capture import capture
>>> walk = walk_graph(capture(torch.nn.Linear(2, 3), (torch.zeros(1, 2),)))
>>> labels, reasons = walk.book.components()
>>> sorted(set(reasons.values()))
['aten.linear: input features are fixed (a graph input or an unprunable value)', 'graph output: its shape must not change']
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import fx
from torch.utils import _pytree as pytree

from funcprune.structure._atoms import AtomBook, Atoms, IntArray
from funcprune.structure._capture import Captured

Dims = tuple[Atoms, ...]
NOT_CHANNEL = "not a channel dim: "
"""Prefix of the reasons that concern dims which are not channels (kernel dims, vocabularies)."""
Value = Any
"""``Dims`` for a tensor, a list of values for a tuple output, ``None`` for anything else."""


class Walk:
    """The state of one walk: the atom book, each node's value and the unsupported ops seen."""

    def __init__(self) -> None:
        self.book = AtomBook()
        self.env: dict[fx.Node, Value] = {}
        self.masked: set[fx.Node] = set()
        """Values that are parameters up to reshaping: pruned entries are zero in them."""
        self.unsupported: Counter[str] = Counter()
        self.owned: dict[str, Dims] = {}
        """The atoms of each parameter and buffer (tied names share them)."""

    def dims(self, arg: object) -> Dims | None:
        """The dims of a tensor argument, or ``None`` when ``arg`` is not a tensor node."""
        if isinstance(arg, fx.Node) and _shape(arg) is not None:
            value = self.env.get(arg)
            if isinstance(value, tuple):
                return value
            return tuple(None for _ in _shape(arg) or ())
        return None

    def forbid_all(self, dims: Dims | None, reason: str) -> None:
        for atoms in dims or ():
            if atoms is not None:
                self.book.forbid(atoms, reason)


def _shape(node: object) -> tuple[int, ...] | None:
    val = node.meta.get("val") if isinstance(node, fx.Node) else None
    if isinstance(val, torch.Tensor):
        return tuple(int(s) for s in val.shape)
    return None


def _where(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    path = next(reversed(stack.values()))[0] if stack else ""
    op = _op_name(node)
    return f"{path} ({op})" if path else op


def _op_name(node: fx.Node) -> str:
    packet = getattr(node.target, "overloadpacket", None)
    return str(packet) if packet is not None else getattr(node.target, "__name__", str(node.target))


def _positional(node: fx.Node) -> list[Any]:
    """The op's arguments in schema order, defaults filled in."""
    schema = getattr(node.target, "_schema", None)
    if schema is None:
        return list(node.args)
    values = []
    for index, argument in enumerate(schema.arguments):
        if index < len(node.args):
            values.append(node.args[index])
        elif argument.name in node.kwargs:
            values.append(node.kwargs[argument.name])
        else:
            values.append(argument.default_value if argument.has_default_value() else None)
    return values


def _tensor_inputs(node: fx.Node) -> list[fx.Node]:
    leaves = pytree.tree_leaves((node.args, node.kwargs))
    return [leaf for leaf in leaves if isinstance(leaf, fx.Node) and _shape(leaf) is not None]


def _norm_dim(dim: int, ndim: int) -> int:
    return dim + ndim if dim < 0 else dim


# --- generic flows -------------------------------------------------------------------------------


def broadcast(
    walk: Walk, inputs: Sequence[tuple[Dims, tuple[int, ...]]], out_shape: Sequence[int], where: str
) -> Dims:
    """Elementwise flow: aligned dims of equal size are coupled; broadcast size-1 dims are fixed."""
    out: list[Atoms] = []
    for d, size in enumerate(out_shape):
        coupled: list[Atoms] = []
        for dims, shape in inputs:
            k = d - (len(out_shape) - len(shape))
            if k < 0:
                continue
            atoms = dims[k]
            if shape[k] == size:
                coupled.append(atoms)
            elif atoms is not None:
                walk.book.forbid(
                    atoms, f"{NOT_CHANNEL}{where}: a size-1 dim broadcast against a larger one"
                )
        out.append(
            walk.book.couple(coupled, f"{where}: combined elementwise with a fixed dim")
            if coupled
            else None
        )
    return tuple(out)


def _segments(a: Sequence[int], b: Sequence[int]) -> list[tuple[list[int], list[int]]]:
    """Split two shapes of equal numel into runs of dims with equal products."""
    segments: list[tuple[list[int], list[int]]] = []
    i = j = 0
    while i < len(a) or j < len(b):
        ins: list[int] = []
        outs: list[int] = []
        pa = pb = 1
        while True:
            if (ins or outs) and pa == pb and not (i < len(a) and a[i] == 1 and not outs):
                break
            if i < len(a) and (pa < pb or (pa == pb and not ins) or j >= len(b)):
                pa *= a[i]
                ins.append(i)
                i += 1
            elif j < len(b):
                pb *= b[j]
                outs.append(j)
                j += 1
            else:
                break
        segments.append((ins, outs))
    return segments


def reshape(
    walk: Walk, dims: Dims, in_shape: Sequence[int], out_shape: Sequence[int], where: str
) -> Dims:
    """Atoms through a view/reshape: merged dims repeat their atoms in blocks; a split dim puts
    its atoms on the outermost resulting dim that varies, joining the atoms inside each slice.
    """
    out: list[Atoms] = [None] * len(out_shape)
    if math.prod(in_shape) == 0:
        walk.forbid_all(dims, f"{where}: reshape of an empty tensor")
        return tuple(out)
    for ins, outs in _segments(in_shape, out_shape):
        carrying = [k for k in ins if dims[k] is not None]
        if not carrying:
            continue
        if len(carrying) > 1:
            for k in carrying:
                walk.book.forbid(dims[k], f"{where}: reshape mixes two channel dims")  # type: ignore[arg-type]
            continue
        if not outs:
            walk.book.forbid(dims[carrying[0]], f"{where}: reshape drops the dim")  # type: ignore[arg-type]
            continue
        k = carrying[0]
        view = [1] * len(ins)
        view[ins.index(k)] = in_shape[k]
        atoms = dims[k]
        assert atoms is not None
        grid = np.broadcast_to(atoms.reshape(view), [in_shape[i] for i in ins])
        grid = grid.reshape([out_shape[j] for j in outs])
        axis = _varying_axis(grid)
        rows = np.moveaxis(grid, axis, 0).reshape(grid.shape[axis], -1)
        out[outs[axis]] = walk.book.union_rows(rows)
    return tuple(out)


def _varying_axis(grid: IntArray) -> int:
    for axis in range(grid.ndim):
        if grid.shape[axis] > 1 and bool(np.any(grid != grid.take([0], axis=axis))):
            return axis
    return next((a for a in range(grid.ndim) if grid.shape[a] > 1), 0)


def _reduce(walk: Walk, node: fx.Node, dims: Dims, reduced: set[int], why: str) -> Dims:
    """Forbid atoms of reduced dims; the output keeps the others in order (meta gives its rank)."""
    where = _where(node)
    for d in reduced:
        if dims[d] is not None:
            walk.book.forbid(dims[d], f"{where}: {why}")  # type: ignore[arg-type]
    out_shape = _shape(node) or ()
    if len(out_shape) == len(dims):
        return tuple(
            atoms
            if d not in reduced or (atoms is not None and atoms.size == out_shape[d])
            else None
            for d, atoms in enumerate(dims)
        )
    return tuple(atoms for d, atoms in enumerate(dims) if d not in reduced)


# --- rules ----------------------------------------------------------------------------------------

Rule = Callable[[Walk, fx.Node], Value]

_ELEMENTWISE = [
    "abs",
    "add",
    "add_",
    "addcdiv",
    "addcmul",
    "alias",
    "bitwise_and",
    "bitwise_not",
    "bitwise_or",
    "ceil",
    "celu",
    "clamp",
    "clamp_",
    "clamp_max",
    "clamp_min",
    "clone",
    "contiguous",
    "cos",
    "detach",
    "div",
    "div_",
    "dropout",
    "dropout_",
    "elu",
    "elu_",
    "empty_like",
    "eq",
    "erf",
    "exp",
    "expm1",
    "feature_dropout",
    "fill_",
    "floor",
    "full_like",
    "ge",
    "gelu",
    "gelu_",
    "gt",
    "hardsigmoid",
    "hardsigmoid_",
    "hardswish",
    "hardswish_",
    "hardtanh",
    "hardtanh_",
    "isinf",
    "isnan",
    "le",
    "leaky_relu",
    "leaky_relu_",
    "lerp",
    "lift_fresh_copy",
    "log",
    "log1p",
    "log_sigmoid",
    "logical_and",
    "logical_not",
    "logical_or",
    "lt",
    "masked_fill",
    "maximum",
    "minimum",
    "mish",
    "mul",
    "mul_",
    "ne",
    "neg",
    "ones_like",
    "pow",
    "reciprocal",
    "relu",
    "relu_",
    "relu6",
    "round",
    "rsqrt",
    "rsub",
    "selu",
    "sigmoid",
    "sigmoid_",
    "sign",
    "silu",
    "silu_",
    "sin",
    "softplus",
    "sqrt",
    "square",
    "sub",
    "sub_",
    "tanh",
    "tanh_",
    "threshold",
    "to",
    "type_as",
    "_to_copy",
    "where",
    "zeros_like",
    "__and__",
    "__or__",
    "alpha_dropout",
    "feature_alpha_dropout",
]
_KEEPS_ZEROS = {
    "alias", "clone", "contiguous", "detach", "lift_fresh_copy", "to", "type_as", "_to_copy",
    "mul", "neg", "view", "reshape", "_unsafe_view", "flatten", "unflatten", "squeeze",
    "unsqueeze", "permute", "transpose", "t", "swapaxes", "expand", "slice", "split",
    "split_with_sizes", "chunk", "unsafe_split", "unsafe_chunk",
}  # fmt: skip
_VIEWS = [
    "view",
    "reshape",
    "_unsafe_view",
    "flatten",
    "unflatten",
    "squeeze",
    "unsqueeze",
    "view_as",
    "reshape_as",
]
_POOLS = {
    "max_pool1d": 1, "max_pool2d": 2, "max_pool3d": 3, "max_pool2d_with_indices": 2,
    "max_pool3d_with_indices": 3, "avg_pool1d": 1, "avg_pool2d": 2, "avg_pool3d": 3,
    "adaptive_avg_pool1d": 1, "adaptive_avg_pool2d": 2, "adaptive_avg_pool3d": 3,
    "_adaptive_avg_pool2d": 2, "adaptive_max_pool1d": 1, "adaptive_max_pool2d": 2,
    "adaptive_max_pool3d": 3, "upsample_nearest1d": 1, "upsample_nearest2d": 2,
    "upsample_nearest3d": 3, "upsample_bilinear2d": 2, "upsample_bicubic2d": 2,
    "upsample_linear1d": 1, "upsample_trilinear3d": 3, "_upsample_nearest_exact2d": 2,
    "_upsample_bilinear2d_aa": 2,
}  # fmt: skip
_REDUCTIONS = [
    "mean",
    "sum",
    "amax",
    "amin",
    "max",
    "min",
    "var",
    "std",
    "var_mean",
    "std_mean",
    "logsumexp",
    "norm",
    "linalg_vector_norm",
    "argmax",
    "argmin",
    "prod",
    "softmax",
    "_softmax",
    "log_softmax",
    "_log_softmax",
    "cumsum",
    "cumprod",
    "any",
    "all",
    "count_nonzero",
]


def _rule_elementwise(walk: Walk, node: fx.Node) -> Value:
    inputs = [(walk.dims(n) or (), _shape(n) or ()) for n in _tensor_inputs(node)]
    out_shape = _shape(node)
    if out_shape is None:
        return None
    return broadcast(walk, inputs, out_shape, _where(node))


def _rule_view(walk: Walk, node: fx.Node) -> Value:
    source = node.args[0]
    return reshape(
        walk, walk.dims(source) or (), _shape(source) or (), _shape(node) or (), _where(node)
    )


def _rule_permute(walk: Walk, node: fx.Node) -> Value:
    dims = walk.dims(node.args[0]) or ()
    args = _positional(node)
    name = _op_name(node)
    if name == "aten.permute":
        order = [_norm_dim(d, len(dims)) for d in args[1]]
    elif name == "aten.t":
        order = list(reversed(range(len(dims))))
    else:
        order = list(range(len(dims)))
        a, b = _norm_dim(args[1], len(dims)), _norm_dim(args[2], len(dims))
        order[a], order[b] = order[b], order[a]
    return tuple(dims[d] for d in order)


def _rule_expand(walk: Walk, node: fx.Node) -> Value:
    dims = walk.dims(node.args[0]) or ()
    in_shape, out_shape = _shape(node.args[0]) or (), _shape(node) or ()
    lead = len(out_shape) - len(in_shape)
    inputs = [(dims, in_shape)]
    return broadcast(walk, inputs, out_shape, _where(node))[:lead] + tuple(
        atoms if in_shape[k] == out_shape[lead + k] else None for k, atoms in enumerate(dims)
    )


def _rule_slice(walk: Walk, node: fx.Node) -> Value:
    dims = list(walk.dims(node.args[0]) or ())
    dim = _norm_dim(_positional(node)[1], len(dims))
    in_shape, out_shape = _shape(node.args[0]) or (), _shape(node) or ()
    if in_shape[dim] != out_shape[dim] and dims[dim] is not None:
        walk.book.forbid(dims[dim], f"{_where(node)}: a slice of a channel dim at fixed offsets")  # type: ignore[arg-type]
        dims[dim] = None
    return tuple(dims)


def _rule_select(walk: Walk, node: fx.Node) -> Value:
    dims = walk.dims(node.args[0]) or ()
    dim = _norm_dim(_positional(node)[1], len(dims))
    return _reduce(walk, node, dims, {dim}, "indexes a channel dim at a fixed position")


def _rule_split(walk: Walk, node: fx.Node) -> Value:
    dims = walk.dims(node.args[0]) or ()
    args = _positional(node)
    dim = _norm_dim(args[2] if len(args) > 2 and args[2] is not None else 0, len(dims))
    pieces = [int(v.shape[dim]) for v in node.meta["val"]]
    atoms = dims[dim]
    if atoms is not None and len(set(pieces)) > 1:
        walk.book.forbid(atoms, f"{_where(node)}: split into unequal pieces")
        atoms = None
    if atoms is None:
        return [tuple(None if d == dim else a for d, a in enumerate(dims)) for _ in pieces]
    parts = atoms.reshape(len(pieces), pieces[0])
    walk.book.union(parts[:1], parts[1:])
    return [tuple(part if d == dim else a for d, a in enumerate(dims)) for part in parts]


def _rule_cat(walk: Walk, node: fx.Node) -> Value:
    args = _positional(node)
    tensors = [t for t in args[0] if (_shape(t) or (0,)) != (0,)]
    out_shape = _shape(node) or ()
    dim = _norm_dim(args[1], len(out_shape))
    where = _where(node)
    all_dims = [walk.dims(t) or () for t in tensors]
    out: list[Atoms] = []
    for d in range(len(out_shape)):
        column = [dims[d] for dims in all_dims]
        if d != dim:
            out.append(walk.book.couple(column, f"{where}: concatenated with a fixed dim"))
        elif all(atoms is not None for atoms in column):
            out.append(np.concatenate(column))  # type: ignore[arg-type]
        else:
            for atoms in column:
                if atoms is not None:
                    walk.book.forbid(atoms, f"{where}: concatenated with a fixed tensor")
            out.append(None)
    return tuple(out)


def _rule_stack(walk: Walk, node: fx.Node) -> Value:
    args = _positional(node)
    out_shape = _shape(node) or ()
    dim = _norm_dim(args[1], len(out_shape))
    inputs = [(walk.dims(t) or (), _shape(t) or ()) for t in args[0]]
    coupled = list(
        broadcast(walk, inputs, [s for d, s in enumerate(out_shape) if d != dim], _where(node))
    )
    coupled.insert(dim, None)
    return tuple(coupled)


def _rule_pool(walk: Walk, node: fx.Node) -> Value:
    dims = walk.dims(node.args[0]) or ()
    spatial = _POOLS[_op_name(node).removeprefix("aten.")]
    reduced = set(range(len(dims) - spatial, len(dims)))
    out = _reduce(walk, node, dims, reduced, "pooled or resampled over a channel dim")
    if isinstance(node.meta.get("val"), (tuple, list)):
        return [out, tuple(None for _ in out)]
    return out


def _rule_pad(walk: Walk, node: fx.Node) -> Value:
    dims = walk.dims(node.args[0]) or ()
    pad = _positional(node)[1]
    padded = {len(dims) - 1 - i // 2 for i, p in enumerate(pad) if p != 0}
    return _reduce(walk, node, dims, padded, "padded along a channel dim")


def _rule_reduce(walk: Walk, node: fx.Node) -> Value:
    dims = walk.dims(node.args[0]) or ()
    args = _positional(node)
    spec = args[1] if len(args) > 1 else None
    name = _op_name(node)
    if name in ("aten.linalg_vector_norm", "aten.norm"):
        spec = args[2] if len(args) > 2 else None
    if isinstance(spec, int) and not isinstance(spec, bool):
        reduced = {_norm_dim(spec, len(dims))}
    elif isinstance(spec, (list, tuple)) and spec and all(isinstance(d, int) for d in spec):
        reduced = {_norm_dim(d, len(dims)) for d in spec}
    else:
        reduced = set(range(len(dims)))
    out = _reduce(walk, node, dims, reduced, "reduced over a channel dim (statistics would change)")
    if isinstance(node.meta.get("val"), (tuple, list)):
        return [out, out]
    return out


def _contract(walk: Walk, node: fx.Node, a: fx.Node, ad: Atoms, b: fx.Node, bd: Atoms) -> None:
    where = _where(node)
    if ad is None and bd is None:
        return
    if a not in walk.masked and b not in walk.masked:
        for atoms in (ad, bd):
            if atoms is not None:
                walk.book.forbid(
                    atoms, f"{where}: contraction of two activations over a channel dim"
                )
        return
    walk.book.couple(
        [ad, bd], f"{where}: input features are fixed (a graph input or an unprunable value)"
    )


def _rule_linear(walk: Walk, node: fx.Node) -> Value:
    x, w, b = _positional(node)[:3]
    xd, wd = walk.dims(x) or (), walk.dims(w) or ()
    if len(wd) != 2:
        return _rule_unsupported(walk, node)
    _contract(walk, node, x, xd[-1], w, wd[1])
    out = wd[0]
    if b is not None:
        out = walk.book.couple(
            [out, (walk.dims(b) or (None,))[0]], f"{_where(node)}: bias is fixed"
        )
    return (*xd[:-1], out)


def _rule_matmul(walk: Walk, node: fx.Node) -> Value:
    args = _positional(node)
    name = _op_name(node)
    bias = args[0] if name in ("aten.addmm", "aten.baddbmm") else None
    a, b = (args[1], args[2]) if bias is not None else (args[0], args[1])
    ad, bd = walk.dims(a) or (), walk.dims(b) or ()
    a_shape, b_shape = _shape(a) or (), _shape(b) or ()
    out_shape = _shape(node) or ()
    if len(ad) < 2 or len(bd) < 2:
        return _rule_unsupported(walk, node)
    where = _where(node)
    _contract(walk, node, a, ad[-1], b, bd[-2])
    batch = broadcast(
        walk, [(ad[:-2], a_shape[:-2]), (bd[:-2], b_shape[:-2])], out_shape[:-2], where
    )
    out: Dims = (*batch, ad[-2], bd[-1])
    if bias is not None:
        out = broadcast(
            walk, [(out, out_shape), (walk.dims(bias) or (), _shape(bias) or ())], out_shape, where
        )
    return out


def _rule_sdpa(walk: Walk, node: fx.Node) -> Value:
    q, k, v, mask = _positional(node)[:4]
    qd, kd, vd = walk.dims(q) or (), walk.dims(k) or (), walk.dims(v) or ()
    where = _where(node)
    qs, ks, vs = _shape(q) or (), _shape(k) or (), _shape(v) or ()
    for atoms in (qd[-1], kd[-1], qd[-2], kd[-2], vd[-2]):
        if atoms is not None:
            walk.book.forbid(atoms, f"{where}: attention mixes over this dim")
    heads = _gqa_heads(walk, qd[:-2], qs[:-2], kd[:-2], ks[:-2], where)
    broadcast(walk, [(kd[:-2], ks[:-2]), (vd[:-2], vs[:-2])], ks[:-2], where)
    if mask is not None:
        out_shape = _shape(node) or ()
        scores = (*heads, None, None)
        broadcast(walk, [(scores, (*qs[:-1], ks[-2])), (walk.dims(mask) or (), _shape(mask) or ())],
                  (*out_shape[:-1], ks[-2]), where)  # fmt: skip
    return (*heads, None, vd[-1])


def _gqa_heads(
    walk: Walk, qd: Dims, qs: Sequence[int], kd: Dims, ks: Sequence[int], where: str
) -> Dims:
    """Batch dims of q coupled with k's; k/v heads shared by several q heads (GQA) join them."""
    out: list[Atoms] = []
    for d in range(len(qs)):
        qa, ka = qd[d], kd[d] if d < len(kd) else None
        if d < len(ks) and ks[d] != qs[d] and ks[d] > 1:
            repeat = qs[d] // ks[d]
            if qa is not None:
                qa = walk.book.union_rows(qa.reshape(ks[d], repeat))
            merged = walk.book.couple([qa, ka], f"{where}: attention heads share a fixed dim")
            out.append(None if merged is None else np.repeat(merged, repeat))
        elif d < len(ks) and ks[d] == qs[d]:
            out.append(walk.book.couple([qa, ka], f"{where}: attention heads share a fixed dim"))
        else:
            out.append(qa)
    return tuple(out)


def _rule_conv(walk: Walk, node: fx.Node) -> Value:
    args = _positional(node)
    name = _op_name(node)
    x, w, b = args[:3]
    if name == "aten.convolution":
        transposed, groups = bool(args[6]), int(args[8])
    else:
        transposed, groups = "transpose" in name, int(args[6])
    xd, wd = walk.dims(x) or (), walk.dims(w) or ()
    where = _where(node)
    if w not in walk.masked:
        return _rule_unsupported(walk, node)
    batched = len(xd) == len(wd)
    channel = 1 if batched else 0
    for atoms in (*xd[channel + 1 :], *wd[2:]):
        if atoms is not None:
            walk.book.forbid(atoms, f"{NOT_CHANNEL}{where}: a spatial or kernel dim")
    out_dim, in_dim = (1, 0) if transposed else (0, 1)
    out_atoms = wd[out_dim]
    if groups == 1:
        walk.book.couple(
            [xd[channel], wd[in_dim]],
            f"{where}: input channels are fixed (a graph input or an unprunable value)",
        )
    else:
        out_atoms = _grouped(walk, xd[channel], wd, groups, transposed, where)
    if b is not None:
        out_atoms = walk.book.couple(
            [out_atoms, (walk.dims(b) or (None,))[0]], f"{where}: bias is fixed"
        )
    spatial = (None,) * (len(xd) - channel - 1)
    return (*xd[:channel], out_atoms, *spatial)


def _grouped(
    walk: Walk, x_atoms: Atoms, wd: Dims, groups: int, transposed: bool, where: str
) -> Atoms:
    """A grouped conv prunes whole conv groups: each group's input and output channels join.

    The weight is ``(out, in / groups, *k)``, or ``(in, out / groups, *k)`` when transposed; its
    dim 1 indexes inside a group, so it never shrinks.
    """
    if wd[1] is not None:
        walk.book.forbid(wd[1], f"{NOT_CHANNEL}{where}: the in-group dim of a grouped conv")
    full = wd[0]
    if full is None:
        return None
    if x_atoms is None:
        walk.book.forbid(
            full, f"{where}: input channels are fixed (a graph input or an unprunable value)"
        )
        return None
    rows = full.reshape(groups, -1)
    walk.book.union(rows[:, :1], x_atoms.reshape(groups, -1))
    joined = walk.book.union_rows(rows)
    if not transposed:
        return full
    out_per_group = len(wd[1]) if wd[1] is not None else 1
    return np.repeat(joined, out_per_group)


def _rule_embedding(walk: Walk, node: fx.Node) -> Value:
    w, idx = _positional(node)[:2]
    wd = walk.dims(w) or (None, None)
    if wd[0] is not None:
        walk.book.forbid(
            wd[0], f"{NOT_CHANNEL}{_where(node)}: embedding rows are looked up by data"
        )
    return (*(walk.dims(idx) or ()), wd[1])


def _per_channel(
    walk: Walk, node: fx.Node, x: fx.Node, extras: Sequence[object], reduced: bool
) -> Dims:
    """Norm with per-channel parameters on dim 1 (dim 0 unbatched); other dims reduced or not."""
    xd = walk.dims(x) or ()
    where = _where(node)
    channel = 1 if len(xd) > 1 else 0
    coupled = [
        xd[channel],
        *((walk.dims(e) or (None,))[0] for e in extras if isinstance(e, fx.Node)),
    ]
    atoms = walk.book.couple(coupled, f"{where}: per-channel parameters meet a fixed dim")
    others = [d for d in range(len(xd)) if d != channel]
    why = "normalization statistics over this dim (train mode)"
    for d in others if reduced else ():
        if xd[d] is not None:
            walk.book.forbid(xd[d], f"{where}: {why}")  # type: ignore[arg-type]
    return tuple(atoms if d == channel else xd[d] for d in range(len(xd)))


def _rule_batch_norm(walk: Walk, node: fx.Node) -> Value:
    args = _positional(node)
    out = _per_channel(walk, node, args[0], args[1:5], reduced=True)
    if isinstance(node.meta.get("val"), (tuple, list)):
        return [out] + [((out[1] if len(out) > 1 else out[0]),)] * (len(node.meta["val"]) - 1)
    return out


def _rule_instance_norm(walk: Walk, node: fx.Node) -> Value:
    args = _positional(node)
    return _per_channel(walk, node, args[0], args[1:5], reduced=True)


def _rule_group_norm(walk: Walk, node: fx.Node) -> Value:
    args = _positional(node)
    xd = walk.dims(args[0]) or ()
    if len(xd) > 1 and xd[1] is not None:
        walk.book.union_rows(xd[1].reshape(int(args[1]), -1))
    return _per_channel(walk, node, args[0], args[2:4], reduced=True)


def _rule_layer_norm(walk: Walk, node: fx.Node) -> Value:
    args = _positional(node)
    x, normalized = args[0], args[1]
    params = [p for p in args[2:4] if isinstance(p, fx.Node)]
    xd = walk.dims(x) or ()
    count = len(normalized)
    where = _where(node)
    why = f"{where}: normalized over (layer-norm statistics would change)"
    for offset in range(count):
        d = len(xd) - count + offset
        column = [xd[d], *((walk.dims(p) or ())[offset] for p in params)]
        for atoms in column:
            if atoms is not None:
                walk.book.forbid(atoms, why)
        walk.book.couple(column, why)
    out = xd
    if isinstance(node.meta.get("val"), (tuple, list)):
        return [out, None, None]
    return out


def _rule_prelu(walk: Walk, node: fx.Node) -> Value:
    x, w = node.args[:2]
    xd, wd = walk.dims(x) or (), walk.dims(w) or (None,)
    where = _where(node)
    if (_shape(w) or (1,))[0] == 1 or len(xd) < 2:
        if wd[0] is not None:
            walk.book.forbid(wd[0], f"{where}: one slope shared by all channels")
        return xd
    atoms = walk.book.couple([xd[1], wd[0]], f"{where}: slopes meet a fixed dim")
    return (xd[0], atoms, *xd[2:])


def _rule_getitem(walk: Walk, node: fx.Node) -> Value:
    source, index = node.args
    value = walk.env.get(source)  # type: ignore[arg-type]
    if isinstance(value, list) and isinstance(index, int) and index < len(value):
        return value[index]
    return None


def _rule_unsupported(walk: Walk, node: fx.Node) -> Value:
    where = _where(node)
    touched = False
    for arg in _tensor_inputs(node):
        for atoms in walk.dims(arg) or ():
            if atoms is not None:
                walk.book.forbid(atoms, f"{where}: unsupported op")
                touched = True
    if touched:
        walk.unsupported[_op_name(node)] += 1
    return _fixed(node.meta.get("val"))


def _rule_ignore(walk: Walk, node: fx.Node) -> Value:
    return _fixed(node.meta.get("val"))


def _fixed(val: object) -> Value:
    if isinstance(val, torch.Tensor):
        return tuple(None for _ in val.shape)
    if isinstance(val, (tuple, list)):
        return [_fixed(v) for v in val]
    return None


_RULES: dict[str, Rule] = {
    **{f"aten.{n}": _rule_elementwise for n in _ELEMENTWISE},
    **{f"aten.{n}": _rule_view for n in _VIEWS},
    **{f"aten.{n}": _rule_pool for n in _POOLS},
    **{f"aten.{n}": _rule_reduce for n in _REDUCTIONS},
    **{f"aten.{n}": _rule_permute for n in ("permute", "transpose", "t", "swapaxes")},
    **{f"aten.{n}": _rule_split for n in ("split", "split_with_sizes", "chunk", "unsafe_split", "unsafe_chunk")},
    **{f"aten.{n}": _rule_matmul for n in ("matmul", "mm", "bmm", "addmm", "baddbmm")},
    **{f"aten.{n}": _rule_conv for n in (
        "conv1d", "conv2d", "conv3d", "convolution", "conv_transpose1d", "conv_transpose2d",
        "conv_transpose3d")},
    **{f"aten.{n}": _rule_batch_norm for n in (
        "batch_norm", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit",
        "native_batch_norm", "_native_batch_norm_legit_functional")},
    **{f"aten.{n}": _rule_layer_norm for n in ("layer_norm", "native_layer_norm", "rms_norm")},
    **{f"aten.{n}": _rule_ignore for n in (
        "_assert_tensor_metadata", "sym_size", "arange", "zeros", "ones", "full", "empty",
        "scalar_tensor", "new_zeros", "new_ones", "new_empty", "new_full", "sym_constrain_range_for_size",
        "_assert_scalar", "sym_numel", "sym_stride")},
    "aten.expand": _rule_expand,
    "aten.slice": _rule_slice,
    "aten.narrow": _rule_slice,
    "aten.select": _rule_select,
    "aten.cat": _rule_cat,
    "aten.concat": _rule_cat,
    "aten.stack": _rule_stack,
    "aten.pad": _rule_pad,
    "aten.constant_pad_nd": _rule_pad,
    "aten.linear": _rule_linear,
    "aten.scaled_dot_product_attention": _rule_sdpa,
    "aten.embedding": _rule_embedding,
    "aten.instance_norm": _rule_instance_norm,
    "aten.group_norm": _rule_group_norm,
    "aten.prelu": _rule_prelu,
    "aten._prelu_kernel": _rule_prelu,
}  # fmt: skip


def walk_graph(captured: Captured) -> Walk:
    """Run every node's rule; graph inputs and constants are fixed, outputs are forbidden."""
    walk = Walk()
    for node in captured.graph.nodes:
        if node.op == "placeholder":
            walk.env[node] = _placeholder(walk, captured, node)
        elif node.op == "output":
            for leaf in pytree.tree_leaves(node.args):
                walk.forbid_all(walk.dims(leaf), "graph output: its shape must not change")
        elif node.op == "call_function":
            rule = (
                _rule_getitem
                if node.target is operator.getitem
                else _RULES.get(_op_name(node), _rule_unsupported)
            )
            walk.env[node] = rule(walk, node)
            sources = _tensor_inputs(node)
            if (
                _op_name(node).removeprefix("aten.") in _KEEPS_ZEROS
                and sources
                and sources[0] in walk.masked
            ):
                walk.masked.add(node)
            if node.target is operator.getitem and node.args[0] in walk.masked:
                walk.masked.add(node)
        else:
            walk.env[node] = _rule_unsupported(walk, node)
    return walk


def _placeholder(walk: Walk, captured: Captured, node: fx.Node) -> Value:
    shape = _shape(node)
    if shape is None:
        return None
    name = captured.parameters.get(node.name) or captured.buffers.get(node.name)
    if name is None or not node.users:
        return tuple(None for _ in shape)
    buffer = node.name in captured.buffers
    if not buffer:
        walk.masked.add(node)
    key = captured.aliases.get(name, name)
    if key not in walk.owned:
        walk.owned[key] = tuple(
            walk.book.fresh(key, d, size, buffer=buffer) for d, size in enumerate(shape)
        )
    return walk.owned[key]
