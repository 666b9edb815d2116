"""Train the sample model: a digit classifier on scikit-learn's bundled 8x8 digits images.

    python model/train.py --out DIR [--version 1.0.0] [--name digits]

Writes DIR/model.onnx (ONNX, no ZipMap, free batch dimension), DIR/golden.jsonl (the held-out
rows the pipeline scores the built image on) and DIR/model.json (the model card, see
model/README.md). Training is deterministic: the same code gives the same files.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import sklearn
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from aiship.app.card import (
    GOLDEN_FILE,
    MODEL_FILE,
    GoldenSet,
    ModelCard,
    TensorSpec,
    check_version,
    file_sha256,
    write_card,
)

SEED = 0
FEATURES = 64  # 8x8 pixels, grey levels 0..16


def split(seed: int = SEED):
    """The digits, as float32 pixels, split into training and held-out rows (stratified)."""
    images, digits = load_digits(return_X_y=True)
    return train_test_split(
        images.astype(np.float32), digits, test_size=0.25, random_state=seed, stratify=digits
    )


def train(seed: int = SEED):
    """Fit the classifier; return it with its held-out accuracy."""
    x_train, x_test, y_train, y_test = split(seed)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    classifier.fit(x_train, y_train)
    return classifier, float(classifier.score(x_test, y_test))


def write_golden(path: Path, rows, targets) -> GoldenSet:
    """The golden set as JSON Lines: one {"inputs": {"input": [...]}, "target": "<class>"} a row."""
    with open(path, "w", encoding="utf-8") as out:
        for row, target in zip(rows, targets, strict=True):
            line = {"inputs": {"input": [int(v) for v in row]}, "target": str(int(target))}
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
    return GoldenSet(file_sha256(path), len(rows))


def to_onnx_bytes(classifier) -> bytes:
    onnx_model = to_onnx(
        classifier,
        initial_types=[("input", FloatTensorType([None, FEATURES]))],
        options={"zipmap": False},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    return onnx_model.SerializeToString()


def write_model(out: Path, name: str, version: str) -> ModelCard:
    classifier, accuracy = train()
    onnx_bytes = to_onnx_bytes(classifier)
    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL_FILE).write_bytes(onnx_bytes)
    _, x_test, _, y_test = split()
    golden = write_golden(out / GOLDEN_FILE, x_test, y_test)
    card = ModelCard(
        name=name,
        version=version,
        sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        framework=f"scikit-learn {sklearn.__version__}",
        inputs=(TensorSpec("input", "FP32", (-1, FEATURES)),),
        outputs=(
            TensorSpec("label", "INT64", (-1,)),
            TensorSpec("probabilities", "FP32", (-1, 10)),
        ),
        labels=tuple(str(d) for d in range(10)),
        metrics={"accuracy": round(accuracy, 4)},
        golden=golden,
        created=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    write_card(out, card)
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder to write the model to")
    parser.add_argument("--name", default="digits", help="model name (default: digits)")
    parser.add_argument("--version", default="1.0.0", help="model version (default: 1.0.0)")
    args = parser.parse_args(argv)
    try:
        check_version(args.version)
    except ValueError as exc:
        parser.error(str(exc))
    card = write_model(args.out, args.name, args.version)
    print(
        f"wrote {args.out / MODEL_FILE} ({card.name} {card.version}, "
        f"accuracy {card.metrics['accuracy']}, sha256 {card.sha256})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
