"""ONNX Runtime session wrapper: providers, threads, I/O names, optimized-graph cache."""

from __future__ import annotations

import ctypes
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from edge_alm.runtime.errors import BundleError
from edge_alm.runtime.manifest import sha256_file


@dataclass(frozen=True)
class SessionConfig:
    threads: int = 0  # intra-op threads; 0 lets onnxruntime pick (all cores)
    providers: tuple[str, ...] = ("CPUExecutionProvider",)  # onnxruntime execution providers
    cache_optimized: bool = True  # save the optimized graph next to the bundle on first load
    spinning: bool = False  # busy-wait between ops; off avoids slowdowns on busy 2-core boards
    verify_cache: bool = True  # check the optimized-graph cache file's own sha256 before trusting it
    # onnxruntime's CPU memory arena: "shared" (one for the process's sessions, see shared_arena),
    # "own" (this session's, kept at its high-water mark for the process's life) or "off" (malloc)
    arena: str = "shared"


_shared_arena_ready = False


def shared_arena() -> None:
    """Register one CPU arena allocator with onnxruntime's environment, once per process, for
    every session to draw from (`session.use_env_allocators`). The encoder's activations, freed
    after it runs, then serve the decoder's steps instead of each session keeping its own
    high-water mark. Measured peak RSS, whisper-base int8, 2 threads, in one process each (per-session
    arenas for the decoder and VAD, none for the encoder, before -> shared): 7 s clip 252 -> 241 MB,
    16 s 284 -> 248, 29 s 325 -> 277, a 10-minute file 367 -> 333, 20 short clips 278 -> 282.
    Without an arena the encoder peaked higher (malloc's heap fragments), and a per-session arena
    kept a 30 s window's activations for the process's life. Audio-language models keep the
    older split (see AlmModel): there the shared arena cost a 7 s question 25 MB."""
    global _shared_arena_ready
    if _shared_arena_ready:
        return
    info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
    ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))  # onnxruntime's defaults
    _shared_arena_ready = True


def release_free_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc's malloc_trim; elsewhere nothing).
    Building sessions frees the parsed graphs' buffers, which glibc keeps: whisper-base int8
    held 236 MB after loading, 215 MB after this."""
    try:
        trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    except (OSError, TypeError):  # no C library handle to ask (Windows)
        return
    if trim is not None:
        trim(0)


def _optimized_path(graph: Path, sha256: str) -> Path:
    tag = f"{sha256[:12]}.ort{ort.__version__}"
    return graph.parent / ".cache" / f"{graph.stem}.{tag}.optimized.onnx"


def _sidecar(cached: Path) -> Path:
    return cached.with_suffix(".json")


def _source_stamp(graph: Path, sha256: str) -> dict:
    st = graph.stat()
    return {
        "source_sha256": sha256,
        "source_size": st.st_size,
        "source_mtime_ns": st.st_mtime_ns,
        "ort": ort.__version__,
    }


def _write_sidecar(graph: Path, sha256: str, cached: Path) -> None:
    stamp = {**_source_stamp(graph, sha256), "cache_sha256": sha256_file(cached), "cache_size": cached.stat().st_size}
    _sidecar(cached).write_text(json.dumps(stamp))


def _cache_is_valid(graph: Path, sha256: str, cached: Path, verify: bool) -> bool:
    """The cache was written from this very graph file (same checksum, size and time) by this
    onnxruntime, and is itself intact (its own size, and with `verify` its sha256)."""
    try:
        stamp = json.loads(_sidecar(cached).read_text())
        if {k: stamp.get(k) for k in _source_stamp(graph, sha256)} != _source_stamp(graph, sha256):
            return False
        if stamp.get("cache_size") != cached.stat().st_size:
            return False
        return not verify or stamp.get("cache_sha256") == sha256_file(cached)
    except (OSError, ValueError):
        return False


class GraphSession:
    """One ONNX graph ready to run, with its input and output names."""

    def __init__(self, graph: Path, sha256: str, config: SessionConfig) -> None:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # the optimized-graph cache is per machine by design; no warning
        opts.intra_op_num_threads = config.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if config.arena not in ("shared", "own", "off"):
            raise ValueError(f"SessionConfig.arena must be shared, own or off, got {config.arena!r}")
        opts.enable_cpu_mem_arena = config.arena != "off"
        if config.arena == "shared":
            shared_arena()
            opts.add_session_config_entry("session.use_env_allocators", "1")
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if config.spinning else "0")
        cached = _optimized_path(graph, sha256)
        self.session = None
        if config.cache_optimized and _cache_is_valid(graph, sha256, cached, config.verify_cache):
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # already optimized
            try:
                self.session = ort.InferenceSession(str(cached), opts, providers=list(config.providers))
            except Exception:  # a damaged cache is rebuilt from the graph below
                self.session = None
        if self.session is None:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            writable = config.cache_optimized and os.access(graph.parent, os.W_OK)
            if writable:
                cached.parent.mkdir(exist_ok=True)
                _sidecar(cached).unlink(missing_ok=True)
                opts.optimized_model_filepath = str(cached)
            try:
                self.session = ort.InferenceSession(str(graph), opts, providers=list(config.providers))
            except Exception as e:  # onnxruntime raises its own exception types
                raise BundleError(f"{graph}: onnxruntime cannot load this graph ({str(e).splitlines()[0]})") from None
            if writable and cached.is_file():
                _write_sidecar(graph, sha256, cached)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.path = graph

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self.outputs, feeds)
