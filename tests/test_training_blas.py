"""cs_nets.training._blas: gemm with accumulation and axpy, through NumPy's OpenBLAS and through NumPy,
each against a plain loop in float64; and which library is bound, and why."""

import ctypes.util
import os
import subprocess
import sys

import numpy as np
import pytest

from cs_nets.training import _blas as blas


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


# ---------------------------------------------------------------------- which BLAS is bound


def test_the_openblas_numpy_reports_is_the_one_bound():
    """Never skips: when NumPy reports an OpenBLAS, the fast path must have bound exactly that
    library (a NumPy that moves or renames it fails here instead of silently going slow);
    when it reports another BLAS, the NumPy path runs."""
    report = blas.numpy_blas_report()
    blas.use_numpy(False)
    try:
        if "openblas" in str(report.get("name", "")).lower():
            assert blas.backend().startswith("openblas ("), blas.status()
            info = blas.library_info()
            assert info is not None and info["internal_api"] == "openblas"
            assert info["version"] == report["version"]
            assert info["num_threads"] >= 1
        else:
            assert blas.backend() == "numpy", blas.status()
            assert blas.library_info() is None
    finally:
        blas.use_numpy(None)


def test_a_numpy_linked_to_another_blas_gets_the_numpy_path(monkeypatch):
    binding, reason = blas.find_openblas({"name": "mkl-sdl", "version": "2023.1"}, blas.loaded_blas_libraries())
    assert binding is None and reason == "NumPy reports its BLAS as mkl-sdl, not an OpenBLAS"
    monkeypatch.setattr(blas, "_found", (binding, reason))
    monkeypatch.setattr(blas, "_numpy_only", False)
    assert blas.backend() == "numpy" and blas.library_info() is None
    assert blas.status() == "numpy: NumPy reports its BLAS as mkl-sdl, not an OpenBLAS"
    rng = np.random.default_rng(6)
    a, b, c = rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal((4, 2))
    expected = gemm_loop(a, b, c, -0.5, 0.9)
    np.testing.assert_allclose(blas.gemm(a, b, c, -0.5, 0.9), expected, rtol=1e-12)


def test_only_an_openblas_of_numpys_version_is_taken():
    report = {"name": "scipy-openblas", "version": "0.0.1"}
    libraries = [{"user_api": "blas", "internal_api": "openblas", "version": "0.3.31", "filepath": "x.so"},
                 {"user_api": "blas", "internal_api": "mkl", "version": "0.0.1", "filepath": "y.so"}]
    binding, reason = blas.find_openblas(report, libraries)
    assert binding is None
    assert reason == ("NumPy reports scipy-openblas 0.0.1, but threadpoolctl lists no OpenBLAS of that "
                      "version in this process (loaded BLAS: openblas 0.3.31, mkl 0.0.1)")


def test_a_library_without_the_cblas_symbols_is_refused_with_the_reason():
    libm = ctypes.util.find_library("m")  # a real shared library that is no BLAS
    if libm is None:
        pytest.skip("no libm to load")
    report = {"name": "openblas", "version": "9.9"}
    binding, reason = blas.find_openblas(report, [{"internal_api": "openblas", "version": "9.9", "filepath": libm}])
    assert binding is None
    assert reason.startswith("NumPy reports openblas 9.9, but it cannot be bound: ")
    assert "exports none of scipy_cblas_sgemm64_, scipy_cblas_sgemm, cblas_sgemm64_, cblas_sgemm (with axpy)" in reason


def test_the_integer_width_must_agree_with_numpys_report():
    report = blas.numpy_blas_report()
    libraries = [lib for lib in blas.loaded_blas_libraries() if lib["internal_api"] == "openblas"]
    binding, _ = blas.find_openblas(report, libraries)
    if binding is None:  # test_the_openblas_numpy_reports_is_the_one_bound says whether that is right
        pytest.skip("NumPy uses no OpenBLAS here")
    other = "DYNAMIC_ARCH" if binding.int_bits == 64 else "USE64BITINT DYNAMIC_ARCH"
    binding, reason = blas.find_openblas({**report, "openblas configuration": f"OpenBLAS x {other}"}, libraries)
    assert binding is None and f"bit integers, but NumPy's OpenBLAS is configured as 'OpenBLAS x {other}'" in reason


def test_cs_nets_blas_numpy_forces_the_fallback():
    code = "from cs_nets.training import _blas as blas; print(blas.backend())"
    env = {**os.environ, "CS_NETS_BLAS": "numpy"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "numpy"
