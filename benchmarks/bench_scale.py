"""Scaling out: peak memory against the number of images, and images/s of 1 against 2 processes.

``rss``: peak RSS of ``physadv classify`` and ``physadv attack --method fgsm`` on CSV lists naming a
folder of photos (default ``../shared/data/imagenet-sample``, 500 ImageNet photos) once and
``--repeats`` times (default 1 and 10: 500 and 5,000 images), the bytes each additional image adds
(least-squares slope of peak RSS against the number of images) and what that extrapolates to at
50,000 images. Streaming keeps the peaks within 20 % of each other.

``throughput``: wall-clock images/s of ``physadv attack --method fgsm`` in 1 process and under
``torchrun`` in 2 (one PyTorch thread each, images decoded in the attacking process), and the
scaling efficiency ``(rate₂ / rate₁) / 2``; then 1 process with 2 threads, the alternative on the same cores. Start-up is included: use enough images to amortise it.

Not a test: run it by hand on a quiet machine; all runs of one call are side by side.

    python benchmarks/bench_scale.py rss --model digits --label 0 --repeats 1,4,10
    python benchmarks/bench_scale.py rss --model digits --label 0 --mmap-threshold 131072
    python benchmarks/bench_scale.py rss --model efficientnet_lite0
    python benchmarks/bench_scale.py throughput --model efficientnet_lite0 --limit 96
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample"

# Runs one physadv command and writes its peak RSS and that of its largest child (a DataLoader worker).
_MEASURED = """
import json, resource, sys
from physadv.cli.main import main
code = main(sys.argv[2:])
usage = resource.getrusage
json.dump({"code": code, "self_kib": usage(resource.RUSAGE_SELF).ru_maxrss,
           "worker_kib": usage(resource.RUSAGE_CHILDREN).ru_maxrss}, open(sys.argv[1], "w"))
"""


def write_list(folder: Path, repeat: int, path: Path) -> int:
    """A CSV list naming every image of ``folder`` ``repeat`` times (labels from the file names)."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["path", "label"])
        for _ in range(repeat):
            writer.writerows([str(file), ""] for file in files)
    return len(files) * repeat


def peak_rss(argv: list[str], scratch: Path, environment: dict[str, str]) -> dict:
    report = scratch / "rss.json"
    run = subprocess.run([sys.executable, "-c", _MEASURED, str(report), *argv], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, env={**os.environ, "TQDM_DISABLE": "1", **environment})
    if run.returncode != 0 or json.loads(report.read_text())["code"] != 0:
        raise SystemExit(f"physadv {' '.join(argv)} failed:\n{run.stderr[-2000:]}")
    return json.loads(report.read_text())


def rss(args: argparse.Namespace, scratch: Path) -> None:
    lists, counts = {}, {}
    for repeat in args.repeats:
        lists[repeat] = scratch / f"list{repeat}.csv"
        counts[repeat] = write_list(args.images, repeat, lists[repeat])
        print(f"list ×{repeat}: {counts[repeat]} images")
    model = ["--model", args.model, "--workers", str(args.workers), "--batch-size", str(args.batch_size)]
    # glibc raises its mmap threshold after freeing a large block, so later batch-sized blocks come from the
    # heap, whose freed top a small live object can pin: RSS then creeps up with the number of batches
    # without any more live data. A fixed threshold (glibc's default, 128 KiB) turns that off.
    environment = {"MALLOC_MMAP_THRESHOLD_": str(args.mmap_threshold)} if args.mmap_threshold else {}
    for verb in args.verbs.split(","):
        peaks = {}
        for repeat, path in lists.items():
            out = scratch / f"adv{repeat}"
            argv = ([verb, str(path), *model, "--json"] if verb == "classify" else
                    [verb, str(path), *model, "--method", "fgsm", "--eps", "4", "--out", str(out),
                     *(["--label", args.label] if args.label else [])])
            started = time.perf_counter()
            peaks[repeat] = peak_rss(argv, scratch, environment)
            print(f"{verb:<9} ×{repeat:<3} peak RSS {peaks[repeat]['self_kib'] / 1024:7.0f} MiB "
                  f"(largest worker {peaks[repeat]['worker_kib'] / 1024:5.0f} MiB)  "
                  f"{time.perf_counter() - started:6.1f} s", flush=True)
            shutil.rmtree(out, ignore_errors=True)
        sizes = [counts[repeat] for repeat in args.repeats]
        bytes_ = [peaks[repeat]["self_kib"] * 1024 for repeat in args.repeats]
        slope = float(np.polyfit(sizes, bytes_, 1)[0])
        ratio = bytes_[-1] / bytes_[0]
        at_50k = bytes_[0] + slope * (50_000 - sizes[0])
        print(f"{verb}: ×{args.repeats[-1]} / ×{args.repeats[0]} peak RSS = {ratio:.3f} (bar: within 1.20); "
              f"{slope:,.0f} bytes per additional image; 50,000 images → {at_50k / 2**20:,.0f} MiB", flush=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def throughput(args: argparse.Namespace, scratch: Path) -> None:
    path = scratch / "list.csv"
    write_list(args.images, 1, path)
    command = ["-m", "physadv", "attack", str(path), "--model", args.model, "--limit", str(args.limit),
               "--method", "fgsm", "--eps", "4", "--batch-size", str(args.batch_size), "--workers", "0",
               *(["--label", args.label] if args.label else [])]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    rates = {}
    for processes in (1, 2):
        launcher = [] if processes == 1 else ["-m", "torch.distributed.run", "--nproc-per-node", "2",
                                              "--master-addr", "127.0.0.1", "--master-port", str(_free_port())]
        argv = [sys.executable, *launcher, *command, "--out", str(scratch / f"out{processes}")]
        started = time.perf_counter()
        subprocess.run(argv, check=True, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
        rates[processes] = args.limit / seconds
        print(f"{processes} process(es): {args.limit} images in {seconds:6.1f} s = {rates[processes]:6.2f} images/s",
              flush=True)
    print(f"scaling efficiency (rate with 2 / rate with 1) / 2 = {rates[2] / rates[1] / 2:.2f}")
    # The single-process alternative on the same cores: one process with as many threads as ranks.
    started = time.perf_counter()
    subprocess.run([sys.executable, *command, "--out", str(scratch / "out-threads")], check=True,
                   env={**environment, "OMP_NUM_THREADS": "2"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    threaded = args.limit / (time.perf_counter() - started)
    print(f"1 process, 2 threads: {threaded:6.2f} images/s; 2 processes / this = {rates[2] / threaded:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("rss", "throughput"))
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="folder of photos")
    parser.add_argument("--model", default="digits")
    parser.add_argument("--repeats", type=lambda text: sorted({int(n) for n in text.split(",")}), default=[1, 10],
                        help="rss: how often each list names the folder, comma-separated (at least two)")
    parser.add_argument("--workers", type=int, default=2, help="rss: decoding processes")
    parser.add_argument("--verbs", default="classify,attack", help="rss: which of classify,attack to measure")
    parser.add_argument("--mmap-threshold", type=int, default=None, metavar="BYTES",
                        help="rss: run the commands with glibc's MALLOC_MMAP_THRESHOLD_ fixed at BYTES (e.g. 131072), "
                             "which shows the memory held apart from what the allocator keeps")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--limit", type=int, default=96, help="throughput: images attacked")
    parser.add_argument("--label", default=None,
                        help="class of every image, for a model without the photos' classes (digits: 0)")
    args = parser.parse_args()
    if args.what == "rss" and len(args.repeats) < 2:
        parser.error("--repeats needs at least two different counts, e.g. 1,10")
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
        (rss if args.what == "rss" else throughput)(args, Path(scratch))


if __name__ == "__main__":
    main()
