"""Which codec products run on a reduced-precision kernel (kernels/lowp.py), per layer group.

Groups: pre_conv, transformer (all its Linears), upsample{u}.tconv, upsample{u}.pwconv,
decoder.0, block{b}.tconv, block{b}.conv1, block{b}.conv2, final.

precision:
  "f32"   every product in float32 through BLAS / the numba few-row kernel (exact path; parity tests)
  "auto"  AUTO_KIND below for every group but AUTO_F32 where this CPU has that kernel (AMX-BF16),
          float32 everywhere otherwise; and where the checkpoint stores F16 weights (the GGUF
          files), the few-row groups (CodecDecoder.few_row_groups: the upsampler, decoder.0, the
          first block's transposed conv) read them as stored in float32 math (exact, half the
          bytes of a bf16x3 pair: one-frame push 35.5 -> 30.9 ms here, one-shot ~4 % slower)
  "int8" / "bf16" / "bf16x3"  that kernel for every group it applies to
  a dict {group: "f32" | "int8" | "bf16" | "bf16x3"}  (bench/codec.py's per-group error table;
          unnamed groups stay float32)

AUTO was chosen by measurement (bench/codec.py --compare f32,<kind> --snr-groups, docs/kernels.md
§6): the end-to-end waveform SNR against float32 with each group alone on the kernel and with
all of them, and the time per push of each stage against the float32 kernels; a group runs on a
kernel where that is faster and the whole set keeps the waveform SNR >= 35 dB on the full-size
random codecs and on the fixtures. int8 (~40 dB per product) and bf16 (~52 dB) fail that rule on
every group of the random codecs, which amplify an error ~40 dB; bf16x3 (AMX, ~100 dB per
product) passes it.
Products with fewer than 16 output columns (the final 1-channel conv) always stay float32.
"""
from __future__ import annotations

from ..errors import EdgeTTSError
from ..kernels import amx, lowp

PRECISIONS = ("auto", "f32", "int8", "bf16", "bf16x3")

# auto: AUTO_KIND for every group except AUTO_F32, where this CPU has the kernel; float32 elsewhere.
# Measured (bench/codec.py, 2 threads, full-size random codecs, this AMX Xeon): bf16x3 on every
# group keeps 41.3-42.2 dB (make_random_model's codec, 4 seeds), 51.9 (bench/codec.py's), 71-72
# (fixtures); per group alone 47-52 dB for the stages before block1, 58-77 after (make_random_model's).
# auto: 42.3-43.1 / 52.9 / 71.8-73.4 dB. The transformer is the most
# error-sensitive group and gains nothing (1-4 rows per push: weight reads and thread hand-offs,
# 4.8 against 3.9 ms per frame fed 4 frames), so it stays float32.
AUTO_KIND = "bf16x3"
AUTO_F32 = ("transformer",)

_AVAILABLE = {"int8": lowp.HAS_INT8, "bf16": lowp.HAS_BF16, "bf16x3": amx.HAS_AMX_BF16}
_NEEDS = {"int8": "AVX512-VNNI", "bf16": "AVX512_BF16", "bf16x3": "AMX-BF16"}


def available(kind: str) -> bool:
    """This CPU (and OS) runs the kernel of that kind."""
    return kind == "f32" or bool(_AVAILABLE.get(kind))


def plan_precision(precision, cfg=None):
    """-> red(group) giving None (float32) or a function packing a float32 [K, N] weight."""
    if isinstance(precision, dict):
        plan = dict(precision)
    elif precision in ("f32", None):
        plan = {}
    elif precision == "auto":
        plan = None if available(AUTO_KIND) else {}
    elif precision in ("int8", "bf16", "bf16x3"):
        plan = None
    else:
        raise EdgeTTSError(f"codec precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    for k in ([AUTO_KIND if precision == "auto" else precision] if plan is None else plan.values()):
        if not available(k):
            raise EdgeTTSError(f"codec precision {k!r}: this CPU has no kernel for it "
                               f"({_NEEDS.get(k, k)} needed; use auto or f32)")

    def red(group: str):
        if plan is not None:
            kind = plan.get(group, "f32")
        elif precision == "auto":
            kind = "f32" if group in AUTO_F32 else AUTO_KIND
        else:
            kind = precision
        if kind == "f32":
            return None

        def pack(w, taps=1):
            """w float32 [taps*Cin, N] (tap-major for a conv) -> the packed weight."""
            if w.shape[1] < lowp.LANES:
                return w  # 1-channel output: nothing to gain
            if kind == "bf16x3":
                return lowp.PackedBF16x3(w, taps)
            return lowp.PackedGemm(w, kind, taps)
        return pack
    return red
