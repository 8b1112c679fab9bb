"""A finished substitute as the source of a transfer attack: ``--source-model substitute:DIR``.

The folder is untrusted: its record is checked field by field, its weights must have the recorded
SHA-256, the oracle it names is compared with the model under attack (a substitute stands in for its own
oracle only) and never loaded, and a user architecture it names is never imported: the user names the
code, ``substitute:DIR@FILE.py:FACTORY``, and its file must be the recorded one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import torch

from physadv.classifiers import Classifier
from physadv.errors import InputError
from physadv.labels import label_space
from physadv.substitute import SUBSTITUTE_PREFIX, is_file_architecture
from physadv.substitute.architectures import build_substitute
from physadv.substitute.oracle import OracleIdentity
from physadv.substitute.record import WEIGHTS_FILE, load_weights, read_record


@dataclass(frozen=True)
class Provenance:
    """Where a substitute comes from: its folder, the oracle it stands in for, the images that oracle
    labelled to train it, and its architecture's name."""

    folder: str
    oracle: OracleIdentity
    oracle_queries: int
    architecture: str


class SubstituteClassifier(Classifier):
    """A trained substitute: ``base``'s model and preprocessing, and its :class:`Provenance`."""

    def __init__(self, base: Classifier, provenance: Provenance) -> None:
        super().__init__(base.model, name=base.name, labels=base.labels, input_size=base.input_size,
                         preprocess=base.preprocess, weights=base.weights, image_size=base.image_size,
                         interpolation=base.interpolation)
        self.provenance = provenance


@dataclass(frozen=True)
class SubstituteSpec:
    """``substitute:DIR``, or ``substitute:DIR@FILE.py:FACTORY`` for a substitute trained with the user's
    own architecture (the user names its code; physadv never imports code a record names)."""

    folder: Path
    architecture_file: str | None = None

    @classmethod
    def parse(cls, text: str) -> "SubstituteSpec":
        body = text.removeprefix(SUBSTITUTE_PREFIX)
        folder, sep, code = body.rpartition("@")
        if sep and folder and is_file_architecture(code):
            return cls(Path(folder).expanduser(), code)
        if not body:
            raise InputError(f"{text!r}: name the folder, {SUBSTITUTE_PREFIX}DIR")
        return cls(Path(body).expanduser())


def load_substitute(spec: str, device: torch.device | str = "cpu") -> SubstituteClassifier:
    """The finished substitute of ``substitute:DIR[@FILE.py:FACTORY]``, its weights checked against the
    record. Its classes are placeholders until :func:`check_oracle` gives it those of its oracle.

    Raises:
        InputError: not a substitute folder, an unfinished one, a malformed record, weights other than the
            recorded ones (tampered), or a user architecture not named, or not the recorded file.
    """
    parsed = SubstituteSpec.parse(spec)
    record = read_record(parsed.folder)
    if not record.finished:
        raise InputError(f"{parsed.folder}: the substitute is not finished ({len(record.rounds)} of "
                         f"{record.config.rounds + 1} rounds); re-run `physadv substitute` with the same options "
                         "to finish it")
    architecture = record.architecture
    if architecture.file_sha256 is not None:
        if parsed.architecture_file is None:
            raise InputError(f"{parsed.folder}: its architecture is user code ({architecture.name}) and physadv "
                             "never imports code a file names; name it yourself: "
                             f"{SUBSTITUTE_PREFIX}{parsed.folder}@{architecture.name}")
        architecture = replace(architecture, name=parsed.architecture_file)
    elif parsed.architecture_file is not None:
        raise InputError(f"{parsed.folder}: its architecture is the built-in {architecture.name}; drop "
                         f"@{parsed.architecture_file}")
    placeholders = label_space([f"class{i}" for i in range(record.oracle.classes)])
    substitute = build_substitute(architecture, placeholders, record.oracle.image_size, record.config.seed, device,
                                  name=f"{SUBSTITUTE_PREFIX}{parsed.folder}")
    path = parsed.folder / WEIGHTS_FILE
    load_weights(substitute.model, path, record.weights_sha256)
    substitute.weights = str(path)
    return SubstituteClassifier(substitute, Provenance(str(parsed.folder), record.oracle, record.oracle_queries,
                                                       record.architecture.name))


def check_oracle(substitute: SubstituteClassifier, target: Classifier) -> None:
    """Give ``substitute`` ``target``'s class names if ``target`` is its oracle; else :class:`InputError`."""
    identity, provenance = OracleIdentity.of(target), substitute.provenance
    if not provenance.oracle.same_model(identity):
        raise InputError(f"{provenance.folder} is a substitute of {provenance.oracle.describe()}, not of "
                         f"{identity.describe()}: a substitute stands in for its own oracle only (train one with "
                         "`physadv substitute --oracle MODEL ...`)")
    substitute.labels = target.labels


def load_source(spec: str, weights: str | None, target: Classifier, offline: bool | None = None) -> Classifier:
    """A transfer attack's source model for ``target``: a substitute (checked to be ``target``'s), or any
    ``--model`` form (with its ``weights``)."""
    from physadv.classifiers import load_classifier

    if not spec.startswith(SUBSTITUTE_PREFIX):
        return load_classifier(spec, weights=weights, device=target.device, offline=offline)
    if weights is not None:
        raise InputError(f"{spec}: a substitute's weights are in its folder; give it no --source-weights")
    substitute = load_substitute(spec, target.device)
    check_oracle(substitute, target)
    return substitute


def substitute_provenance(sources: Sequence[Classifier]) -> dict[str, str | int]:
    """What result rows record of a transfer attack's substitutes: the oracle(s) and the oracle queries they
    cost (``source_model`` already names the substitute); ``{}`` when no source is a substitute."""
    substitutes = [s for s in sources if isinstance(s, SubstituteClassifier)]
    if not substitutes:
        return {}
    return {"oracle": "+".join(s.provenance.oracle.name for s in substitutes),
            "oracle_queries": sum(s.provenance.oracle_queries for s in substitutes)}
