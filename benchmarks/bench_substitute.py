"""Papernot et al.'s substitute attack on the digits CNN: transfer against oracle queries (a benchmark, not a test).

The oracle is the built-in ``digits`` CNN, seen through its labels only (:class:`LabelOracle`). The
attacker's initial set S0 is the last ``--initial`` images of the built-in ``digits`` set (the held-out
split; Papernot et al. take 150 images of MNIST's test set), the rest are the evaluation images, never
shown to the oracle by the attacker. One run of ``--rounds`` rounds at the paper's defaults (λ = 0.1,
i.e. 25.5 in 0-255 units, τ = 3, 10 epochs a round) keeps the substitute of every round
(``rounds/weights-K``), so each ρ = 0 … ρ_max is measured at n·2^ρ queries; a second run uses reservoir
sampling (σ, κ). Per substitute, on the evaluation images:

- its accuracy against the true labels (Papernot et al. report this per ρ);
- the oracle's error on FGSM images crafted on the substitute at each ε (their "adversarial examples
  misclassified by the oracle"), and the transfer rate: of the images the oracle gets right, the
  fraction the attack makes it get wrong;
- the control: the oracle's error under random ±ε sign noise (seeded), and white-box FGSM on the oracle.

    python benchmarks/bench_substitute.py                 # digits, 150 initial images, ρ = 0..6, ε = 32, 64, 76.5

Prints one Markdown table (as in docs/substitute.md).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from physadv.attacks import Attack
from physadv.classifiers import load_classifier
from physadv.datasets import index_image_set, load_image_set, prepare
from physadv.experiment import run_attack_batched
from physadv.images import quantise, to_tensor
from physadv.substitute import SubstituteConfig, planned_queries
from physadv.substitute.architectures import build_substitute
from physadv.substitute.oracle import LabelOracle
from physadv.substitute.record import load_weights, weights_path
from physadv.substitute.training import train_substitute
from physadv.transfer import transfer_attack


def random_sign_noise(images: torch.Tensor, eps: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, images.shape, generator=generator).float().mul(2).sub(1)
    return quantise((images + signs * eps / 255).clamp(0, 1))


def error(oracle, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return oracle.probabilities(images).argmax(-1) != labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--initial", type=int, default=150, help="n: initial images (the paper's MNIST S0: 150)")
    parser.add_argument("--rounds", type=int, default=6, help="ρ_max")
    parser.add_argument("--eps", type=float, nargs="+", default=[32.0, 64.0, 76.5],
                        help="FGSM ε, 0-255 units (76.5 = the paper's 0.3)")
    parser.add_argument("--reservoir", type=int, nargs=2, default=[3, 400], metavar=("SIGMA", "KAPPA"))
    parser.add_argument("--out", type=Path, default=None, help="keep the substitute folders here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    oracle_model = load_classifier("digits")
    everything = index_image_set("digits", oracle_model.labels)
    initial, evaluation = everything[-args.initial:], everything[:-args.initial]
    images = prepare(load_image_set("digits", oracle_model.labels)[:-args.initial], oracle_model.image_size)
    x, y = to_tensor([i.image for i in images]), torch.tensor([i.label for i in images])
    assert [i.id for i in images] == [r.id for r in evaluation]
    clean_right = ~error(oracle_model, x, y)
    root = args.out or Path(tempfile.mkdtemp(prefix="bench-substitute-"))
    print(f"oracle: digits CNN, clean accuracy {clean_right.float().mean():.3f} on {len(y)} evaluation images; "
          f"S0: {len(initial)} images", flush=True)

    controls = []
    for eps in args.eps:
        white, _, _ = run_attack_batched(Attack("fgsm", eps), oracle_model, x, y, None, 64)
        controls.append((eps, error(oracle_model, random_sign_noise(x, eps, args.seed), y).float().mean().item(),
                         error(oracle_model, white, y).float().mean().item()))

    runs = [("Algorithm 1", SubstituteConfig(rounds=args.rounds, seed=args.seed)),
            (f"reservoir σ={args.reservoir[0]}, κ={args.reservoir[1]}",
             SubstituteConfig(rounds=args.rounds, reservoir_after=args.reservoir[0], reservoir_size=args.reservoir[1],
                              seed=args.seed))]
    header = "| run | ρ | oracle queries | substitute accuracy | " + " | ".join(
        f"oracle error / transfer rate, ε = {eps:g}" for eps in args.eps) + " |"
    rows = []
    for name, config in runs:
        oracle = LabelOracle(oracle_model, "digits")
        folder = root / name.split()[0].lower()
        started = time.perf_counter()
        record = train_substitute(oracle, initial, folder, config, progress=False).record
        seconds = time.perf_counter() - started
        assert record.oracle_queries == oracle.queries == planned_queries(len(initial), config)
        print(f"{name}: {record.oracle_queries} oracle queries, trained in {seconds:.0f} s", flush=True)
        shown = range(config.rounds + 1) if config.reservoir_after is None else [config.rounds]
        for entry in (record.rounds[k] for k in shown):
            substitute = build_substitute(record.architecture, oracle_model.labels, oracle_model.image_size,
                                          config.seed)
            load_weights(substitute.model, weights_path(folder, entry.round), entry.weights_sha256)
            accuracy = (~error(substitute, x, y)).float().mean().item()
            cells = []
            for eps in args.eps:
                adversarial, _, _ = run_attack_batched(transfer_attack(Attack("fgsm", eps), [substitute]),
                                                       oracle_model, x, y, None, 64, source=substitute)
                wrong = error(oracle_model, adversarial, y)
                rate = (wrong & clean_right).sum().item() / max(1, clean_right.sum().item())
                cells.append(f"{wrong.float().mean():.3f} / {rate:.3f}")
            queries = sum(r.queries for r in record.rounds[:entry.round + 1])
            rows.append(f"| {name} | {entry.round} | {queries} | {accuracy:.3f} | " + " | ".join(cells) + " |")
    print()
    print(header)
    print("|" + "---|" * (4 + len(args.eps)))
    print("\n".join(rows))
    print()
    print("| control | ε | oracle error under random ±ε sign noise | oracle error under white-box FGSM |")
    print("|---|---|---|---|")
    for eps, noise, white in controls:
        print(f"| digits CNN | {eps:g} | {noise:.3f} | {white:.3f} |")
    print(f"\n(substitute folders in {root})")


if __name__ == "__main__":
    main()
