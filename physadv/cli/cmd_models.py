"""``physadv models``: the built-in classifiers and whether each works offline now."""

from __future__ import annotations

import argparse

from physadv.cli.common import print_json

ORDER = 0
HELP = "list the built-in classifiers and whether each is usable offline right now"

OTHER_FORMS = {
    "timm:NAME": "any timm classifier (e.g. timm:resnet50.a1_in1k); preprocessing from its timm data config "
                 "(input size, mean/std, interpolation, crop); weights from the Hugging Face cache",
    "torchvision:NAME": "any torchvision classification model (e.g. torchvision:mobilenet_v3_large); "
                        "preprocessing and class names from its DEFAULT weights enum; weights from the torch cache",
    "FILE.py:FACTORY": "FACTORY() in your file returns physadv.classifiers.ModelBundle(model, input_size, mean, "
                       "std, labels, interpolation, crop_pct) or a dict of those keys; --weights loads into it; "
                       "only your own --model imports a file, never a model named in a manifest or run",
}
OTHER_MODELS = (
    "\nany other model, with --model:\n"
    + "".join(f"  {form:<19}{text}\n" for form, text in OTHER_FORMS.items())
    + "missing weights are downloaded into that cache unless --offline or PHYSADV_OFFLINE=1 (then the error\n"
      "names the file and where to put it); --weights FILE loads your own (weights_only), --weights random\n"
      "builds the architecture untrained; --labels FILE gives class names, one per line.")


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("examples:\n  physadv models --json\n"
                     "  physadv models --train-digits   # (re)train the digits CNN (~25 s on 2 CPU cores) and cache it")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--train-digits", action="store_true",
                        help="train the digits CNN on scikit-learn's digits now, report its held-out accuracy")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from physadv.classifiers import MODELS, availability
    from physadv.classifiers.digits import digits_split, train_digits

    if args.train_digits:
        path, accuracy = train_digits()
        print(f"digits CNN: held-out accuracy {accuracy:.4f} on {len(digits_split('test').labels)} digits; "
              f"saved {path}")
        return 0
    rows = []
    for name, spec in MODELS.items():
        usable, where = availability(name)
        rows.append({"name": name, "usable": usable, "description": spec.description, "weights": where})
    if args.json:
        print_json({"models": rows, "other_forms": OTHER_FORMS})
        return 0
    for row in rows:
        mark = "yes" if row["usable"] else "NO "
        print(f"{row['name']:<20} {mark}  {row['description']}\n{'':<25}{row['weights']}")
    print(OTHER_MODELS)
    return 0
