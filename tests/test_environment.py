"""What a run's bits depend on is recorded precisely enough to tell two CPU kinds apart (issue 39, item 7: two
"AMD EPYC, AVX512, mkl" machines of other families gave other numbers)."""

import platform

import pytest

from act3d.environment import DISPATCH_FLAGS, cache_sizes, cpu_identity, environment, kernel_libraries


def test_the_record_names_the_cpu_kind_its_extensions_caches_and_kernel_libraries():
    env = environment()
    assert {"cpu", "cpu_id", "caches", "cpu_capability", "blas", "kernel_libraries", "threads"} <= env.keys()
    assert set(env["cpu_id"]["extensions"]) <= set(DISPATCH_FLAGS)
    if platform.system() == "Linux":
        identity = cpu_identity()
        assert identity["vendor"] and identity["family"] and identity["model"]
        assert all(level in ("L1d", "L1i", "L2", "L3") for level in cache_sizes())


def test_the_kernel_library_versions_come_from_the_torch_build():
    import torch

    libraries = kernel_libraries()
    if torch.backends.mkl.is_available():
        assert libraries["mkl"][0].isdigit()
    if "MKL-DNN" in torch.__config__.show():
        assert libraries["onednn"].startswith("v")
    else:
        pytest.skip("this torch build has no oneDNN")
