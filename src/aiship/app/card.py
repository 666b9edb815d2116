"""model.json: the contract between the data scientist, the pipeline and the service.

Light on purpose (no onnxruntime, no numpy) so the pipeline steps can read and write it too.
The fields are documented in model/README.md.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

MODEL_FILE = "model.onnx"
CARD_FILE = "model.json"
# The golden set: labelled rows held out from training, published with the model (the pipeline's
# evaluate-model scores the built image on them). JSON Lines, never a pickle.
GOLDEN_FILE = "golden.jsonl"

# Open Inference Protocol (V2) tensor datatypes this service can carry.
DATATYPES = ("BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "FP16", "FP32", "FP64")
INTEGER_DATATYPES = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8"})
FLOAT_DATATYPES = frozenset({"FP16", "FP32", "FP64"})
NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$")
VERSION_PATTERN = re.compile(r"^\d+(\.\d+){0,3}$")


class CardError(ValueError):
    """model.json is missing, malformed or does not match model.onnx."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]  # -1 marks a free dimension (the batch)

    @classmethod
    def from_dict(cls, data: object, where: str) -> TensorSpec:
        if not isinstance(data, dict):
            raise CardError(f"{where} must be an object with name, datatype and shape")
        name, datatype, shape = data.get("name"), data.get("datatype"), data.get("shape")
        if not isinstance(name, str) or not name:
            raise CardError(f"{where}.name must be a non-empty string")
        if datatype not in DATATYPES:
            raise CardError(f"{where}.datatype must be one of {', '.join(DATATYPES)}")
        if (
            not isinstance(shape, list)
            or not shape
            or not all(type(d) is int and (d > 0 or d == -1) for d in shape)
        ):
            raise CardError(f"{where}.shape must be a list of positive integers or -1")
        return cls(name, datatype, tuple(shape))

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class GoldenSet:
    """Where the card points at its golden set: the file's sha256 and its number of rows."""

    sha256: str
    rows: int

    @classmethod
    def from_dict(cls, data: object) -> GoldenSet:
        if not isinstance(data, dict):
            raise CardError("model.json golden must be an object with sha256 and rows")
        sha256, rows = data.get("sha256"), data.get("rows")
        if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise CardError("model.json golden.sha256 must be 64 lowercase hex digits")
        if type(rows) is not int or rows < 1:
            raise CardError("model.json golden.rows must be a positive integer")
        return cls(sha256, rows)


@dataclass(frozen=True)
class ModelCard:
    name: str
    version: str
    sha256: str
    framework: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    created: str
    labels: tuple[str, ...] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    golden: GoldenSet | None = None

    @classmethod
    def from_dict(cls, data: object) -> ModelCard:
        if not isinstance(data, dict):
            raise CardError("model.json must hold a JSON object")
        missing = [
            k
            for k in ("name", "version", "sha256", "framework", "inputs", "outputs", "created")
            if k not in data
        ]
        if missing:
            raise CardError(f"model.json lacks {', '.join(missing)}")
        name, version, sha256 = data["name"], data["version"], data["sha256"]
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise CardError("model.json name must be 1-64 of a-z, 0-9, '.', '_', '-'")
        check_version(version)
        if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise CardError("model.json sha256 must be 64 lowercase hex digits")
        inputs = _specs(data["inputs"], "inputs")
        outputs = _specs(data["outputs"], "outputs")
        labels = data.get("labels")
        if labels is not None and not (
            isinstance(labels, list) and all(isinstance(x, str) for x in labels)
        ):
            raise CardError("model.json labels must be a list of strings")
        metrics = data.get("metrics", {})
        if not isinstance(metrics, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in metrics.values()
        ):
            raise CardError("model.json metrics must map names to numbers")
        return cls(
            name=name,
            version=version,
            sha256=sha256,
            framework=str(data["framework"]),
            inputs=inputs,
            outputs=outputs,
            created=str(data["created"]),
            labels=tuple(labels) if labels is not None else None,
            metrics=dict(metrics),
            golden=GoldenSet.from_dict(data["golden"]) if data.get("golden") is not None else None,
        )

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["inputs"] = [s.to_dict() for s in self.inputs]
        data["outputs"] = [s.to_dict() for s in self.outputs]
        data["labels"] = list(self.labels) if self.labels is not None else None
        return {k: v for k, v in data.items() if v is not None}

    def class_outputs(self) -> tuple[str | None, str | None]:
        """A classifier's outputs that carry its answer: the label (one integer per row, an
        index into `labels`) and the scores (one float per label and row); None where absent,
        both None for a card without labels."""
        if not self.labels:
            return None, None
        label = next((s.name for s in self.outputs if _is_label(s)), None)
        scores = next((s.name for s in self.outputs if _is_scores(s, len(self.labels))), None)
        return label, scores

    def files(self, *, golden: bool = True) -> dict[str, str]:
        """The files the card describes beside itself, each with its sha256: model.onnx, and
        with GOLDEN the golden set when the card names one."""
        files = {MODEL_FILE: self.sha256}
        if golden and self.golden:
            files[GOLDEN_FILE] = self.golden.sha256
        return files

    def with_version(self, version: str) -> ModelCard:
        check_version(version)
        return replace(self, version=version)


def check_version(version: object) -> str:
    """Versions are 1 to 4 dot-separated numbers (3, 1.4, 2026.11.24), ordered numerically."""
    if not isinstance(version, str) or not VERSION_PATTERN.match(version):
        raise CardError(
            f"model version {version!r} is not valid: use 1 to 4 dot-separated numbers, e.g. 1.2.0"
        )
    return version


def version_key(version: str) -> tuple[int, ...]:
    """Sort key for versions: numeric, and 1.2 == 1.2.0."""
    parts = [int(p) for p in version.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _is_label(spec: TensorSpec) -> bool:
    """One integer per row: shape [-1] or [-1, 1]."""
    return spec.datatype in INTEGER_DATATYPES and (
        len(spec.shape) == 1 or (len(spec.shape) == 2 and spec.shape[1] == 1)
    )


def _is_scores(spec: TensorSpec, classes: int) -> bool:
    """One float per class and row: shape [-1, classes]."""
    return spec.datatype in FLOAT_DATATYPES and len(spec.shape) == 2 and spec.shape[1] == classes


def _specs(data: object, where: str) -> tuple[TensorSpec, ...]:
    if not isinstance(data, list) or not data:
        raise CardError(f"model.json {where} must be a non-empty list")
    return tuple(TensorSpec.from_dict(d, f"{where}[{i}]") for i, d in enumerate(data))


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file, read in chunks so a large model never sits in memory twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def read_card(model_dir: Path) -> ModelCard:
    """Parse DIR/model.json, naming the file in every error."""
    path = Path(model_dir) / CARD_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CardError(
            f"{path} not found: point --model-dir at a folder with {MODEL_FILE} and {CARD_FILE}"
        ) from None
    except (OSError, ValueError) as exc:
        raise CardError(f"{path} cannot be read as JSON: {exc}") from None
    try:
        return ModelCard.from_dict(data)
    except CardError as exc:
        raise CardError(f"{path}: {exc}") from None


def write_card(model_dir: Path, card: ModelCard) -> Path:
    path = Path(model_dir) / CARD_FILE
    path.write_text(json.dumps(card.to_dict(), indent=2) + "\n", encoding="utf-8")
    return path


def verify_model_dir(model_dir: Path, *, golden: bool = False) -> ModelCard:
    """Read model.json and check that model.onnx (and with GOLDEN the golden set, when the card
    names one: the pipeline has it, the image does not) are the files it describes."""
    card = read_card(model_dir)
    for file, sha256 in card.files(golden=golden).items():
        path = Path(model_dir) / file
        if not path.is_file():
            raise CardError(f"{path} not found")
        actual = file_sha256(path)
        if actual != sha256:
            raise CardError(
                f"{path} has sha256 {actual} but {CARD_FILE} says {sha256}: "
                "the file was changed or truncated; fetch or train the model again"
            )
    return card
