"""The runtime loads a bundle and transcribes with torch and transformers unimportable."""

import subprocess
import sys

SCRIPT = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'transformers', 'optimum'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import numpy as np
from edge_alm import EdgeALM
m = EdgeALM.load(sys.argv[1], threads=1)
r = m.transcribe((np.random.default_rng(0).standard_normal(32000).astype('float32') * 0.1, 16000))
assert isinstance(r.text, str)
bad = [k for k in sys.modules if k.split('.')[0] in ('torch', 'transformers') or k.startswith('edge_alm.export')]
assert not bad, bad
print('ok', r.timings['windows'])
"""


def test_runtime_without_torch(tiny_bundle):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_bundle)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")


ALM_SCRIPT = (
    SCRIPT.split("m = EdgeALM.load")[0]
    + """
m = EdgeALM.load(sys.argv[1], threads=1)
clip = (np.random.default_rng(0).standard_normal(32000).astype('float32') * 0.1, 16000)
chat = m.chat(clip)
a = chat.ask('What do you hear?', max_new_tokens=4)
b = chat.ask('Anything else?', max_new_tokens=4)
assert len(a.tokens) == 4 and len(b.tokens) == 4 and b.timings['encode_ms'] == 0.0
bad = [k for k in sys.modules if k.split('.')[0] in ('torch', 'transformers') or k.startswith('edge_alm.export')]
assert not bad, bad
print('ok', a.tokens)
"""
)


def test_alm_runtime_without_torch(tiny_alm):
    proc = subprocess.run([sys.executable, "-c", ALM_SCRIPT, str(tiny_alm[1])], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")


def test_importing_a_runtime_module_loads_nothing_else():
    code = "import sys, edge_alm.runtime.kv_cache; print(sorted(k for k in sys.modules if k.startswith('edge_alm')))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "['edge_alm', 'edge_alm.runtime', 'edge_alm.runtime.kv_cache']", proc.stderr


def test_blocker_really_blocks():
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.split("import numpy")[0] + "import torch"], capture_output=True, text=True
    )
    assert proc.returncode != 0 and "blocked: torch" in proc.stderr


BENCH_SCRIPT = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'transformers', 'optimum', 'jiwer', 'whisper_normalizer', 'matplotlib'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
from edge_alm.cli import main
sys.exit(main(['bench', sys.argv[1], '--threads', '1', '--out', sys.argv[2]]))
"""


def test_bench_on_a_device_install(tiny_bundle, tmp_path):
    """What a board has (no torch, no jiwer, no matplotlib): bench with no --clips still reports."""
    proc = subprocess.run(
        [sys.executable, "-c", BENCH_SCRIPT, str(tiny_bundle), str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "| threads |" in proc.stdout and len(list(tmp_path.glob("bench-*.md"))) == 1
