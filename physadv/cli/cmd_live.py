"""``physadv live``: live top-5 and per-cell predictions from a webcam, stream or video file."""

from __future__ import annotations

import argparse

from physadv.cli.common import add_model_options, classifier_from_args, output_dir

ORDER = 60
HELP = "live webcam view: top-5 of the frame and, for a printed sheet in view, every cell's prediction"


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("examples:\n"
                     "  physadv live --camera 0 --manifest sheets/manifest.json --model digits\n"
                     "  physadv live --camera clip.mp4 --manifest sheets/manifest.json --headless --out live/\n"
                     "  physadv live --camera 0 --target toaster   # a printed patch in a real scene: target's probability\n"
                     "keys: f or space freeze, s save the frame, q or Esc quit.\n"
                     "the window is OpenCV's when its build has a GUI, else a Tk window; without a display,\n"
                     "use --headless --out DIR.")
    parser.add_argument("--camera", default="0", metavar="0|URL|FILE", help="camera index, stream URL or video file")
    parser.add_argument("--manifest", metavar="PATH", default=None,
                        help="the run's manifest.json: outline, check and classify its cells when a sheet is in view "
                             "(its attack folder must be there: every crop is checked against its source image)")
    add_model_options(parser)
    parser.add_argument("--headless", action="store_true",
                        help="no window: write OUT/live.mp4 (annotated) and OUT/live.json")
    parser.add_argument("--out", metavar="DIR", type=output_dir, default=None, help="where annotated/saved frames go")
    parser.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    parser.add_argument("--target", metavar="CLASS",
                        help="show this class's probability on each frame and its hit rate (top-1 = CLASS): a "
                             "printed adversarial patch in a real scene (name, WordNet id or index)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from physadv.capture.live import open_window, run_live, target_summary
    from physadv.capture.pipeline import cell_sources
    from physadv.printouts.manifest import read_manifest

    manifest = read_manifest(args.manifest) if args.manifest else None
    # Every crop shown is checked against its source, as capture checks it.
    sources = cell_sources(manifest, Path(args.manifest).parent) if manifest is not None else None
    # The window first: where none can open, say so before the model loads.
    window = None if args.headless else open_window()
    try:
        classifier = classifier_from_args(args)
        target = classifier.labels.target(args.target)
    except BaseException:
        if window is not None:
            window.close()
        raise
    reports = run_live(args.camera, classifier, manifest, headless=args.headless, out=args.out,
                       max_frames=args.max_frames, sources=sources, window=window, target=target)
    seen = sum(1 for report in reports if report.pages)
    print(f"{len(reports)} frames, a sheet in view in {seen}" + (f"; written to {args.out}" if args.headless else ""))
    if target is not None:
        summary = target_summary(reports, classifier.labels.name(target))
        print(f"target {summary['name']}: top-1 in {summary['hits']} of {summary['frames']} frames, mean probability "
              f"{summary['mean_probability']:.3f}")
    return 0
