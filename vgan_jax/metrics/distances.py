"""Distances between two feature distributions: Fréchet (FVD) and polynomial-kernel MMD (KVD).

Both run in float64 numpy on the host. The Fréchet distance follows the reference
FID/FVD code (pytorch-fid / tfgan): `scipy.linalg.sqrtm` of `sigma_a @ sigma_b`, retried
with `eps * I` added to both covariances if the root is not finite, real part taken
(with a warning when the imaginary part is not rounding noise).
KVD is the unbiased MMD^2 with kernel `(x . y / d + 1) ** 3`, averaged over random
subsets, exactly as `torch-fidelity` reports KID and DIGAN / StyleGAN-V report KVD, with
subsets of `min(1000, N // 2)` videos (StyleGAN2-ADA's 1000 at N = 2048, and always
smaller than the set so the subsets differ).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

from vgan_jax.errors import VganError


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    # scipy >= 1.16 deprecates `disp`; the default call returns only the root.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return scipy.linalg.sqrtm(matrix)


def frechet_distance(
    mean_a: np.ndarray,
    cov_a: np.ndarray,
    mean_b: np.ndarray,
    cov_b: np.ndarray,
    eps: float = 1e-6,
    imag_tolerance: float = 1e-3,
) -> float:
    """`|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))` of two Gaussians.

    Args:
      mean_a, mean_b: `[d]` means.
      cov_a, cov_b: `[d, d]` covariances.
      eps: offset added to both diagonals when `sqrtm(S_a S_b)` is not finite
        (near-singular covariances, e.g. fewer samples than dimensions).
      imag_tolerance: largest imaginary part of the root's diagonal, relative to its
        largest real diagonal entry, dropped silently; above it a `RuntimeWarning`
        says the distance is unreliable (pytorch-fid raises at 1e-3 absolute; a
        relative bound suits I3D logits, whose covariances are far from unit scale).

    Returns:
      The distance as a Python float (float64 arithmetic).
    """
    mean_a = np.atleast_1d(np.asarray(mean_a, np.float64))
    mean_b = np.atleast_1d(np.asarray(mean_b, np.float64))
    cov_a = np.atleast_2d(np.asarray(cov_a, np.float64))
    cov_b = np.atleast_2d(np.asarray(cov_b, np.float64))
    if mean_a.shape != mean_b.shape or cov_a.shape != cov_b.shape:
        raise VganError(
            f"Fréchet distance needs statistics of equal dimension, got means "
            f"{mean_a.shape} vs {mean_b.shape} and covariances {cov_a.shape} vs {cov_b.shape}"
        )
    diff = mean_a - mean_b
    covmean = _sqrtm(cov_a @ cov_b)
    if not np.all(np.isfinite(covmean)):
        offset = np.eye(cov_a.shape[0]) * eps
        covmean = _sqrtm((cov_a + offset) @ (cov_b + offset))
    if np.iscomplexobj(covmean):
        # Tiny imaginary parts come from numerical error in sqrtm of a product
        # of two PSD matrices; the reference implementations drop them too. Large ones
        # mean the product has clearly negative eigenvalues (broken or far too few
        # statistics), and the real part is then not the distance: say so.
        diagonal = np.diagonal(covmean)
        imaginary = float(np.abs(diagonal.imag).max(initial=0.0))
        scale = float(np.abs(diagonal.real).max(initial=0.0))
        if imaginary > imag_tolerance * max(scale, np.finfo(np.float64).tiny):
            warnings.warn(
                f"Fréchet distance: the matrix square root has an imaginary part of "
                f"{imaginary:.3g} on its diagonal (largest real entry {scale:.3g}); the "
                "covariances are ill-conditioned or not PSD, so this FVD is unreliable "
                "(use more videos, or check the features for constant dimensions)",
                RuntimeWarning,
                stacklevel=2,
            )
        covmean = covmean.real
    distance = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean)
    return float(distance)


def polynomial_mmd2(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Unbiased MMD^2 of two equal-size samples `[m, d]` under `(x . y / d + 1) ** 3`."""
    a = np.asarray(features_a, np.float64)
    b = np.asarray(features_b, np.float64)
    m, d = a.shape
    k_aa = (a @ a.T / d + 1.0) ** 3
    k_bb = (b @ b.T / d + 1.0) ** 3
    k_ab = (a @ b.T / d + 1.0) ** 3
    # Off-diagonal sums only: the diagonal terms bias the within-set averages.
    sum_aa = k_aa.sum() - np.trace(k_aa)
    sum_bb = k_bb.sum() - np.trace(k_bb)
    return float((sum_aa + sum_bb) / (m * (m - 1)) - 2.0 * k_ab.sum() / (m * m))


# StyleGAN2-ADA's KID cap: subsets of at most 1000 videos.
KVD_MAX_SUBSET_SIZE = 1000


def default_kvd_subset_size(num_videos: int) -> int:
    """KVD subset size for sets of `num_videos` (the smaller set): `min(1000, N // 2)`.

    StyleGAN2-ADA uses `min(N, 1000)`, which at the standard N = 2048 gives 1000 and
    we keep that. For N <= 1000 it would make every subset the whole set, so the
    "random subsets" are one subset repeated and `kvd_std` is 0; half the set keeps
    the subsets different (and the std meaningful) at any N.
    """
    return max(2, min(KVD_MAX_SUBSET_SIZE, num_videos // 2))


def resolve_kvd_subset_size(subset_size: int | None, num_videos: int) -> int:
    """The subset size to use for sets of `num_videos`: the default if None, else checked.

    Raises:
      VganError: fewer than 3 videos, or an explicit size outside [2, num_videos - 1]
        (a subset as large as the set is the same subset every time).
    """
    if num_videos < 3:
        raise VganError(
            f"KVD needs at least 3 videos per set (random subsets smaller than the set), "
            f"got {num_videos}; use more videos or skip KVD (--no_kvd)"
        )
    if subset_size is None:
        return default_kvd_subset_size(num_videos)
    if not 2 <= subset_size < num_videos:
        raise VganError(
            f"kvd_subset_size {subset_size} must be in 2..{num_videos - 1}: below the "
            f"{num_videos} videos per set, so that KVD's random subsets differ; leave it "
            f"unset for min(1000, N // 2) = {default_kvd_subset_size(num_videos)}"
        )
    return subset_size


def kernel_distance(
    features_a: np.ndarray,
    features_b: np.ndarray,
    num_subsets: int = 100,
    subset_size: int | None = None,
    seed: int = 0,
) -> dict:
    """KVD: polynomial-kernel MMD^2 averaged over random subsets (torch-fidelity's KID).

    Args:
      features_a, features_b: `[n_a, d]`, `[n_b, d]` features (n >= 3).
      num_subsets: random subsets drawn (without replacement within a subset).
      subset_size: videos per subset; None: `min(1000, n // 2)` with `n = min(n_a, n_b)`
        (see `default_kvd_subset_size`); explicit values must be in `[2, n - 1]`.
      seed: numpy RandomState seed for the subsets.

    Returns:
      `{"kvd": mean, "kvd_std": std over subsets, "kvd_subsets": ..., "kvd_subset_size": ...}`.
    """
    a = np.asarray(features_a)
    b = np.asarray(features_b)
    if num_subsets < 1:
        raise VganError(f"kvd_subsets must be >= 1, got {num_subsets}")
    m = resolve_kvd_subset_size(subset_size, min(a.shape[0], b.shape[0]))
    rng = np.random.RandomState(seed)
    values = []
    for _ in range(num_subsets):
        subset_a = a[rng.choice(a.shape[0], m, replace=False)]
        subset_b = b[rng.choice(b.shape[0], m, replace=False)]
        values.append(polynomial_mmd2(subset_a, subset_b))
    return {
        "kvd": float(np.mean(values)),
        "kvd_std": float(np.std(values)),
        "kvd_subsets": num_subsets,
        "kvd_subset_size": m,
    }
