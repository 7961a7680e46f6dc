"""What every test module shares: where the fixtures are, and the skips that depend on the host.

Test modules import from here (`from conftest import FIXTURES, TINY`): pytest puts tests/ on
sys.path. EDGETTS_FIXTURES points the suite at another fixture folder (same layout).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("EDGETTS_FIXTURES", Path(__file__).parent / "fixtures"))
TINY = FIXTURES / "tiny"

# Set by ci/arm64.sh: the suite runs under qemu user-mode emulation, where code runs ~20x slower
# than natively (limits on how fast something reacts scale by this; nothing else changes).
EMULATED = os.environ.get("EDGETTS_EMULATED", "")
SLOWDOWN = 20 if EMULATED else 1
# Audio of the same codes decoded in other pushes (a stream's 1 + 3 frames against one 4-frame
# decode): float32 summation order differs, and the random-weight codecs amplify that noise
# (1.6-3.2e-5 measured with OpenBLAS's Haswell kernels, whose sgemm sums a row differently
# with the row count M; its SkylakeX kernels do not); the codec's parity bar (test_codec).
TOL_AUDIO_ORDER = 1e-4


def portaudio_available() -> bool:
    try:
        import sounddevice  # noqa: F401
    except OSError:  # libportaudio2 missing (CI installs it: .ci/run)
        return False
    return True


requires_portaudio = pytest.mark.skipif(not portaudio_available(),
                                        reason="PortAudio (libportaudio2) not installed")


def _x86_fused() -> bool:
    from edgetts.kernels import decoder
    return decoder.SUPPORTED


requires_x86_fused = pytest.mark.skipif(not _x86_fused(), reason="x86 x8 kernels not available on this host")


def _ray_skip() -> bool:
    """Ray is left out of the emulated aarch64 root (ci/arm64.sh: a large wheel); everywhere else
    the test extra installs it and a missing Ray fails the Ray tests instead of skipping them."""
    import importlib.util
    return bool(EMULATED) and importlib.util.find_spec("ray") is None


requires_ray = pytest.mark.skipif(_ray_skip(), reason="Ray is not installed in the emulated aarch64 root")
