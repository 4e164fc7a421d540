"""One engine in its own process: JSON spec as argv[1]; reads clip paths on stdin, writes
one JSON line per clip; an empty line ends it with a stats line (load time, peak RSS)."""

from __future__ import annotations

import json
import resource
import sys
import time


def main() -> None:
    spec = json.loads(sys.argv[1])
    t0 = time.perf_counter()
    from benchmarks.engines import make_engine

    engine = make_engine(spec)
    load_s = time.perf_counter() - t0
    print(json.dumps({"ready": True, "load_s": load_s, "size_mb": engine.size_mb}), flush=True)
    for line in sys.stdin:
        path = line.strip()
        if not path:
            break
        t = time.perf_counter()
        out = engine.transcribe(path)
        out["wall_ms"] = (time.perf_counter() - t) * 1000
        print(json.dumps(out), flush=True)
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}), flush=True)


def peak_rss_mb() -> float:
    """VmHWM: this process's own peak (ru_maxrss would include the parent's, inherited at exec)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


if __name__ == "__main__":
    main()
