"""ZCA whitening, the preprocessing of the first WRN paper version (Zagoruyko & Komodakis 2016, v1).

The whitening matrix ``W = U diag(1 / sqrt(s + epsilon)) U^T`` comes from the
eigen-decomposition ``U diag(s) U^T`` of the pixel covariance of the training
images (scaled to [0, 1], per-pixel mean removed).  It is symmetric, so it
keeps images looking like images ("zero-phase"), and the whitened images
are then augmented like any other.  With fewer images N than pixel values D
(a small fine-tuning folder) the covariance has rank < N, so `fit_zca` takes
its eigenvectors from the thin SVD of the N x D data (O(N^2 D) instead of the
O(D^3) eigen-decomposition: 0.9 s instead of about 30 s for 40 images of D = 3072 on a shared 2-core Xeon); the
rest of the space has eigenvalue 0 and is scaled by ``1 / sqrt(epsilon)``.
Applied once to the arrays in NumPy: a
3072x3072 product per image is far cheaper as one batched matrix product than
inside a per-image `tf.data` map.
"""

import numpy as np
import scipy.linalg

__all__ = ["fit_zca", "apply_zca", "ZCA_EPSILON"]

ZCA_EPSILON = 1e-2


def fit_zca(images, epsilon=ZCA_EPSILON):
    """``(mean (D,), matrix (D, D))`` float32 for images ``(N, H, W, C)`` uint8, ``D = H*W*C``."""
    images = np.asarray(images)
    if images.ndim != 4 or len(images) < 2:
        raise ValueError(f"fit_zca: images must be (N >= 2, H, W, C), got shape {images.shape}.")
    if not epsilon >= 0:
        raise ValueError(f"fit_zca: epsilon={epsilon!r} must be >= 0.")
    flat = images.reshape(len(images), -1).astype(np.float64) / 255.0
    mean = flat.mean(axis=0)
    flat -= mean
    if len(flat) < flat.shape[1]:
        # Right singular vectors of the data are the covariance's eigenvectors of non-zero eigenvalue.
        _, singular, rows = scipy.linalg.svd(flat, full_matrices=False)
        eigenvalues, eigenvectors = singular**2 / len(flat), rows.T
        null_scale = _whitening_scale(np.zeros(1), epsilon)[0]
        matrix = null_scale * np.eye(flat.shape[1]) + (eigenvectors * (_whitening_scale(eigenvalues, epsilon)
                                                                        - null_scale)) @ eigenvectors.T
    else:
        eigenvalues, eigenvectors = scipy.linalg.eigh(flat.T @ flat / len(flat))
        matrix = (eigenvectors * _whitening_scale(eigenvalues, epsilon)) @ eigenvectors.T
    return mean.astype(np.float32), matrix.astype(np.float32)


def _whitening_scale(eigenvalues, epsilon):
    """``1 / sqrt(eigenvalue + epsilon)``; with epsilon 0, eigenvalues below 1e-12 count as 1e-12."""
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    return 1.0 / np.sqrt(eigenvalues + epsilon) if epsilon else 1.0 / np.sqrt(np.maximum(eigenvalues, 1e-12))


def apply_zca(images, mean, matrix, chunk=4096):
    """Whiten uint8 images ``(N, H, W, C)``; returns float32 of the same shape."""
    images = np.asarray(images)
    flat_size = int(np.prod(images.shape[1:]))
    if matrix.shape != (flat_size, flat_size) or mean.shape != (flat_size,):
        raise ValueError(
            f"apply_zca: images of shape {images.shape[1:]} need a ({flat_size},) mean and a "
            f"({flat_size}, {flat_size}) matrix, got {mean.shape} and {matrix.shape}."
        )
    out = np.empty(images.shape, np.float32)
    for start in range(0, len(images), chunk):
        part = images[start:start + chunk].reshape(-1, flat_size).astype(np.float32) / 255.0
        out[start:start + chunk] = ((part - mean) @ matrix).reshape((-1,) + images.shape[1:])
    return out
