"""kernels/decoder.py: the one-region decoder step equals the per-op Stack.forward (+ head
matvec) bit for bit, for quantized stacks of odd sizes (its numpy-level twin is that per-op path,
whose kernels are checked against numpy in test_lm_kernels / test_matmul)."""
import numpy as np
import pytest

from edgetts.kernels.matmul import Matrix
from edgetts.kvcache import KVCache
from edgetts.models.config import StackConfig
from edgetts.models.talker import Buffers, Stack
from edgetts.weights import Tensor

from conftest import requires_x86_fused

pytestmark = requires_x86_fused


def make_view(rng, types, H, layers, nh, nkv, hd, ffn, prefix="s"):
    t = {}

    def mat(name, rows, cols, dt):
        m = Matrix.from_f32((rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32), dt)
        t[name] = Tensor(name, dt, (rows, cols), m.data)

    def vec(name, n):
        t[name] = Tensor(name, "F32", (n,), (1 + 0.1 * rng.standard_normal(n)).astype(np.float32))

    for i in range(layers):
        p = f"{prefix}.blk.{i}."
        dt = types[i % len(types)]
        for s, n in (("attn_norm", H), ("ffn_norm", H), ("attn_q_norm", hd), ("attn_k_norm", hd)):
            vec(p + s + ".weight", n)
        mat(p + "attn_q.weight", nh * hd, H, dt)
        mat(p + "attn_k.weight", nkv * hd, H, types[(i + 1) % len(types)])
        mat(p + "attn_v.weight", nkv * hd, H, dt)
        mat(p + "attn_output.weight", H, nh * hd, dt)
        mat(p + "ffn_gate.weight", ffn, H, dt)
        mat(p + "ffn_up.weight", ffn, H, dt)
        mat(p + "ffn_down.weight", H, ffn, types[(i + 1) % len(types)])
    vec(f"{prefix}.output_norm.weight", H)
    return t


@pytest.mark.parametrize("types,H,layers,nh,nkv,hd,ffn,cap", [
    (("Q8_0",), 96, 2, 3, 1, 32, 160, 7),
    (("Q4_0",), 64, 3, 4, 2, 32, 96, 20),
    (("Q4_0", "Q8_0"), 128, 2, 6, 3, 64, 224, 5),
])
def test_step_equals_forward(types, H, layers, nh, nkv, hd, ffn, cap):
    rng = np.random.default_rng(len(types) + H)
    cfg = StackConfig(n_layers=layers, hidden=H, n_heads=nh, n_kv_heads=nkv, head_dim=hd, ffn=ffn, vocab=40,
                      rope_theta=10000.0, eps=1e-6, max_pos=64)
    st = Stack(make_view(rng, types, H, layers, nh, nkv, hd, ffn), "s", cfg, 4)
    assert st._fused is not None
    head = Matrix.from_f32(rng.standard_normal((40, H)).astype(np.float32), types[0])
    c1, c2 = KVCache(layers, nkv, hd, cap), KVCache(layers, nkv, hd, cap)
    b1, b2 = Buffers(cfg, 1), Buffers(cfg, 1)
    l1, l2 = np.zeros(40, np.float32), np.zeros(40, np.float32)
    for pos in range(cap + 4):  # past the capacity: the ring buffer wraps; past n_pos: tables grow
        x = rng.standard_normal((1, H)).astype(np.float32)
        x1, x2 = x.copy(), x.copy()
        y1 = st.forward(x1, pos, c1, b1)[0].copy()
        head.matvec(y1, l1)
        y2 = st.step(x2, pos, c2, b2, head, l2)
        np.testing.assert_array_equal(y1, y2)
        np.testing.assert_array_equal(l1, l2)
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(c1.k, c2.k)
        np.testing.assert_array_equal(c1.v, c2.v)
        assert c2.pos == pos + 1


def test_unsupported_stack_keeps_per_op_path():
    rng = np.random.default_rng(1)
    cfg = StackConfig(n_layers=1, hidden=32, n_heads=2, n_kv_heads=1, head_dim=16, ffn=40, vocab=8,
                      rope_theta=10000.0, eps=1e-6, max_pos=8)
    assert Stack(make_view(rng, ("F32",), 32, 1, 2, 1, 16, 40), "s", cfg, 8)._fused is None


@pytest.mark.parametrize("types,H,layers,nh,nkv,hd,ffn,n,pos0", [
    (("Q8_0",), 96, 2, 3, 1, 32, 160, 2, 0),
    (("Q4_0",), 64, 3, 4, 2, 32, 96, 7, 3),
    (("Q4_0", "Q8_0"), 128, 2, 6, 3, 64, 224, 41, 0),
    (("Q8_0", "Q4_0"), 256, 2, 8, 2, 32, 352, 70, 5),
])
def test_prefill_in_one_region_equals_per_op_forward(monkeypatch, types, H, layers, nh, nkv, hd, ffn, n, pos0):
    """Several rows through Stack.forward run as one parallel region (decoder.prefill_layers):
    the per-op forward's results (rows, caches, final norm) bit for bit."""
    rng = np.random.default_rng(H + n)
    cfg = StackConfig(n_layers=layers, hidden=H, n_heads=nh, n_kv_heads=nkv, head_dim=hd, ffn=ffn, vocab=8,
                      rope_theta=10000.0, eps=1e-6, max_pos=128)
    st = Stack(make_view(rng, types, H, layers, nh, nkv, hd, ffn), "s", cfg, 8)
    assert st.fused
    x = rng.standard_normal((n, H)).astype(np.float32)
    out = []
    calls = []
    import edgetts.kernels.decoder as dec
    real = dec.prefill_layers
    monkeypatch.setattr(dec, "prefill_layers", lambda *a: calls.append(1) or real(*a))
    for fused in (False, True):
        monkeypatch.setattr(Stack, "fused_prefill", fused)
        c = KVCache(layers, nkv, hd, pos0 + n + 3)
        c.k[...] = 0.5  # earlier positions' keys and values: attended to from pos0 on
        c.v[...] = -0.25
        xx = x.copy()
        y = st.forward(xx, pos0, c, Buffers(cfg, n)).copy()
        assert c.pos == pos0 + n and bool(calls) == fused
        out.append((y, xx, c.k.copy(), c.v.copy()))
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)
    # only the last row wanted (Talker.prefill): that row and every row's keys and values
    c = KVCache(layers, nkv, hd, pos0 + n + 3)
    c.k[...] = 0.5
    c.v[...] = -0.25
    xx = x.copy()
    y = st.forward(xx, pos0, c, Buffers(cfg, n), last=1)
    ref_y, ref_x, ref_k, ref_v = out[0]
    np.testing.assert_array_equal(y[-1], ref_y[-1])
    np.testing.assert_array_equal(xx[-1], ref_x[-1])
    np.testing.assert_array_equal(c.k, ref_k)
    np.testing.assert_array_equal(c.v, ref_v)


@pytest.mark.parametrize("dt", ["Q8_0", "Q4_0"])
def test_rows_one_by_one_equal_batched_forward(dt):
    """The code predictor runs its 2-row prefill as two steps: same numbers as forward(2 rows)."""
    rng = np.random.default_rng(7)
    H, nh, nkv, hd, ffn = 64, 4, 2, 32, 96
    cfg = StackConfig(n_layers=2, hidden=H, n_heads=nh, n_kv_heads=nkv, head_dim=hd, ffn=ffn, vocab=8,
                      rope_theta=10000.0, eps=1e-6, max_pos=8)
    st = Stack(make_view(rng, (dt,), H, 2, nh, nkv, hd, ffn), "s", cfg, 8)
    assert st.fused
    x = rng.standard_normal((2, H)).astype(np.float32)
    c1, c2 = KVCache(2, nkv, hd, 4), KVCache(2, nkv, hd, 4)
    x1, x2 = x.copy(), x.copy()
    y1 = st.forward(x1, 0, c1, Buffers(cfg, 2))
    b = Buffers(cfg, 1)
    st.step(x2[0:1], 0, c2, b)
    np.testing.assert_array_equal(b.y[0], y1[0])
    st.step(x2[1:2], 1, c2, b)
    np.testing.assert_array_equal(b.y[0], y1[1])
    np.testing.assert_array_equal(c1.v, c2.v)


@pytest.mark.parametrize("dt,greedy", [("Q8_0", True), ("Q4_0", False), ("Q8_0", False)])
def test_predictor_frame_in_one_region_equals_steps(dt, greedy):
    """Predictor.frame through decoder.predictor_frame (sampling and embedding inside the region)
    gives the codes and logits of the step-by-step frame, with the same random draws."""
    from types import SimpleNamespace

    from edgetts.models.predictor import Predictor

    rng = np.random.default_rng(11)
    H, nh, nkv, hd, ffn, V, G = 64, 4, 2, 32, 96, 48, 6
    view = make_view(rng, (dt,), H, 2, nh, nkv, hd, ffn, prefix="code_pred")
    for j in range(G - 1):
        for name in (f"code_pred.codec_embd.{j}.weight", f"code_pred.lm_head.{j}.weight"):
            m = Matrix.from_f32((2 * rng.standard_normal((V, H))).astype(np.float32), dt)
            view[name] = Tensor(name, dt, (V, H), m.data)
    sc = StackConfig(n_layers=2, hidden=H, n_heads=nh, n_kv_heads=nkv, head_dim=hd, ffn=ffn, vocab=V,
                     rope_theta=10000.0, eps=1e-6, max_pos=G)
    pr = Predictor(view, SimpleNamespace(predictor=sc, num_code_groups=G, talker=SimpleNamespace(hidden=H)))
    assert pr._frame is not None
    ff = pr._frame
    for f in range(3):
        h_prev, e0 = rng.standard_normal(H).astype(np.float32), rng.standard_normal(H).astype(np.float32)
        out = []
        for fused in (True, False):
            pr._frame = ff if fused else None
            codes, logits = np.zeros(G - 1, np.int64), np.zeros((G - 1, V), np.float32)
            pr.frame(h_prev, e0, codes, greedy, 0.9, 10, 0.95, np.random.default_rng(f), logits_out=logits)
            out.append((codes, logits))
        np.testing.assert_array_equal(out[0][0], out[1][0])
        np.testing.assert_array_equal(out[0][1], out[1][1])
        forced = (np.arange(G - 1) * 7) % V
        pr._frame = ff
        codes = np.zeros(G - 1, np.int64)
        pr.frame(h_prev, e0, codes, greedy, 0.9, 10, 0.95, np.random.default_rng(f), forced=forced)
        np.testing.assert_array_equal(codes, forced)


@pytest.mark.parametrize("dt", ["Q8_0", "Q4_0"])
def test_predictor_frame_reads_file_tables_with_pread(tmp_path, dt):
    """Embedding tables in a file mapping: the fused frame preads each next row (nothing of the
    tables becomes resident) and gives the codes and logits of the in-place read."""
    from types import SimpleNamespace

    from edgetts.models.predictor import Predictor
    from test_matmul_memory import resident_pages

    rng = np.random.default_rng(12)
    H, nh, nkv, hd, ffn, V, G = 64, 4, 2, 32, 96, 304, 5  # V rows: 60+ pages of tables
    view = make_view(rng, (dt,), H, 2, nh, nkv, hd, ffn, prefix="code_pred")
    blobs = []
    for j in range(G - 1):
        blobs.append(Matrix.from_f32((2 * rng.standard_normal((V, H))).astype(np.float32), dt).data)
        name = f"code_pred.lm_head.{j}.weight"
        view[name] = Tensor(name, dt, (V, H), Matrix.from_f32(rng.standard_normal((V, H)).astype(np.float32), dt).data)
    p = tmp_path / "embd.bin"
    with open(p, "wb") as f:
        f.write(b"\0" * 24)
        for b in blobs:
            f.write(b.tobytes())
    mm = np.memmap(p, dtype=np.uint8, mode="r")
    off = 24
    for j, b in enumerate(blobs):
        name = f"code_pred.codec_embd.{j}.weight"
        view[name] = Tensor(name, dt, (V, H), mm[off:off + b.nbytes].reshape(b.shape))
        off += b.nbytes
    sc = StackConfig(n_layers=2, hidden=H, n_heads=nh, n_kv_heads=nkv, head_dim=hd, ffn=ffn, vocab=V,
                     rope_theta=10000.0, eps=1e-6, max_pos=G)
    pr = Predictor(view, SimpleNamespace(predictor=sc, num_code_groups=G, talker=SimpleNamespace(hidden=H)))
    ff = pr._frame
    assert ff is not None and (ff["heads"].embd_fd >= 0).all()
    from edgetts.kernels.memory import release_pages
    release_pages(mm, outward=True)
    in_place = ff["heads"]._replace(embd_fd=np.full(G - 1, -1, np.int64))
    for f in range(4):
        h_prev, e0 = rng.standard_normal(H).astype(np.float32), rng.standard_normal(H).astype(np.float32)
        out = []
        for heads in (ff["heads"], in_place):
            if heads is ff["heads"]:
                assert resident_pages(mm) == 0
            pr._frame = dict(ff, heads=heads)
            codes, logits = np.zeros(G - 1, np.int64), np.zeros((G - 1, V), np.float32)
            pr.frame(h_prev, e0, codes, False, 0.9, 10, 0.95, np.random.default_rng(f), logits_out=logits)
            out.append((codes, logits))
            if heads is ff["heads"]:
                assert resident_pages(mm) == 0
            release_pages(mm, outward=True)
        np.testing.assert_array_equal(out[0][0], out[1][0])
        np.testing.assert_array_equal(out[0][1], out[1][1])


@pytest.mark.parametrize("n_threads", [1, 2, 3, 8, 11])
@pytest.mark.parametrize("n", [1, 2, 5, 8, 33])
def test_claim_gives_every_unit_once_whoever_comes(n_threads, n):
    """_claim: thread t takes its own contiguous share first, then the others'; each unit goes
    to exactly one thread, also when only some threads (or one) ever show up."""
    from edgetts.kernels import decoder as D
    rng = np.random.default_rng(n * 31 + n_threads)
    for present in ({0}, {n_threads - 1}, set(range(n_threads))):
        ctr = D.counters(1)
        D._start(ctr, n_threads)
        shares = min(n_threads, D.SHARES)
        got, active = {t: [] for t in present}, sorted(present)
        while active:   # the present threads claim in a random interleaving
            t = active[rng.integers(len(active))]
            u = D._claim(ctr, 0, n, t)
            if u < 0:
                active.remove(t)
            else:
                got[t].append(u)
        assert sorted(u for us in got.values() for u in us) == list(range(n))
    shares = min(n_threads, D.SHARES)
    if n >= shares:   # all threads in turn, no share empty: each starts at its own share's front
        ctr = D.counters(1)
        D._start(ctr, n_threads)
        assert [D._claim(ctr, 0, n, t) for t in range(shares)] == [n * t // shares for t in range(shares)]
