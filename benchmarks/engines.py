"""The engines the comparison runs, each behind `transcribe(path) -> dict`.

Every engine is built inside its own worker process (benchmarks.worker), so imports,
threads and peak memory are its own. Fields an engine cannot report are left out.
"""

from __future__ import annotations

from pathlib import Path


def dir_size_mb(paths: list[Path]) -> float:
    total = 0
    for p in paths:
        p = Path(p)
        # a bundle's own .cache (optimized graphs made at load) is not part of its size
        files = (
            [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file() and ".cache" not in f.relative_to(p).parts]
        )
        total += sum(f.stat().st_size for f in files)
    return round(total / 1e6, 1)


class EdgeALMEngine:
    def __init__(self, spec: dict) -> None:
        from edge_alm import EdgeALM

        self.model = EdgeALM.load(spec["model"], threads=spec["threads"])
        self.opts = {"window": spec.get("window", "auto"), "beam_size": spec.get("beam", 1)}
        self.size_mb = dir_size_mb([spec["model"]])

    def transcribe(self, path: str) -> dict:
        r = self.model.transcribe(path, **self.opts)
        t = r.timings
        return {
            "text": r.text,
            "encoder_ms": t["encoder_ms"],
            "decode_ms": t["decoder_ms"],
            "first_token_ms": t["first_token_ms"],
            "tokens": t["tokens"],
        }


class FasterWhisperEngine:
    def __init__(self, spec: dict) -> None:
        from faster_whisper import WhisperModel

        self.model = WhisperModel(
            spec["model"], device="cpu", compute_type=spec["precision"], cpu_threads=spec["threads"]
        )
        self.beam = spec.get("beam", 1)
        self.size_mb = dir_size_mb([Path(spec["model"]) / "model.bin"])

    def transcribe(self, path: str) -> dict:
        segments, _ = self.model.transcribe(path, beam_size=self.beam, language="en")
        segs = list(segments)
        return {"text": "".join(s.text for s in segs).strip(), "tokens": sum(len(s.tokens) for s in segs)}


class WhisperCppEngine:
    """whisper.cpp through PyPI pywhispercpp, on whisper-base converted by export/ggml_whisper.py."""

    def __init__(self, spec: dict) -> None:
        from pywhispercpp.model import Model

        params = {"print_progress": False, "print_realtime": False, "language": "en"}
        if spec.get("beam", 1) > 1:
            params |= {"params_sampling_strategy": 1, "beam_search": {"beam_size": spec["beam"], "patience": -1.0}}
        self.model = Model(spec["model"], n_threads=spec["threads"], redirect_whispercpp_logs_to=None, **params)
        self.size_mb = dir_size_mb([Path(spec["model"])])

    def transcribe(self, path: str) -> dict:
        from edge_alm.audio import load_audio

        segs = self.model.transcribe(load_audio(path))
        return {"text": "".join(s.text for s in segs).strip()}


class _HFBase:
    """Shared by the transformers and optimum engines: 30 s features, Whisper generate."""

    def _setup(self, spec: dict) -> None:
        from tokenizers import Tokenizer
        from transformers import WhisperFeatureExtractor

        self.fe = WhisperFeatureExtractor()
        self.tok = Tokenizer.from_file(str(Path(spec["hf"]) / "tokenizer.json"))

    def _features(self, path: str):
        from edge_alm.audio import load_audio

        x = load_audio(path)
        return self.fe(x, sampling_rate=16000, return_tensors="pt").input_features

    def _result(self, ids) -> dict:
        ids = [int(i) for i in ids if int(i) < 50257]
        return {"text": self.tok.decode(ids).strip(), "tokens": len(ids)}


class TransformersEngine(_HFBase):
    def __init__(self, spec: dict) -> None:
        import torch
        from transformers import WhisperForConditionalGeneration

        torch.set_num_threads(spec["threads"])
        self.torch = torch
        self.model = WhisperForConditionalGeneration.from_pretrained(spec["hf"]).eval()
        self.beam = spec.get("beam", 1)
        self.size_mb = dir_size_mb([Path(spec["hf"]) / "model.safetensors"])
        self._setup(spec)

    def transcribe(self, path: str) -> dict:
        feats = self._features(path)
        with self.torch.no_grad():
            out = self.model.generate(feats, language="en", task="transcribe", num_beams=self.beam)
        return self._result(out[0].tolist())


class OptimumEngine(_HFBase):
    def __init__(self, spec: dict) -> None:
        import onnxruntime as ort
        from optimum.onnxruntime import ORTModelForSpeechSeq2Seq

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = spec["threads"]
        opts.inter_op_num_threads = 1
        self.model = ORTModelForSpeechSeq2Seq.from_pretrained(spec["model"], session_options=opts, use_cache=True)
        self.beam = spec.get("beam", 1)
        self.size_mb = dir_size_mb([Path(spec["model"])])
        self._setup(spec)

    def transcribe(self, path: str) -> dict:
        feats = self._features(path)
        out = self.model.generate(feats, language="en", task="transcribe", num_beams=self.beam)
        return self._result(out[0].tolist())


ENGINES = {
    "edge-alm": EdgeALMEngine,
    "faster-whisper": FasterWhisperEngine,
    "transformers": TransformersEngine,
    "optimum": OptimumEngine,
    "whisper.cpp": WhisperCppEngine,
}


def make_engine(spec: dict):
    return ENGINES[spec["kind"]](spec)
