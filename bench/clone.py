"""Voice-cloning speed: seconds to clone a reference (x-vector + reference codes), full size.

    python bench/clone.py [--model DIR] [--threads 2] [--seconds 10] [--repeat 3] [--no-official]

--model: a full-size Base checkpoint in Hugging Face layout (default /tmp/bench-models/base06-hf,
made with bench/make_random_model.py --variant base when missing; random weights time the same).
The reference is espeak-ng speech at 22.05 kHz (a synthetic signal when espeak-ng is absent),
repeated to --seconds, so both implementations also resample it to 24 kHz.

Each side runs in its own process (so peak RSS is its own):
  ours      edgetts.models.speaker.SpeakerEncoder + edgetts.models.encoder.CodecEncoder, the
            path TTS.clone_voice takes (read + check + soxr resample + log-mel/ECAPA + encode);
  official  qwen-tts 0.1.1 in the torch venv (--refenv): librosa.resample + mel_spectrogram +
            Qwen3TTSSpeakerEncoder, and Qwen3TTSTokenizerV2Model.encode, as create_voice_clone_prompt.
Reported: the first clone (weights loaded, JIT caches warm) and the best of --repeat warm clones
(whole clone, and embedding / codes each at their best); peak RSS added by loading the encoders and cloning (VmHWM after
minus VmRSS before); and the parity of the two outputs (x-vector relative error, identical codes).
Prints JSON, with the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent
DEFAULT_MODEL = Path("/tmp/bench-models/base06-hf")
REFENV = Path("/work/refenv/bin/python")
PASSAGE = ("The north wind and the sun were disputing which was the stronger, when a traveler came "
           "along wrapped in a warm cloak. They agreed that the one who first succeeded in making the "
           "traveler take his cloak off should be considered stronger than the other.")


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> None:
    try:  # Linux >= 4.0: "5" resets VmHWM to the current RSS
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def make_reference(path: Path, seconds: float) -> dict:
    import soundfile as sf

    sr = 22050
    if shutil.which("espeak-ng"):
        raw = path.with_suffix(".raw.wav")
        subprocess.run(["espeak-ng", "-w", str(raw), PASSAGE], check=True, capture_output=True)
        a, sr = sf.read(raw, dtype="float32")
        src = "espeak-ng"
    else:
        t = np.arange(int(seconds * sr)) / sr
        a = (0.3 * np.sin(2 * np.pi * 150 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
        src = "synthetic (espeak-ng not installed)"
    n = int(seconds * sr)
    a = np.tile(a, n // a.size + 1)[:n]
    sf.write(path, a, sr, subtype="PCM_16")
    return {"source": src, "sample_rate": sr, "seconds": n / sr}


def ensure_model(path: Path) -> None:
    if (path / "model.safetensors").is_file() and (path / "speech_tokenizer" / "model.safetensors").is_file():
        return
    lock = path.parent / f".lock-{path.name}"
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            lock.mkdir()
            break
        except FileExistsError:        # someone else is making it
            time.sleep(5)
            if (path / "model.safetensors").is_file():
                return
    try:
        if not (path / "model.safetensors").is_file():
            subprocess.run([sys.executable, str(_HERE / "make_random_model.py"), str(path), "--size", "0.6b",
                            "--variant", "base", "--dtype", "bf16"], check=True, stdout=sys.stderr)
    finally:
        lock.rmdir()


# ------------------------------------------------------------------------------ workers
def worker_ours(model: str, wav: str, threads: int, repeat: int, out_npz: str) -> dict:
    sys.path.insert(0, str(_ROOT))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import numba

    import edgetts  # noqa: F401  (threading layer setup)
    from edgetts import weights
    from edgetts.models.encoder import CodecEncoder
    from edgetts.models.speaker import SpeakerEncoder
    from edgetts.voice import read_audio, reference_audio, resample

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    rss0 = _status("VmRSS")
    _reset_peak()
    t0 = time.perf_counter()
    ck = weights.open(model)
    spk = SpeakerEncoder.load(ck)
    enc = CodecEncoder.load(ck, threads)
    load_s = time.perf_counter() - t0

    def clone():
        t = time.perf_counter()
        y, sr = reference_audio(*read_audio(wav), min_seconds=spk.cfg.min_samples / spk.sample_rate)
        x = spk.embed(resample(y, sr, spk.sample_rate))
        t1 = time.perf_counter()
        c = enc.encode(resample(y, sr, enc.sample_rate))
        t2 = time.perf_counter()
        return x, np.asarray(c), t1 - t, t2 - t1

    x, codes, e1, c1 = clone()
    runs = [clone()[2:] for _ in range(repeat)]
    peak = _status("VmHWM")
    np.savez(out_npz, xvector=x, codes=codes)
    return {"load_encoders_s": load_s, "first_clone_s": e1 + c1, "first_embedding_s": e1, "first_codes_s": c1,
            "best_clone_s": min(map(sum, runs)), "best_embedding_s": min(r[0] for r in runs),
            "best_codes_s": min(r[1] for r in runs), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "peak_rss_added_mb": (peak - rss0) / 2 ** 20, "rss_before_mb": rss0 / 2 ** 20,
            "codes_shape": list(codes.shape)}


OFFICIAL_WORKER = r'''
import json, sys, time
sys.path.insert(0, sys.argv[1])          # tests/fixtures: qwen_ref stubs torchaudio
import qwen_ref  # noqa: F401
import numpy as np, torch, librosa, soundfile as sf
from safetensors import safe_open
from qwen_tts.core.models.configuration_qwen3_tts import Qwen3TTSSpeakerEncoderConfig
from qwen_tts.core.models.modeling_qwen3_tts import Qwen3TTSSpeakerEncoder, mel_spectrogram
from qwen_tts.core import Qwen3TTSTokenizerV2Model
model, wav, threads, repeat, out = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
torch.set_num_threads(threads)
def status(k):
    for line in open("/proc/self/status"):
        if line.startswith(k + ":"):
            return int(line.split()[1]) * 1024
rss0 = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")
t0 = time.perf_counter()
cfg = json.load(open(model + "/config.json"))
spk = Qwen3TTSSpeakerEncoder(Qwen3TTSSpeakerEncoderConfig(**cfg["speaker_encoder_config"])).eval()
sd = {}
with safe_open(model + "/model.safetensors", "pt") as f:
    for k in f.keys():
        if k.startswith("speaker_encoder."):
            sd[k[len("speaker_encoder."):]] = f.get_tensor(k).float()
spk.load_state_dict(sd)
tok = Qwen3TTSTokenizerV2Model.from_pretrained(model + "/speech_tokenizer").eval().float()
load_s = time.perf_counter() - t0
def clone():
    t = time.perf_counter()
    a, sr = librosa.load(wav, sr=None, mono=True)          # as Qwen3TTSModel._load_audio_to_np
    with torch.inference_mode():
        a24 = librosa.resample(y=a.astype(np.float32), orig_sr=sr, target_sr=24000)
        mels = mel_spectrogram(torch.from_numpy(a24).unsqueeze(0), n_fft=1024, num_mels=128, sampling_rate=24000,
                               hop_size=256, win_size=1024, fmin=0, fmax=12000).transpose(1, 2)
        x = spk(mels)[0]
        t1 = time.perf_counter()
        a24 = librosa.resample(y=a.astype(np.float32), orig_sr=sr, target_sr=24000)
        c = tok.encode(torch.from_numpy(a24)[None], torch.ones(1, a24.size, dtype=torch.long)).audio_codes[0]
        t2 = time.perf_counter()
    return x.numpy(), c.numpy(), t1 - t, t2 - t1
x, codes, e1, c1 = clone()
runs = [clone()[2:] for _ in range(repeat)]
np.savez(out, xvector=x, codes=codes)
print(json.dumps({"load_encoders_s": load_s, "first_clone_s": e1 + c1, "first_embedding_s": e1,
                  "first_codes_s": c1, "best_clone_s": min(map(sum, runs)),
                  "best_embedding_s": min(r[0] for r in runs), "best_codes_s": min(r[1] for r in runs),
                  "peak_rss_added_mb": (status("VmHWM") - rss0) / 2 ** 20,
                  "note": "the official tokenizer class also builds its decoder (in the RSS, not the times)",
                  "torch": torch.__version__}))
'''


def run_official(model: Path, wav: Path, threads: int, repeat: int, out_npz: Path) -> dict:
    if not REFENV.is_file():
        return {"skipped": f"{REFENV} not found (the torch reference venv)"}
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")
    r = subprocess.run([str(REFENV), "-c", OFFICIAL_WORKER, str(_ROOT / "tests" / "fixtures"), str(model), str(wav),
                        str(threads), str(repeat), str(out_npz)], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return {"failed": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-official", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:  # --worker WAV:NPZ  (a child process of main)
        wav, npz = a.worker.split(":")
        print(json.dumps(worker_ours(str(a.model), wav, a.threads, a.repeat, npz)))
        return

    from _common import json_out, run_info

    if a.model == DEFAULT_MODEL:
        ensure_model(a.model)
    out = {"bench": "clone", "model": str(a.model), "threads": a.threads, "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="edgetts-clone-bench-") as tmp:
        tmp = Path(tmp)
        wav = tmp / "ref.wav"
        out["reference"] = make_reference(wav, a.seconds)
        # the library's own wait policy (PASSIVE), not _common's spinning one: spinning numba
        # workers left over from the encode would steal the cores from the next embedding's BLAS
        env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("EDGETTS_BENCH_OMP_WAIT_POLICY", "PASSIVE"))
        r = subprocess.run([sys.executable, __file__, "--model", str(a.model), "--threads", str(a.threads),
                            "--repeat", str(a.repeat), "--worker", f"{wav}:{tmp / 'ours.npz'}"],
                           capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise SystemExit(r.stderr)
        out["edgetts"] = json.loads(r.stdout.strip().splitlines()[-1])
        if not a.no_official:
            out["official"] = run_official(a.model, wav, a.threads, a.repeat, tmp / "official.npz")
            if (tmp / "official.npz").is_file():
                o, e = np.load(tmp / "official.npz"), np.load(tmp / "ours.npz")
                xo, xe = o["xvector"].astype(np.float64), e["xvector"].astype(np.float64)
                out["parity"] = {"xvector_max_rel": float(np.abs(xe - xo).max() / np.abs(xo).max()),
                                 "codes_identical": bool(np.array_equal(o["codes"], e["codes"])),
                                 "codes_equal_fraction": float((o["codes"] == e["codes"]).mean())
                                 if o["codes"].shape == e["codes"].shape else 0.0}
                ob, eb = out["official"]["best_clone_s"], out["edgetts"]["best_clone_s"]
                out["speedup_best"] = ob / eb
    out["load_after"] = os.getloadavg()
    out["run_info"] = run_info()
    json_out(out)


if __name__ == "__main__":
    main()
