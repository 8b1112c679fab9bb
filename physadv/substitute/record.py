"""A substitute's folder and its record, read as untrusted input::

    DIR/substitute.json                 the record: oracle, architecture, λ, ρ, τ, seed, the initial images'
                                        SHA-256, per-round queries; oracle_queries = their sum
    DIR/rounds/points-K.safetensors     round K's new points (uint8) and the oracle's labels of them
    DIR/rounds/weights-K.safetensors    the substitute after round K's training
    DIR/substitute.safetensors          the finished substitute (weights only: never a pickle)

Files are found by these fixed names, never by a path read from the record, and each is loaded only
if its bytes have the SHA-256 the record gives.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from physadv.errors import InputError
from physadv.fileio import parse_json
from physadv.substitute import ARCHITECTURES, MAX_ROUNDS, SubstituteConfig, is_file_architecture
from physadv.substitute.architectures import ArchitectureRef
from physadv.substitute.oracle import OracleIdentity
from physadv.validation import MAX_CLASSES, Record

SCHEMA = "physadv-substitute/1"
RECORD_FILE, WEIGHTS_FILE, ROUNDS_DIR = "substitute.json", "substitute.safetensors", "rounds"
MAX_IMAGES = 1_000_000
MAX_RECORD_BYTES = 64 << 20
MAX_COUNT = 1 << 50  # points or queries: past any real run, a larger count is a corrupt record


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class RoundRecord:
    """Round ``round``: its ``queries`` new points labelled by the oracle, the training set's size then
    (``points``), the SHA-256 of its points file and, once trained, of the substitute's weights and the
    substitute's agreement with the oracle on its training set."""

    round: int
    queries: int
    points: int
    points_sha256: str
    weights_sha256: str | None = None
    agreement: float | None = None


@dataclass(frozen=True)
class SubstituteRecord:
    """``DIR/substitute.json``."""

    oracle: OracleIdentity
    architecture: ArchitectureRef
    config: SubstituteConfig
    images: tuple[tuple[str, str], ...]  # (id, pixel SHA-256) of the initial set S0, in order
    rounds: tuple[RoundRecord, ...] = ()
    weights_sha256: str | None = None  # of DIR/substitute.safetensors, once finished

    @property
    def oracle_queries(self) -> int:
        """Images the oracle labelled for this substitute: each round's new points."""
        return sum(r.queries for r in self.rounds)

    @property
    def finished(self) -> bool:
        return self.weights_sha256 is not None

    def to_json(self) -> dict:
        return {"schema": SCHEMA, "oracle": asdict(self.oracle), "architecture": asdict(self.architecture),
                "settings": self.config.to_json(), "oracle_queries": self.oracle_queries,
                "rounds": [asdict(r) for r in self.rounds], "finished": self.finished,
                "weights_sha256": self.weights_sha256, "images": [{"id": i, "sha256": s} for i, s in self.images]}


def _sha(record: Record, key: str, optional: bool = False) -> str | None:
    value = record.text(key, optional=optional, max_length=64)
    if value is not None and (len(value) != 64 or any(c not in "0123456789abcdef" for c in value)):
        raise record.fail(key, "expected a SHA-256 (64 lower-case hex digits)")
    return value


def _config(settings: Record) -> SubstituteConfig:
    settings.only(("rounds", "lambda", "tau", "epochs", "batch_size", "learning_rate", "reservoir", "seed"))
    reservoir = settings.record("reservoir", optional=True)
    if reservoir is not None:
        reservoir.only(("after", "size"))
    try:
        return SubstituteConfig(
            rounds=settings.integer("rounds", 0, MAX_ROUNDS), step=settings.number("lambda", 0, 255),
            period=settings.integer("tau", 0, MAX_COUNT), epochs=settings.integer("epochs", 1, MAX_COUNT),
            batch_size=settings.integer("batch_size", 1, MAX_COUNT),
            learning_rate=settings.number("learning_rate", 0, 10),
            reservoir_after=reservoir.integer("after", 0, MAX_ROUNDS) if reservoir else None,
            reservoir_size=reservoir.integer("size", 1, MAX_COUNT) if reservoir else None,
            seed=settings.integer("seed", -2**63, 2**64 - 1))
    except InputError as error:
        if str(error).startswith(settings.where):
            raise
        raise settings.fail(None, str(error)) from None


def read_record(folder: str | Path) -> SubstituteRecord:
    """``folder/substitute.json``, every field checked.

    Raises:
        InputError: no such record, a record of another schema, or a malformed or inconsistent field.
    """
    path = Path(folder) / RECORD_FILE
    if not path.is_file():
        raise InputError(f"{folder}: not a substitute folder (no {RECORD_FILE}; `physadv substitute --out DIR` "
                         "makes one)")
    if path.stat().st_size > MAX_RECORD_BYTES:
        raise InputError(f"{path}: larger than {MAX_RECORD_BYTES >> 20} MiB, not a substitute record")
    try:
        data = parse_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InputError(f"{path}: malformed substitute record ({error})") from None
    record = Record(data, str(path))
    if data.get("schema") != SCHEMA:
        raise InputError(f"{path}: unsupported schema {str(data.get('schema'))[:80]!r} (expected {SCHEMA})")
    record.only(("schema", "oracle", "architecture", "settings", "oracle_queries", "images", "rounds", "finished",
                 "weights_sha256"))
    oracle = record.record("oracle")
    oracle.only([f.name for f in fields(OracleIdentity)])
    identity = OracleIdentity(spec=oracle.text("spec", max_length=1024), name=oracle.text("name", max_length=1024),
                              weights_sha256=_sha(oracle, "weights_sha256", optional=True),
                              labels_sha256=_sha(oracle, "labels_sha256"),
                              classes=oracle.integer("classes", 2, MAX_CLASSES),
                              image_size=oracle.integer("image_size", 1, 4096))
    architecture = record.record("architecture")
    architecture.only(("name", "file_sha256"))
    name = architecture.text("name", max_length=1024)
    if name not in ARCHITECTURES and not is_file_architecture(name):
        raise architecture.fail("name", f"{name[:80]!r} is neither a built-in architecture "
                                        f"({', '.join(ARCHITECTURES)}) nor FILE.py:FACTORY")
    file_digest = _sha(architecture, "file_sha256", optional=True)
    if (file_digest is None) != (name in ARCHITECTURES):
        raise architecture.fail("file_sha256", "a FILE.py:FACTORY architecture has its file's SHA-256, a "
                                               "built-in one none")
    config = _config(record.record("settings"))
    images = []
    for item in record.records("images", 1, MAX_IMAGES):
        item.only(("id", "sha256"))
        images.append((item.text("id", max_length=1024), _sha(item, "sha256")))
    rounds: list[RoundRecord] = []
    items = list(record.records("rounds", 0, config.rounds + 1))
    for number, item in enumerate(items):
        item.only([f.name for f in fields(RoundRecord)])
        entry = RoundRecord(round=item.integer("round", number, number), queries=item.integer("queries", 1, MAX_COUNT),
                            points=item.integer("points", 1, MAX_COUNT), points_sha256=_sha(item, "points_sha256"),
                            weights_sha256=_sha(item, "weights_sha256", optional=True),
                            agreement=item.number("agreement", 0, 1, optional=True))
        if entry.weights_sha256 is None and number < len(items) - 1:
            raise item.fail("weights_sha256", "missing: only the last round may be untrained")
        if entry.points != sum(r.queries for r in rounds) + entry.queries:
            raise item.fail("points", "is not the sum of the queries of this round and the earlier ones")
        rounds.append(entry)
    if rounds and rounds[0].queries != len(images):
        raise record.fail("rounds", f"round 0 labels the {len(images)} initial images, not {rounds[0].queries}")
    result = SubstituteRecord(identity, ArchitectureRef(name, file_digest), config, tuple(images), tuple(rounds),
                              _sha(record, "weights_sha256", optional=True))
    if record.integer("oracle_queries", 0, MAX_COUNT) != result.oracle_queries:
        raise record.fail("oracle_queries", "is not the sum of the rounds' queries")
    if record.boolean("finished") != result.finished:
        raise record.fail("finished", "disagrees with weights_sha256")
    if result.finished and (len(rounds) != config.rounds + 1 or rounds[-1].weights_sha256 is None):
        raise record.fail("rounds", f"a finished substitute has {config.rounds + 1} trained rounds")
    return result


# --- the tensor files -------------------------------------------------------------------------------


def points_path(folder: Path, round_: int) -> Path:
    return folder / ROUNDS_DIR / f"points-{round_}.safetensors"


def weights_path(folder: Path, round_: int) -> Path:
    return folder / ROUNDS_DIR / f"weights-{round_}.safetensors"


def tensors_to_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})


def read_checked(path: Path, sha256: str, what: str) -> dict[str, torch.Tensor]:
    """The tensors of ``path``, whose bytes must have the SHA-256 ``sha256`` (read once: what is checked
    is what is loaded).

    Raises:
        InputError: a missing file, other bytes than recorded (tampered or corrupt), not safetensors.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: missing ({what}); the folder is incomplete") from None
    if sha256_of(data) != sha256:
        raise InputError(f"{path}: its SHA-256 is not the one {RECORD_FILE} records: the {what} changed after "
                         "it was recorded (tampered or corrupt)")
    try:
        return load(data)
    except (SafetensorError, ValueError) as error:
        raise InputError(f"{path}: not a readable safetensors file ({error})") from None


def read_points(path: Path, sha256: str, image_size: int, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Round points ``(N, 3, image_size, image_size)`` uint8 and their oracle labels ``(N,)``, checked."""
    tensors = read_checked(path, sha256, "training points")
    points, labels = tensors.get("points"), tensors.get("labels")
    if (set(tensors) != {"points", "labels"} or points.dtype != torch.uint8 or labels.dtype != torch.int64
            or points.ndim != 4 or tuple(points.shape[1:]) != (3, image_size, image_size)
            or labels.shape != (len(points),)
            or (len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < classes)):
        raise InputError(f"{path}: not this substitute's points (uint8 (N, 3, {image_size}, {image_size}) and "
                         f"labels in 0..{classes - 1})")
    return points, labels


def load_weights(model: torch.nn.Module, path: Path, sha256: str) -> None:
    """``path``'s weights into ``model`` (strictly), if its bytes are the recorded ones."""
    state = read_checked(path, sha256, "substitute's weights")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise InputError(f"{path}: these weights do not fit the substitute's architecture "
                         f"({str(error).splitlines()[0]})") from None
