"""The min-norm point of a convex hull, from Gram matrices only (pure functions).

``min_norm(K)`` solves  min_w  w^T K w  subject to  w >= 0, sum(w) = 1,  where ``K = G G^T`` is the
Gram matrix of T vectors (task gradients): ``sum_t w_t g_t`` is the point of their convex hull
nearest the origin, MGDA's common descent direction (Sener & Koltun, 2018). It is Wolfe's (1976)
finite algorithm, run on inner products; the answer satisfies the optimality (KKT) conditions
``(K w)_t = w^T K w`` where ``w_t > 0`` and ``(K w)_t >= w^T K w`` everywhere.
"""

from __future__ import annotations

import torch
from torch import Tensor


def min_norm(k: Tensor, *, tol: float = 1e-12, max_iter: int = 1000) -> Tensor:
    """[T, T] positive semi-definite Gram matrix -> [T] float64 weights in the simplex."""
    k = k.detach().double()
    t = k.shape[0]
    scale = float(k.diagonal().max()) if t else 0.0
    if t == 0 or scale <= 0.0:
        return torch.full((t,), 1.0 / max(t, 1), dtype=torch.float64)
    k = k / scale
    x = torch.zeros(t, dtype=torch.float64)
    first = int(k.diagonal().argmin())
    x[first] = 1.0
    corral = [first]
    for _ in range(max_iter):
        kx = k @ x
        norm2 = float(x @ kx)
        j = int(kx.argmin())
        if float(kx[j]) >= norm2 - tol * max(1.0, norm2) or j in corral:
            break  # no vertex is closer to the origin than the current point's supporting plane
        corral.append(j)
        while True:  # minor cycle: move to the affine min-norm point of the corral, staying in the hull
            y = _affine_min_norm(k[corral][:, corral])
            if bool((y > tol).all()):
                x = _scatter(t, corral, y)
                break
            xs = x[corral]
            leaving = (y <= tol) & (xs - y > 0)
            theta = float((xs[leaving] / (xs[leaving] - y[leaving])).min()) if bool(leaving.any()) else 1.0
            xs = xs + theta * (y - xs)
            corral = [c for c, v in zip(corral, xs.tolist()) if v > tol]
            x = _scatter(t, corral, xs[xs > tol])
            x = x / x.sum()
    return x


def _affine_min_norm(k: Tensor) -> Tensor:
    """min y^T K y subject to sum(y) = 1 (y free): the KKT system [[K, 1], [1^T, 0]]."""
    n = k.shape[0]
    a = torch.zeros(n + 1, n + 1, dtype=torch.float64)
    a[:n, :n], a[:n, n], a[n, :n] = k, 1.0, 1.0
    b = torch.zeros(n + 1, dtype=torch.float64)
    b[n] = 1.0
    y = torch.linalg.lstsq(a, b[:, None], driver="gelsd").solution[:n, 0]
    return y / y.sum()


def _scatter(t: int, index: list[int], values: Tensor) -> Tensor:
    x = torch.zeros(t, dtype=torch.float64)
    x[index] = values
    return x

