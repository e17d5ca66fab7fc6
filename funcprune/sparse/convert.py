"""``to_sparse``: a copy of a pruned model whose Linear layers compute with sparse weights.

>>> import torch, funcprune as fp
>>> from funcprune.sparse import to_sparse
>>> model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
>>> params = {k: v.detach() for k, v in model.named_parameters()}
>>> masks = fp.l1_unstructured(0.9)(params)
>>> sparse = to_sparse(model, params, masks)
>>> type(sparse[0]).__name__
'SparseLinear'
>>> x = torch.randn(4, 8)
>>> torch.allclose(sparse(x), fp.masked_call(model, params, masks, x), atol=1e-6)
True
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from funcprune.sparse._layers import bias_of, dense_weight, finalized_copy, module_name, plan, swap
from funcprune.sparse.linear import LAYOUTS, SparseLinear, to_layout
from funcprune.types import Params


def to_sparse(
    model: nn.Module,
    params: Params,
    masks: Mapping[str, Tensor],
    *,
    layout: str | Mapping[str, str] = "csr",
    blocksize: tuple[int, int] = (16, 16),
) -> nn.Module:
    """A copy of ``model`` with pruning baked in and Linear layers swapped for :class:`SparseLinear`.

    Every parameter of the copy is ``finalize(params, masks)`` (parameters not in ``params``
    are the model's). Layers converted: ``torch.nn.Linear`` and ``transformers``' ``Conv1D``
    (GPT-2's ``(in, out)`` weights are transposed). Other pruned parameters (convolutions,
    embeddings) stay dense, with their zeros baked in. Its outputs equal
    ``fp.masked_call(model, params, masks, ...)`` up to float rounding. ``model`` is untouched.

    Sparse wins only at high sparsity and small batches, and not on every machine: measure with
    :func:`funcprune.sparse.fastest_layouts` and pass its result as ``layout``.

    Args:
        model: the dense model.
        params: parameters by ``named_parameters()`` key (all or some of the model's).
        masks: bool masks, ``True`` keeps.
        layout: ``"csr"`` or ``"bsr"`` for every layer whose weight mask prunes at least one
            entry, or a mapping from
            weight keys (``"fc.weight"``) to ``"csr"``, ``"bsr"`` or ``"dense"``, which converts
            exactly the layers it names (masked or not).
        blocksize: BSR block shape; it must divide the shapes of the layers converted to BSR.

    Raises:
        ValueError: a key in ``layout`` that is not a Linear/Conv1D weight, an unknown layout,
            a blocksize that does not divide a weight, or nothing to convert (names the keys).
        KeyError, TypeError: bad ``params`` or ``masks`` (as :func:`funcprune.apply_masks`).

    >>> import torch, funcprune as fp
    >>> from funcprune.sparse import to_sparse
    >>> model = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.Linear(32, 3))
    >>> params = dict(model.named_parameters())
    >>> masks = fp.l1_unstructured(0.95)(params)
    >>> to_sparse(model, params, masks, layout={"0.weight": "bsr"}, blocksize=(8, 8))[0].layout
    'bsr'
    """
    chosen = plan(model, masks, layout, (*LAYOUTS, "dense"))
    result = finalized_copy(model, params, masks)
    for key, kind in chosen.items():
        layer = result.get_submodule(module_name(key))
        weight = to_layout(dense_weight(layer), kind, blocksize, key)
        result = swap(result, key, SparseLinear(weight, bias_of(layer)))
    return result


__all__ = ["to_sparse"]
