"""cs_nets.blas: gemm with accumulation and axpy, through NumPy's OpenBLAS and through NumPy,
each against a plain loop in float64."""

import glob
import os
import subprocess
import sys

import numpy as np
import pytest

from cs_nets import blas


def gemm_loop(a, b, c, alpha, beta):
    """c = alpha a b + beta c, one entry at a time in float64 (beta == 0 ignores c)."""
    m, k = a.shape
    n = b.shape[1]
    out = np.empty((m, n))
    for i in range(m):
        for j in range(n):
            total = sum(float(a[i, p]) * float(b[p, j]) for p in range(k))
            out[i, j] = alpha * total + (beta * float(c[i, j]) if beta != 0 else 0.0)
    return out


def layout(m, transposed):
    """m itself, or the same values as the transpose of a C-contiguous array (an F-ordered view)."""
    return np.ascontiguousarray(m.T).T if transposed else m


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("alpha, beta", [(1.0, 0.0), (-0.01, 0.9), (2.5, 1.0), (0.5, -2.0)])
def test_gemm_matches_the_loop(blas_backend, dtype, trans_a, trans_b, alpha, beta):
    rng = np.random.default_rng(0)
    a = layout(rng.standard_normal((7, 5)).astype(dtype), trans_a)
    b = layout(rng.standard_normal((5, 4)).astype(dtype), trans_b)
    c = rng.standard_normal((7, 4)).astype(dtype)
    expected = gemm_loop(a, b, c, alpha, beta)
    result = blas.gemm(a, b, c, alpha, beta)
    assert result is c and c.dtype == dtype
    np.testing.assert_allclose(c, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


def test_gemm_beta_zero_ignores_nan_in_c(blas_backend):
    a, b = np.ones((3, 2), np.float32), np.ones((2, 3), np.float32)
    c = np.full((3, 3), np.nan, np.float32)
    blas.gemm(a, b, c, alpha=-1.0, beta=0.0)
    np.testing.assert_array_equal(c, -2.0)


def test_gemm_takes_any_layout_and_overlap(blas_backend):
    """Strided views and an output overlapping an input are not BLAS-ready: NumPy computes them."""
    rng = np.random.default_rng(1)
    big = rng.standard_normal((8, 12)).astype(np.float32)
    a, b = big[:, ::2], big[:6, 1::3]  # non-contiguous both ways
    c = np.ones((8, 4), np.float32)
    expected = gemm_loop(a, b, c, 0.5, 2.0)
    np.testing.assert_allclose(blas.gemm(a, b, c, 0.5, 2.0), expected, rtol=1e-5)

    square = rng.standard_normal((4, 4))
    expected = gemm_loop(square, square.T, square, 1.0, 1.0)
    np.testing.assert_allclose(blas.gemm(square, square.T, square, 1.0, 1.0), expected, rtol=1e-12)


def test_gemm_with_an_empty_inner_dimension_scales_c(blas_backend):
    c = np.full((2, 3), 4.0)
    blas.gemm(np.zeros((2, 0)), np.zeros((0, 3)), c, alpha=1.0, beta=0.5)
    np.testing.assert_array_equal(c, 2.0)


def test_gemm_shape_mismatch_is_a_value_error(blas_backend):
    with pytest.raises(ValueError, match=r"gemm: shapes \(2, 3\) @ \(4, 5\)"):
        blas.gemm(np.zeros((2, 3)), np.zeros((4, 5)), np.zeros((2, 5)))
    with pytest.raises(ValueError, match="do not give"):
        blas.gemm(np.zeros((2, 3)), np.zeros((3, 5)), np.zeros((5, 2)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_axpy_matches_the_loop(blas_backend, dtype):
    rng = np.random.default_rng(2)
    shape = (blas.BLOCK_ELEMENTS // 100 + 3, 100)  # several blocks and a partial last one
    x = rng.standard_normal(shape).astype(dtype)
    y = rng.standard_normal(shape).astype(dtype)
    expected = [float(yi) + -0.3 * float(xi) for xi, yi in zip(x.ravel()[:500], y.ravel()[:500])]
    whole = y.astype(np.float64) - 0.3 * x.astype(np.float64)
    result = blas.axpy(-0.3, x, y)
    assert result is y and y.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-15  # absolute too: y - 0.3 x may cancel to ~0
    np.testing.assert_allclose(y.ravel()[:500], expected, rtol=tol, atol=4 * tol)
    np.testing.assert_allclose(y, whole, rtol=tol, atol=4 * tol)


def test_axpy_on_views_and_onto_itself(blas_backend):
    y = np.arange(12.0).reshape(3, 4)
    blas.axpy(2.0, np.ones((3, 2)), y[:, ::2])  # a strided view of y
    np.testing.assert_array_equal(y, np.arange(12.0).reshape(3, 4) + [2, 0, 2, 0])
    z = np.arange(5, dtype=np.float32)
    blas.axpy(1.0, z, z)  # x is y: z += z
    np.testing.assert_array_equal(z, 2 * np.arange(5, dtype=np.float32))
    shifted = np.arange(2 * blas.BLOCK_ELEMENTS + 1, dtype=np.float32)  # x and y overlap, offset by 1
    expected = shifted[1:] + 0.5 * shifted[:-1]
    blas.axpy(0.5, shifted[:-1], shifted[1:])
    np.testing.assert_array_equal(shifted[1:], expected)
    with pytest.raises(ValueError, match=r"axpy: shapes \(2,\) and \(3,\) differ"):
        blas.axpy(1.0, np.zeros(2), np.zeros(3))


def test_scale_add_over_several_blocks():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(2 * blas.BLOCK_ELEMENTS + 5).astype(np.float32)
    y0 = rng.standard_normal(x.size).astype(np.float32)
    y = y0.copy()
    blas.scale_add(-0.5, x, 0.7, y)
    np.testing.assert_array_equal(y, y0 * np.float32(0.7) + x * np.float32(-0.5))
    y[:] = np.nan
    blas.scale_add(2.0, x, 0.0, y)
    np.testing.assert_array_equal(y, x * np.float32(2.0))


def test_scale_add():
    y = np.array([1.0, np.nan])
    np.testing.assert_array_equal(blas.scale_add(2.0, np.array([3.0, 4.0]), 0.0, y), [6.0, 8.0])
    np.testing.assert_array_equal(blas.scale_add(1.0, np.array([1.0, 1.0]), 0.5, y), [4.0, 5.0])
    np.testing.assert_array_equal(blas.scale_add(-1.0, np.array([1.0, 1.0]), 1.0, y), [3.0, 4.0])


def test_numpys_bundled_openblas_is_used_when_numpy_ships_it():
    """The fast path must not be lost silently: if the library file is there, it is bound."""
    numpy_dir = os.path.dirname(np.__file__)
    shipped = glob.glob(os.path.join(numpy_dir + ".libs", "*scipy_openblas*")) + glob.glob(
        os.path.join(numpy_dir, ".dylibs", "*scipy_openblas*"))
    if not shipped:
        pytest.skip("this NumPy does not bundle scipy-openblas")
    blas.use_numpy(False)
    try:
        assert blas.backend().startswith("openblas (") and "scipy_openblas" in blas.backend()
    finally:
        blas.use_numpy(None)


def test_cs_nets_blas_numpy_forces_the_fallback():
    code = "from cs_nets import blas; print(blas.backend())"
    env = {**os.environ, "CS_NETS_BLAS": "numpy"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "numpy"
