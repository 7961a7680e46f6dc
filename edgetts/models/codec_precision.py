"""Which codec products run on a reduced-precision kernel (kernels/lowp.py), per layer group.

Groups: pre_conv, transformer (all its Linears), upsample{u}.tconv, upsample{u}.pwconv,
decoder.0, block{b}.tconv, block{b}.conv1, block{b}.conv2, final.

precision:
  "f32"   every product in float32 through BLAS / the numba few-row kernel (exact path; parity tests)
  "auto"  AUTO below where this CPU has the kernel, float32 elsewhere
  "int8" / "bf16"  that kernel for every group it applies to (measurements)
  a dict {group: "f32" | "int8" | "bf16"}  (bench/codec.py's per-group error table; unnamed
          groups stay float32)

AUTO was chosen by measurement (bench/codec.py --precision-table, docs/kernels.md §6): the
end-to-end waveform SNR against float32 with each group alone on int8, and the speed of each
kernel against OpenBLAS sgemm on the group's shapes; a group is on int8 where it is faster and
the whole set keeps the waveform SNR >= 35 dB on the full-size random codec and on the fixtures.
bf16 (vdpbf16ps) is exact enough everywhere but measured slower than sgemm on this CPU
(~80 against 100-140 GFLOP/s per thread), so auto never picks it.
Products with fewer than 16 output columns (the final 1-channel conv) always stay float32.
"""
from __future__ import annotations

from ..errors import EdgeTTSError
from ..kernels import lowp

PRECISIONS = ("auto", "f32", "int8", "bf16")

# Measured (load 2.6-5.9, bench/codec.py --precision-table): every group alone on int8 drops the
# waveform SNR of the full-size random codec to 10.7-26 dB and of the tiny fixtures below 35 dB
# (bf16 too: 13 / 21 dB with all groups, 27-44 dB per group alone), so by the 35 dB rule no group
# qualifies yet and auto is float32 everywhere. Fill this {group: kind} table from that bench
# when a checkpoint family passes (see docs/kernels.md §6).
AUTO: dict = {}

_AVAILABLE = {"int8": lowp.HAS_INT8, "bf16": lowp.HAS_BF16}


def plan_precision(precision, cfg=None):
    """-> red(group) giving None (float32) or a function packing a float32 [K, N] weight."""
    if isinstance(precision, dict):
        plan = dict(precision)
    elif precision in ("f32", None):
        plan = {}
    elif precision == "auto":
        plan = {g: k for g, k in AUTO.items() if _AVAILABLE.get(k)}
    elif precision in ("int8", "bf16"):
        plan = None
    else:
        raise EdgeTTSError(f"codec precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    for k in ([precision] if plan is None else plan.values()):
        if k != "f32" and not _AVAILABLE.get(k, False):
            raise EdgeTTSError(f"codec precision {k!r}: this CPU has no kernel for it "
                               f"({'AVX512-VNNI' if k == 'int8' else 'AVX512_BF16'} needed; use auto or f32)")

    def red(group: str):
        kind = precision if plan is None else plan.get(group, "f32")
        if kind == "f32":
            return None

        def pack(w, taps=1):
            """w float32 [taps*Cin, N] (tap-major for a conv) -> the packed weight."""
            if w.shape[1] < lowp.LANES:
                return w  # 1-channel output: nothing to gain
            return lowp.PackedGemm(w, kind, taps)
        return pack
    return red
