"""Peak memory of `palestra train make-delta` and `apply-delta`, streamed shard by shard
(--low-memory) against both models whole (--in-memory), on the bundled model and on the
~50M model of `build_bench_model.py` (built if missing). Each run is its own process, and
it reports its own peak resident memory (ru_maxrss) as it ends; the import baseline (Python,
torch, transformers) is measured the same way and shown beside.

    python benchmarks/delta_memory.py [--big /tmp/palestra-bench-50m] [--shard 20MB]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASELINE = "import torch, transformers, safetensors, palestra.train.deltas"


def peak_mib(code: str) -> tuple[float, float]:
    """(peak RSS of a fresh process running `code`, in MiB; its wall time, in s)."""
    report = "\nimport resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code + report], check=True, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    return int(done.stdout.split()[-1]) / 1024, elapsed


def perturbed_copy(base: Path, out: Path, shard: str) -> None:
    """A 'fine-tune' of base: every weight nudged, saved in shards of `shard`."""
    code = (
        "import torch; from transformers import AutoModelForCausalLM as M, AutoTokenizer as T;"
        f"m = M.from_pretrained({str(base)!r}); torch.manual_seed(0)\n"
        "with torch.no_grad():\n"
        "    [p.add_(torch.randn_like(p) * 0.01) for p in m.parameters()]\n"
        f"m.save_pretrained({str(out)!r}, max_shard_size={shard!r});"
        f"T.from_pretrained({str(base)!r}).save_pretrained({str(out)!r})"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big", default="/tmp/palestra-bench-50m")
    parser.add_argument("--shard", default="20MB", help="shard size of the tuned copies")
    args = parser.parse_args()

    from palestra.models.inspect import bundled_model_path

    big = Path(args.big)
    if not (big / "config.json").is_file():
        here = Path(__file__).parent
        subprocess.run([sys.executable, str(here / "build_bench_model.py"), "--out", str(big)])
    baseline, _ = peak_mib(BASELINE)
    print(f"import baseline: {baseline:.0f} MiB")
    print(f"{'model':<14} {'weights':>8} {'step':<12} {'mode':<10} {'peak MiB':>9} {'s':>6}")
    for label, base in (("bundled", Path(bundled_model_path())), ("~50M", big)):
        size = sum(f.stat().st_size for f in base.glob("*.safetensors")) / 2**20
        with tempfile.TemporaryDirectory() as folder:
            work = Path(folder)
            perturbed_copy(base, work / "target", args.shard)
            for mode in ("--low-memory", "--in-memory"):
                low = mode == "--low-memory"
                for step, other, out in (
                    ("make-delta", work / "target", work / f"delta{mode}"),
                    ("apply-delta", work / f"delta{mode}", work / f"rebuilt{mode}"),
                ):
                    function = step.replace("-", "_")
                    code = (
                        f"from palestra.train.deltas import {function};"
                        f"{function}({str(base)!r}, {str(other)!r}, {str(out)!r}, "
                        f"low_memory={low})"
                    )
                    peak, seconds = peak_mib(code)
                    print(
                        f"{label:<14} {size:>6.0f}MB {step:<12} {mode[2:]:<10} {peak:>9.0f} "
                        f"{seconds:>6.1f}"
                    )


if __name__ == "__main__":
    main()
