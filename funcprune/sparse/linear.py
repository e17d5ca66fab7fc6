"""``SparseLinear``: a Linear layer whose weight is a ``torch.sparse`` CSR or BSR matrix.

>>> import torch
>>> from funcprune.sparse import SparseLinear
>>> dense = torch.nn.Linear(4, 3)
>>> with torch.no_grad():
...     dense.weight[:, :2] = 0
>>> sparse = SparseLinear.from_dense(dense.weight, dense.bias)
>>> x = torch.randn(2, 5, 4)
>>> torch.allclose(sparse(x), dense(x), atol=1e-6)
True
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Literal

import torch
from torch import Tensor, nn

Layout = Literal["csr", "bsr"]
LAYOUTS: tuple[Layout, ...] = ("csr", "bsr")
_BETA_WARNING = "Sparse (CSR|BSR|BSC|CSC) tensor support is in beta"


@contextlib.contextmanager
def _beta_ok() -> Iterator[None]:
    """Torch warns once that sparse compressed tensors are in beta; using them is the point here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_BETA_WARNING)
        yield


class SparseLinear(nn.Module):
    """``y = x @ weight.T + bias`` with a compressed sparse ``weight`` of shape ``(out, in)``.

    The weight is kept as three dense buffers (``crow_indices``, ``col_indices``, ``values``, as
    ``torch.sparse_compressed_tensor`` takes them), so the module deep-copies, moves with
    ``.to()`` and round-trips through ``state_dict`` like any other; the sparse tensor is
    assembled (no copy) on each call. Inputs may have any leading batch dims. Inference only:
    the buffers take no gradient. CPU kernels exist for float32 and float64.

    Build one with :meth:`from_dense`; :func:`funcprune.sparse.to_sparse` swaps them into a
    model.
    """

    crow_indices: Tensor
    col_indices: Tensor
    values: Tensor
    bias: Tensor | None

    def __init__(self, weight: Tensor, bias: Tensor | None = None) -> None:
        """Wrap a CSR or BSR ``weight`` of shape ``(out, in)`` and an optional ``bias`` ``(out,)``."""
        super().__init__()
        if weight.layout not in (torch.sparse_csr, torch.sparse_bsr) or weight.dim() != 2:
            raise ValueError(
                f"SparseLinear needs a 2-d sparse CSR or BSR weight; got a {weight.dim()}-d "
                f"{weight.layout} tensor (use SparseLinear.from_dense for a dense one)"
            )
        self.out_features, self.in_features = weight.shape
        self.layout: Layout = "csr" if weight.layout == torch.sparse_csr else "bsr"
        self.register_buffer("crow_indices", weight.crow_indices())
        self.register_buffer("col_indices", weight.col_indices())
        self.register_buffer("values", weight.values())
        if bias is not None and bias.shape != (self.out_features,):
            raise ValueError(
                f"bias has shape {tuple(bias.shape)}; this weight needs ({self.out_features},)"
            )
        self.register_buffer("bias", None if bias is None else bias.detach())

    @classmethod
    def from_dense(
        cls,
        weight: Tensor,
        bias: Tensor | None = None,
        *,
        layout: Layout = "csr",
        blocksize: tuple[int, int] = (16, 16),
    ) -> SparseLinear:
        """A SparseLinear storing the nonzeros of a dense ``(out, in)`` ``weight``.

        Args:
            weight: dense ``(out, in)`` weight; its zeros are dropped (bake masks in first with
                :func:`funcprune.io.finalize`).
            bias: optional ``(out,)`` bias.
            layout: ``"csr"`` (entry by entry) or ``"bsr"`` (``blocksize`` blocks, stored whole
                when any entry of the block is nonzero).
            blocksize: BSR block shape; must divide the weight's shape.

        >>> import torch
        >>> from funcprune.sparse import SparseLinear
        >>> layer = SparseLinear.from_dense(torch.eye(4), layout="bsr", blocksize=(2, 2))
        >>> layer.values.shape  # the two diagonal 2x2 blocks
        torch.Size([2, 2, 2])
        """
        return cls(to_layout(weight.detach(), layout, blocksize), bias)

    @property
    def weight(self) -> Tensor:
        """The weight as a sparse CSR or BSR tensor (assembled from the buffers, no copy)."""
        with _beta_ok():
            return torch.sparse_compressed_tensor(
                self.crow_indices,
                self.col_indices,
                self.values,
                (self.out_features, self.in_features),
                layout=torch.sparse_csr if self.layout == "csr" else torch.sparse_bsr,
                check_invariants=False,  # the buffers came from torch's own conversion
            )

    def forward(self, x: Tensor) -> Tensor:
        """``x @ weight.T + bias`` over the last dim of ``x``."""
        flat = x.reshape(-1, self.in_features).T  # (in, N): the sparse matrix goes first
        if self.bias is None:
            out = torch.mm(self.weight, flat)
        else:
            out = torch.addmm(self.bias.unsqueeze(1), self.weight, flat)
        return out.T.reshape(*x.shape[:-1], self.out_features).contiguous()

    def extra_repr(self) -> str:
        """``in_features``, ``out_features``, layout, stored entries, bias."""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"layout={self.layout}, stored={self.values.numel()}, bias={self.bias is not None}"
        )


def to_layout(
    weight: Tensor, layout: str, blocksize: tuple[int, int], key: str = "weight"
) -> Tensor:
    """A dense 2-d ``weight`` as a CSR or BSR tensor, or a ValueError naming ``key``.

    >>> import torch
    >>> to_layout(torch.eye(3), "bsr", (2, 2), "fc.weight")
    Traceback (most recent call last):
    ...
    ValueError: 'fc.weight': BSR blocks of (2, 2) must divide the weight's shape (3, 3); pick a blocksize that does, or layout='csr'
    """
    if layout not in LAYOUTS:
        raise ValueError(f"{key!r}: layout={layout!r} is not one of {list(LAYOUTS)}")
    if layout == "bsr" and not blocks_fit(tuple(weight.shape), blocksize):
        raise ValueError(
            f"{key!r}: BSR blocks of {tuple(blocksize)} must divide the weight's shape "
            f"{tuple(weight.shape)}; pick a blocksize that does, or layout='csr'"
        )
    with _beta_ok():
        if layout == "csr":
            return weight.to_sparse_csr()
        return weight.to_sparse_bsr(blocksize)


def blocks_fit(shape: tuple[int, ...], blocksize: tuple[int, int]) -> bool:
    """Whether BSR blocks of ``blocksize`` tile a 2-d ``shape`` exactly.

    >>> blocks_fit((32, 48), (16, 16)), blocks_fit((32, 40), (16, 16))
    (True, False)
    """
    return shape[0] % blocksize[0] == 0 and shape[1] % blocksize[1] == 0
