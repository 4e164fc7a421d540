"""ONNX Runtime session wrapper: providers, threads, I/O names, optimized-graph cache."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from edge_alm.runtime.errors import BundleError


@dataclass(frozen=True)
class SessionConfig:
    threads: int = 0  # intra-op threads; 0 lets onnxruntime pick (all cores)
    providers: tuple[str, ...] = ("CPUExecutionProvider",)  # onnxruntime execution providers
    cache_optimized: bool = True  # save the optimized graph next to the bundle on first load
    spinning: bool = False  # busy-wait between ops; off avoids slowdowns on busy 2-core boards


def _optimized_path(graph: Path, sha256: str) -> Path:
    tag = f"{sha256[:12]}.ort{ort.__version__}"
    return graph.parent / ".cache" / f"{graph.stem}.{tag}.optimized.onnx"


class GraphSession:
    """One ONNX graph ready to run, with its input and output names."""

    def __init__(self, graph: Path, sha256: str, config: SessionConfig) -> None:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # the optimized-graph cache is per machine by design; no warning
        opts.intra_op_num_threads = config.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if config.spinning else "0")
        path = graph
        cached = _optimized_path(graph, sha256)
        if config.cache_optimized and cached.is_file():
            # already optimized: skip the (slow) optimizer on this load
            path = cached
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        else:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if config.cache_optimized and os.access(graph.parent, os.W_OK):
                cached.parent.mkdir(exist_ok=True)
                opts.optimized_model_filepath = str(cached)
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=list(config.providers))
        except Exception as e:  # onnxruntime raises its own exception types
            raise BundleError(f"{graph}: onnxruntime cannot load this graph ({str(e).splitlines()[0]})") from None
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.path = graph

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self.outputs, feeds)
