"""`edgetts say [TEXT...]`: speak text through the default output device, or write it out.

    edgetts say "Hello there."                          # plays while it is generated
    echo "One line. Another." | edgetts say             # stdin, line by line, one model load
    edgetts say -o hello.wav "Hello."                    # .wav / .flac / .ogg by extension
    edgetts say --output-raw "Hi" | aplay -r 24000 -f S16_LE -c 1 -t raw -
    edgetts say -m ./Qwen3-TTS-12Hz-0.6B-CustomVoice --speaker ryan --language english "Hi"
    edgetts say --voice me.safetensors "Hi"              # a cloned voice (edgetts clone), Base model
    edgetts say --ref-audio me.wav --ref-text "What me.wav says." "Hi"   # one-shot cloning

-m takes a local checkpoint folder, a GGUF file/folder, or a Hugging Face id (downloaded once and
converted to GGUF --qtype on first use; see edgetts.hub).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

from .errors import EdgeTTSError
from .models.codec_precision import PRECISIONS


def add_parser(subparsers) -> argparse.ArgumentParser:
    from quantize.plan import QTYPES

    from .clone import BASE_MODEL, add_ref_text_args
    from .hub import DEFAULT_MODEL
    from .streaming import JOIN_SILENCE

    p = subparsers.add_parser("say", help="speak text (plays it, or writes a file / raw PCM)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("text", nargs="*", metavar="TEXT", help="text to speak (default: stdin, line by line)")
    p.add_argument("-m", "--model",
                   help=f"checkpoint folder, GGUF file/folder, or hub id (default: {DEFAULT_MODEL}; "
                        f"with --voice / --ref-audio: {BASE_MODEL})")
    p.add_argument("--qtype", default="q8_0", type=str.lower, choices=QTYPES,
                   help="weight type when a hub model is converted on first use (default: q8_0)")
    p.add_argument("-o", "--output-file", "--output_file", metavar="PATH",
                   help="write audio to PATH (.wav, .flac or .ogg) instead of playing it")
    p.add_argument("--output-raw", "--output_raw", action="store_true",
                   help="write raw s16le mono PCM at the model rate (24 kHz) to stdout")
    p.add_argument("--speaker", help="speaker name (see --list-speakers)")
    p.add_argument("--language", default="auto", help="language name, or auto (default)")
    p.add_argument("--instruct", help="style instruction (VoiceDesign and 1.7B CustomVoice models)")
    p.add_argument("--list-speakers", action="store_true", help="print the model's speakers and exit")
    v = p.add_mutually_exclusive_group()
    v.add_argument("--voice", metavar="VOICE.safetensors", help="speak in a cloned voice (see edgetts clone)")
    v.add_argument("--ref-audio", metavar="REF.wav",
                   help="clone the voice of this recording for this run (Base models)")
    add_ref_text_args(p)
    p.add_argument("--seed", type=int, help="random seed (reproducible output)")
    p.add_argument("--greedy", action="store_true", help="deterministic decoding, no sampling")
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--repetition-penalty", type=float)
    p.add_argument("--threads", type=int, help="worker threads for the kernels")
    p.add_argument("--codec-precision", default="auto", choices=PRECISIONS,
                   help="codec products: auto (AMX bf16x3 where the CPU has it and measured safe), "
                        "f32 (exact), bf16x3 / int8 / bf16 (everywhere; int8 and bf16 less exact)")
    p.add_argument("--sentence-silence", type=float, default=JOIN_SILENCE, metavar="SECONDS",
                   help=f"silence between sentence chunks and input lines (default: {JOIN_SILENCE})")
    p.add_argument("--no-normalize", action="store_true",
                   help="speak numbers, currency and dates as written (no spelling out)")
    p.add_argument("--stuck-stop", type=float, default=None, metavar="SECONDS",
                   help="end a sentence whose speech repeats itself or stays silent this long "
                        "(a stuck model; default 4, 0 = never)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print real-time factor and time to first audio to stderr")
    # for tests and power users: force the number of frames (80 ms each)
    p.add_argument("--max-frames", type=int, help=argparse.SUPPRESS)
    p.add_argument("--min-frames", type=int, help=argparse.SUPPRESS)
    p.set_defaults(func=run)
    return p


def _log(msg: str) -> None:
    print(f"edgetts: {msg}", file=sys.stderr, flush=True)


def _texts(args):
    """The utterances: the joined arguments, or stdin's non-empty lines as they arrive."""
    if args.text:
        text = " ".join(args.text)
        if not text.strip():
            raise EdgeTTSError("empty text: nothing to say")
        yield text
        return
    if sys.stdin is None:
        raise EdgeTTSError("no text: pass TEXT or pipe lines on stdin")
    if sys.stdin.isatty():
        _log("reading text from stdin, one utterance per line (Ctrl-D to end)")
    any_line = False
    for line in sys.stdin:
        if line.strip():
            any_line = True
            yield line.strip()
    if not any_line:
        raise EdgeTTSError("empty text on stdin: nothing to say")


def _load(args):
    from . import hub
    from .tts import load

    path = hub.resolve(args.model, qtype=args.qtype, progress=sys.stderr.isatty())
    return load(path, threads=args.threads, codec_precision=args.codec_precision)


def _cloning_args(args):
    """Check --voice / --ref-audio / --ref-text* before the model load; returns (Voice or None, transcript)."""
    from .clone import BASE_MODEL, ref_text

    cloning = bool(args.voice or args.ref_audio)
    if args.model is None:
        from .hub import DEFAULT_MODEL
        args.model = BASE_MODEL if cloning else DEFAULT_MODEL
    text = ref_text(args)
    if text is not None and not args.ref_audio:
        raise EdgeTTSError("--ref-text / --ref-text-file go with --ref-audio (a voice file has its transcript)")
    if cloning and args.speaker is not None:
        raise EdgeTTSError("--speaker names a built-in voice; drop it when cloning (--voice / --ref-audio)")
    voice = None
    if args.voice:
        from .voice import Voice
        voice = Voice.load(args.voice)
    elif args.ref_audio:
        import warnings as _w
        from .voice import read_audio, reference_audio
        with _w.catch_warnings():
            _w.simplefilter("ignore")          # the trim warning comes once, from clone_voice
            reference_audio(*read_audio(args.ref_audio))
    return voice, text


def _clone(tts, args, voice, text):
    """The Voice to speak with: the loaded file (checked against the model) or a fresh clone."""
    if voice is not None:
        voice.check_model(tts)
        return voice
    if args.ref_audio:
        return tts.clone_voice(args.ref_audio, ref_text=text)
    if tts.model_type == "base":
        raise EdgeTTSError("a Base model speaks in a cloned voice: give --voice VOICE.safetensors "
                           "(see edgetts clone) or --ref-audio REF.wav")
    return None


def _check_voice(tts, args) -> None:
    if args.language and args.language.lower() not in [l.lower() for l in tts.languages]:
        raise EdgeTTSError(f"unknown language {args.language!r}; choose one of: {', '.join(tts.languages)}")
    if args.speaker is not None and tts.speakers and args.speaker.lower() not in [s.lower() for s in tts.speakers]:
        raise EdgeTTSError(f"unknown speaker {args.speaker!r}; choose one of: {', '.join(tts.speakers)}")
    if args.speaker is not None and not tts.speakers:
        raise EdgeTTSError(f"this model ({tts.model_type}) has no named speakers; drop --speaker")


def _options(args) -> dict:
    kw = {"language": args.language}
    for name in ("speaker", "instruct", "seed", "temperature", "top_k", "top_p", "repetition_penalty",
                 "max_frames", "min_frames"):
        v = getattr(args, name)
        if v is not None:
            kw[name] = v
    if args.greedy:
        kw["greedy"] = True
    return kw


def _one_line_warnings() -> None:
    from .pipeline import StopWarning

    warnings.formatwarning = lambda msg, *a, **k: f"edgetts: warning: {msg}\n"
    warnings.simplefilter("always", StopWarning)   # one line per cut sentence, not once per run


def run(args) -> int:
    from .audio import AudioFileWriter, RawWriter, check_output_path

    _one_line_warnings()
    if args.output_file:
        check_output_path(args.output_file)   # fail before the (slow) model load
    if args.output_raw and sys.stdout.isatty():
        raise EdgeTTSError("--output-raw writes binary audio; pipe it, e.g. | aplay -r 24000 -f S16_LE -c 1 -t raw -")
    if args.sentence_silence < 0:
        raise EdgeTTSError("--sentence-silence must be >= 0")
    voice, ref_text = _cloning_args(args)
    if args.stuck_stop is not None and not args.stuck_stop >= 0:
        raise EdgeTTSError("--stuck-stop must be >= 0 (0 turns the check off)")
    texts = None if args.list_speakers else _texts(args)
    if texts is not None and (args.text or sys.stdin is None or not sys.stdin.isatty()):
        import itertools                      # fail on empty input before the model load
        texts = itertools.chain([next(texts)], texts)

    t0 = time.perf_counter()
    tts = _load(args)
    if args.verbose:
        _log(f"loaded {args.model} ({tts.model_type}) in {time.perf_counter() - t0:.2f} s")
    if args.list_speakers:
        if tts.speakers:
            print("\n".join(tts.speakers))
        else:
            _log(f"this model ({tts.model_type}) has no named speakers")
        return 0
    _check_voice(tts, args)
    kw = _options(args)
    voice = _clone(tts, args, voice, ref_text)
    if voice is not None:
        kw["voice"] = voice
    if args.stuck_stop is not None:
        from .pipeline import StopGuard
        kw["stop_guard"] = StopGuard(seconds=args.stuck_stop)

    sinks = []
    player = None
    try:
        if args.output_file:
            sinks.append(AudioFileWriter(args.output_file, tts.sample_rate))
        if args.output_raw:
            sinks.append(RawWriter())
        if not sinks:
            from .audio import Player
            player = Player(tts.sample_rate)
            sinks.append(player)
        _speak(tts, texts, kw, sinks, args, t_start=t0)
        for s in sinks:
            if hasattr(s, "commit"):
                s.commit()
            elif hasattr(s, "drain"):
                s.drain()                     # plays the tail; Ctrl-C here still aborts below
    except BrokenPipeError:                   # `| head`, aplay quit: stop quietly
        _abort(sinks)
        try:                                  # no "Exception ignored" when Python flushes stdout at exit
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141
    except BaseException:
        _abort(sinks)
        raise
    if player is not None and args.verbose:
        _log(f"playback: {player.underruns} underrun(s), "
             f"{player.underrun_samples / tts.sample_rate:.2f} s of gap")
    return 0


def _abort(sinks) -> None:
    for s in sinks:
        if hasattr(s, "abort"):
            s.abort()
        elif hasattr(s, "close"):
            s.close()


def _speak(tts, texts, kw, sinks, args, t_start) -> None:
    from .streaming import stream

    silence = None
    for i, text in enumerate(texts):
        if i and args.sentence_silence:       # gap between input lines
            import numpy as np
            if silence is None:
                silence = np.zeros(int(round(args.sentence_silence * tts.sample_rate)), np.float32)
            for s in sinks:
                s.write(silence)
        s_ = stream(tts, text, normalize=not args.no_normalize, join_silence=args.sentence_silence, **kw)
        try:
            for chunk in s_:
                for s in sinks:
                    s.write(chunk)
        except BaseException:
            _abort(sinks)     # silence first (Ctrl-C), then wait for the model's current frame
            raise
        finally:
            s_.close()
        t = s_.timings
        if args.verbose:
            first = f"{t['ttfa_s'] * 1000:.0f} ms" if t["ttfa_s"] is not None else "-"
            rtf = f"{t['rtf']:.2f}" if t["rtf"] is not None else "-"
            extra = f", {time.perf_counter() - t_start:.2f} s since start" if i == 0 else ""
            _log(f"{t['speech_s']:.2f} s of audio ({t['frames']} frames, {t['chunks']} chunk(s)) "
                 f"in {t['wall_s']:.2f} s: RTF {rtf}, first audio after {first}{extra}")
