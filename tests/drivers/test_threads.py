"""BLAS held to one thread while calibration's own threads run."""

from threadpoolctl import threadpool_info, threadpool_limits

from optgen.drivers.common.threads import single_blas_thread


def _blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_blas_runs_on_one_thread_inside_and_gets_its_threads_back_after():
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        assert before                                     # numpy's OpenBLAS is loaded
        with single_blas_thread():
            assert set(_blas_threads()) == {1}
        assert _blas_threads() == before


def test_the_threads_come_back_when_the_block_raises():
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        try:
            with single_blas_thread():
                raise KeyError("a step failed")
        except KeyError:
            pass
        assert _blas_threads() == before
