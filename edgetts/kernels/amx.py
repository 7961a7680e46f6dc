"""Intel AMX-BF16 tiles for the codec's float32 products, as three bfloat16 products ("bf16x3").

Every float32 value v splits exactly into a bfloat16 pair: hi = bf16(v), lo = bf16(v - hi)
(nearest even both times; v - hi is exact in float32), so hi + lo carries 16 significant bits and
|v - hi - lo| <= 2^-17 |v|. A product is then

    x @ W  ~=  xh @ Wh  +  xh @ Wl  +  xl @ Wh          (xl @ Wl, ~2^-16 relative, dropped)

with every bfloat16 x bfloat16 product exact and summed in float32 by TDPBF16PS: about 100 dB
per product against the float32 one, where a single bfloat16 product gives ~52 dB and int8 ~40
(docs/kernels.md §6). Three TDPBF16PS (16 x 16 x 32 multiply-adds each, 512 per cycle per
core) still out-run AVX-512 float32 FMAs (32 per cycle) several times over.

Tiles (palette 1, all 16 rows x 64 bytes): 0..3 the 2 x 2 float32 accumulators of a 32-row x
32-column output block, 4 and 5 the activation tiles of its two 16-row halves (32 bfloat16 of K
per row), 6 and 7 the weight tiles of its two 16-column halves (16 K-pairs x 16 columns x 2).
The accumulators stay in the tile registers over the whole K of every tap, so a causal conv needs
no im2col: tap j loads the activation rows shifted by j*d.

Layouts (KC = K chunks of 32 per tap, K zero padded):
  activations  AH, AL  uint16[rows, KC*32]      one row per input row (bfloat16 bits)
  weights      WH, WL  uint16[NT, taps, KC, 16, 32]   NT column tiles of 16 (N padded to 32):
               [t, j, c, p, 2n + i] = W[tap j, k = 32c + 2p + i, column 16t + n]
  output       float32[rows padded to 32, NT*16]

Linux hands AMX tile state to a process only on request (arch_prctl ARCH_REQ_XCOMP_PERM,
XFEATURE_XTILEDATA); HAS_AMX_BF16 asks once, and an AMX instruction without it would kill the
process, so the kernels are compiled only where it was granted. EDGETTS_AMX=0 turns them off.
"""
from __future__ import annotations

import os

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from .matmul import _data, _fn
from .quant import _bits_f32, _f32_bits

TM = 16   # rows of a tile
TK = 32   # bfloat16 values of K per tile row
TN = 16   # float32 columns of an accumulator tile
BM, BN = 2 * TM, 2 * TN  # output block: 2 x 2 accumulator tiles

_I8, _I64 = ir.IntType(8), ir.IntType(64)
_VOID = ir.VoidType()
_P8 = _I8.as_pointer()


def _granted() -> bool:
    """The host has AMX-BF16 (numba compiles for it) and Linux grants this process the tiles."""
    if os.environ.get("EDGETTS_AMX", "1").strip() == "0":
        return False
    import ctypes
    import platform

    import numba
    from llvmlite import binding as llvm

    if platform.system() != "Linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    if numba.config.CPU_NAME not in (None, "host"):
        return False  # a portable build: no host-only instructions
    try:
        f = llvm.get_host_cpu_features()
        if not (f.get("amx-bf16", False) and f.get("amx-tile", False)):
            return False
        sys_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata = 158, 0x1023, 18
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syscall(sys_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) == 0
    except Exception:
        return False


HAS_AMX_BF16 = _granted()

TILE_CFG = np.zeros(64, np.uint8)  # ldtilecfg's 64-byte operand
TILE_CFG[0] = 1  # palette 1
for _t in range(8):
    TILE_CFG[16 + 2 * _t] = 64  # bytes per row (u16 little-endian)
    TILE_CFG[48 + _t] = TM      # rows


def _ptr(context, builder, aryty, ary, off):
    """i8* to byte `off` of a C-contiguous array's data."""
    return builder.gep(builder.bitcast(_data(context, builder, aryty, ary), _P8), [off])


def _lit(t):
    return t.literal_value if isinstance(t, types.IntegerLiteral) else None


@intrinsic
def tile_config(typingctx, cfg):
    """ldtilecfg(cfg): cfg uint8[64] (TILE_CFG)."""
    def codegen(context, builder, sig, args):
        f = _fn(builder, "llvm.x86.ldtilecfg", _VOID, [_P8])
        builder.call(f, [_ptr(context, builder, sig.args[0], args[0], ir.Constant(_I64, 0))])
        return context.get_dummy_value()
    return types.none(cfg), codegen


@intrinsic
def tile_release(typingctx):
    def codegen(context, builder, sig, args):
        builder.call(_fn(builder, "llvm.x86.tilerelease", _VOID, []), [])
        return context.get_dummy_value()
    return types.none(), codegen


@intrinsic
def tile_zero(typingctx, t):
    if _lit(t) is None:
        return None

    def codegen(context, builder, sig, args):
        f = _fn(builder, "llvm.x86.tilezero", _VOID, [_I8])
        builder.call(f, [ir.Constant(_I8, _lit(sig.args[0]))])
        return context.get_dummy_value()
    return types.none(t), codegen


def _tile_mem(name):
    """codegen of tile_load / tile_store: the intrinsic `name`(tile, ary data + off, stride)."""
    def codegen(context, builder, sig, args):
        f = _fn(builder, name, _VOID, [_I8, _P8, _I64])
        off = context.cast(builder, args[2], sig.args[2], types.int64)
        stride = context.cast(builder, args[3], sig.args[3], types.int64)
        builder.call(f, [ir.Constant(_I8, _lit(sig.args[0])), _ptr(context, builder, sig.args[1], args[1], off),
                         stride])
        return context.get_dummy_value()
    return codegen


@intrinsic
def tile_load(typingctx, t, ary, off, stride):
    """Tile t <- 16 rows of 64 bytes from ary's data + off bytes, rows stride bytes apart."""
    if _lit(t) is None:
        return None
    return types.none(t, ary, off, stride), _tile_mem("llvm.x86.tileloadd64")


@intrinsic
def tile_store(typingctx, t, ary, off, stride):
    """16 rows of 64 bytes of tile t -> ary's data + off bytes, rows stride bytes apart."""
    if _lit(t) is None:
        return None
    return types.none(t, ary, off, stride), _tile_mem("llvm.x86.tilestored64")


@intrinsic
def tile_dot(typingctx, c, a, b):
    """Tile c (16 x 16 f32) += tile a (16 x 32 bf16) @ tile b (16 K-pairs x 16 x 2 bf16)."""
    if _lit(c) is None or _lit(a) is None or _lit(b) is None:
        return None

    def codegen(context, builder, sig, args):
        f = _fn(builder, "llvm.x86.tdpbf16ps", _VOID, [_I8, _I8, _I8])
        builder.call(f, [ir.Constant(_I8, _lit(s)) for s in sig.args])
        return context.get_dummy_value()
    return types.none(c, a, b), codegen


@intrinsic
def split16(typingctx, src, i, H, L, o):
    """H[o:o+16], L[o:o+16] = the bfloat16 bits of hi = bf16(v), lo = bf16(v - hi) (nearest
    even) for the 16 float32 values v = src[i:i+16]. One vector of 32-bit lanes (numba's scalar
    integer code widens to 64 bits: 0.4 ns per value against 0.18 here)."""
    if not (isinstance(src, types.Array) and src.dtype == types.float32
            and all(isinstance(a, types.Array) and a.dtype == types.uint16 for a in (H, L))):
        return None

    def codegen(context, builder, sig, args):
        v16, i16v, f16v = ir.VectorType(ir.IntType(16), 16), ir.VectorType(ir.IntType(32), 16), \
            ir.VectorType(ir.FloatType(), 16)
        i = context.cast(builder, args[1], sig.args[1], types.int64)
        o = context.cast(builder, args[4], sig.args[4], types.int64)

        def elem(k, idx):
            return builder.gep(_data(context, builder, sig.args[k], args[k]), [idx])
        v = builder.load(builder.bitcast(elem(0, i), f16v.as_pointer()), align=4)

        def c(x):
            return ir.Constant(i16v, [x] * 16)

        def rne(f):  # float32 vector -> bfloat16 bits in the low half of 32-bit lanes
            b = builder.bitcast(f, i16v)
            r = builder.add(builder.add(b, c(0x7FFF)), builder.and_(builder.lshr(b, c(16)), c(1)))
            return builder.lshr(r, c(16))
        h = rne(v)
        lo = rne(builder.fsub(v, builder.bitcast(builder.shl(h, c(16)), f16v)))
        for k, x in ((2, h), (3, lo)):
            builder.store(builder.trunc(x, v16), builder.bitcast(elem(k, o), v16.as_pointer()), align=2)
        return context.get_dummy_value()
    return types.none(src, i, H, L, o), codegen


if HAS_AMX_BF16:
    @njit(inline="always")
    def _load_a(A, off0, off1, stride):
        """Tiles 4, 5 <- the two 16-row halves of an activation block."""
        tile_load(4, A, off0, stride)
        tile_load(5, A, off1, stride)

    @njit(inline="always")
    def _load_w(W, off0, off1):
        """Tiles 6, 7 <- the two 16-column halves of a weight block."""
        tile_load(6, W, off0, 64)
        tile_load(7, W, off1, 64)

    @njit(inline="always")
    def _dot_2x2():
        """Accumulators 0..3 (rows half r, columns half c: tile 2r + c) += tiles (4 + r) @ (6 + c)."""
        tile_dot(0, 4, 6)
        tile_dot(1, 4, 7)
        tile_dot(2, 5, 6)
        tile_dot(3, 5, 7)

    @njit(cache=True, nogil=True)
    def gemm_bf16x3(AH, AL, WH, WL, out, cfg, m0, m1, b0, b1, d, mc):
        """out[m, 32b .. 32b+32] for output rows m0..m1 (multiples of 32) and column blocks
        b0..b1 (pairs of column tiles) = sum over taps j of rows m + j*d of A (hi/lo pairs) @
        tap j of W, as xh Wh + xh Wl + xl Wh (module docstring). Overwrites out's block.
        Rows in chunks of mc (a multiple of 32): each chunk's activations stay in L2 while
        every column block's weights pass over them. Per output block, K chunk c outer and
        taps inner: the 32 + (taps-1) d activation rows of one chunk (64 bytes of each) stay in
        L1 while the taps re-read them shifted (taps outer streamed a block's whole rows from L2
        once per tap: the kernel alone, one thread, 7-tap shapes: K 384-768 +5-18 %, K 96-192
        within noise)."""
        taps, kc = WH.shape[1], WH.shape[2]
        sa = AH.shape[1] * 2          # activation row stride, bytes
        so = out.shape[1] * 4         # output row stride, bytes
        wt = taps * kc * 1024         # bytes per column tile of W
        tile_config(cfg)
        for mm in range(m0, m1, mc):
            for b in range(b0, b1):
                w0 = 2 * b * wt
                w1 = w0 + wt
                for m in range(mm, min(m1, mm + mc), BM):
                    tile_zero(0)
                    tile_zero(1)
                    tile_zero(2)
                    tile_zero(3)
                    for c in range(kc):  # K chunk outer: its A rows stay in L1 over the taps
                        for j in range(taps):
                            a0 = (m + j * d) * sa + c * 64
                            a1 = a0 + TM * sa
                            kw = (j * kc + c) * 1024
                            _load_a(AH, a0, a1, sa)             # hi x hi
                            _load_w(WH, w0 + kw, w1 + kw)
                            _dot_2x2()
                            _load_w(WL, w0 + kw, w1 + kw)       # hi x lo
                            _dot_2x2()
                            _load_a(AL, a0, a1, sa)             # lo x hi
                            _load_w(WH, w0 + kw, w1 + kw)
                            _dot_2x2()
                    o = m * so + b * BN * 4
                    tile_store(0, out, o, so)
                    tile_store(1, out, o + TN * 4, so)
                    tile_store(2, out, o + TM * so, so)
                    tile_store(3, out, o + TM * so + TN * 4, so)
        tile_release()


def row_chunk(kp: int) -> int:
    """gemm_bf16x3's mc: rows whose hi/lo activations (4 bytes per value of K) take ~256 KB of
    L2, 32..256. Against one pass of all rows per column block: 3200 x 512 x 512 116 -> 155-159
    GMAC/s, the codec's conv shapes within +-5 % (noise here)."""
    return max(BM, min(256, (1 << 18) // (4 * kp) // BM * BM))


@njit(cache=True, nogil=True, inline="always")
def _bf16_rne(b):
    """float32 bits -> bfloat16 bits, nearest even."""
    return (b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)


@njit(cache=True, nogil=True, inline="always")
def _split(v):
    """float32 v -> (hi, lo) bfloat16 bits: hi = bf16(v), lo = bf16(v - hi)."""
    h = _bf16_rne(_f32_bits(v))
    return h, _bf16_rne(_f32_bits(v - _bits_f32(h << np.uint32(16))))


@njit(cache=True, nogil=True)
def split_rows(x, AH, AL):
    """x f32[M, K] -> AH, AL uint16[R, KP]: the bfloat16 bits of hi = bf16(x) and lo = bf16(x -
    hi), nearest even both (x - hi is exact); rows past M and columns past K zero."""
    M, K = x.shape
    AH[M:, :] = 0
    AL[M:, :] = 0
    AH[:M, K:] = 0
    AL[:M, K:] = 0
    K16 = K // 16 * 16
    for m in range(M):
        xr, hr, lr = x[m], AH[m], AL[m]
        for i in range(0, K16, 16):
            split16(xr, i, hr, lr, i)
        for i in range(K16, K):
            h, lo = _split(xr[i])
            hr[i] = np.uint16(h)
            lr[i] = np.uint16(lo)


@njit(cache=True, nogil=True, parallel=True)
def _layout(v, taps, out):
    """v uint16[taps*cin, N] (16-bit values, tap-major) -> out uint16[NT, taps, KC, 16, 32]
    (module docstring), zero padded. Walks v's rows in order, a K-pair at a time (two rows read
    straight through; each column tile's 32 values are one 64-byte line of out), the K chunks
    split over the threads."""
    nt, _, kc, npair, nw = out.shape
    cin, N = v.shape[0] // taps, v.shape[1]
    for jc in prange(taps * kc):
        j, c = jc // kc, jc % kc
        for p in range(npair):
            k = c * TK + 2 * p
            for t in range(nt):
                c0 = t * TN
                o = out[t, j, c, p]
                if k + 1 < cin and c0 + TN <= N:
                    r0 = v[j * cin + k, c0:c0 + TN]
                    r1 = v[j * cin + k + 1, c0:c0 + TN]
                    for n in range(TN):
                        o[2 * n] = r0[n]
                        o[2 * n + 1] = r1[n]
                    continue
                for i in range(2):
                    for n in range(TN):
                        ok = k + i < cin and c0 + n < N
                        o[2 * n + i] = v[j * cin + k + i, c0 + n] if ok else 0


def pack_weight(w: np.ndarray, taps: int = 1):
    """W [taps*cin, N] (tap-major) -> (WH, WL), its hi / lo bfloat16 bits in the tiles' layout
    (module docstring)."""
    K, N = w.shape
    cin = K // taps
    shape = (-(-N // BN) * 2, taps, -(-cin // TK), TK // 2, 2 * TN)
    hi, lo = np.empty((K, N), np.uint16), np.empty((K, N), np.uint16)
    split_rows(np.ascontiguousarray(w, np.float32), hi, lo)
    WH, WL = np.empty(shape, np.uint16), np.empty(shape, np.uint16)
    _layout(hi, taps, WH)
    _layout(lo, taps, WL)
    return WH, WL
