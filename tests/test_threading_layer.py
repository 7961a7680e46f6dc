"""numba threading layer: OpenMP / TBB when their library loads; otherwise workqueue for single
-thread kernel work and a one-line error (naming libgomp1) where the TTS needs two threads of
kernels. The missing library is simulated by making numba's pool modules unimportable."""
import os
import subprocess
import sys

from conftest import ROOT, TINY

_NO_LAYER = r"""
import sys
sys.modules["numba.np.ufunc.omppool"] = None   # as when libgomp.so.1 is missing
sys.modules["numba.np.ufunc.tbbpool"] = None   # and there is no tbb
import numba, numpy as np, edgetts
from edgetts.kernels.matmul import Matrix
assert numba.config.THREADING_LAYER == "workqueue", numba.config.THREADING_LAYER
m = Matrix.from_f32(np.ones((16, 64), np.float32), "Q8_0")
out = np.empty(16, np.float32)
m.matvec(np.ones(64, np.float32), out)      # one thread of parallel kernels works
assert np.allclose(out, 64, rtol=1e-3), out
assert numba.threading_layer() == "workqueue"
from edgetts import cli
sys.exit(cli.main(["say", "-m", sys.argv[1], "-o", "x.wav", "Hello."]))
"""


def test_without_a_threadsafe_layer_one_line_error(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("NUMBA_THREADING_LAYER", None)
    r = subprocess.run([sys.executable, "-c", _NO_LAYER, str(TINY)], env=env, cwd=tmp_path,
                       capture_output=True, timeout=600)
    err = r.stderr.decode()
    assert r.returncode == 1, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("edgetts: error:"), err
    assert "libgomp1" in lines[0] and "threading layer" in lines[0], err
    assert not (tmp_path / "x.wav").exists()


def test_threadsafe_layer_chosen_when_present():
    code = ("import numba, numpy as np, edgetts; from edgetts import threading_layer as t\n"
            "from edgetts.kernels.matmul import Matrix\n"
            "assert t.loadable() and t.missing is None, t.loadable()\n"
            "m = Matrix.from_f32(np.ones((16, 64), np.float32), 'Q8_0')\n"
            "m.matvec(np.ones(64, np.float32), np.empty(16, np.float32))\n"
            "print(numba.threading_layer())")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("NUMBA_THREADING_LAYER", None)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().strip() in ("omp", "tbb")
