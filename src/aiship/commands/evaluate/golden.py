"""The golden set, read and checked against the model card, and carried through the V2 protocol.

A golden set is JSON Lines, one row a line: {"inputs": {"<input>": [...], ...}, "target": T},
where T is a class name from the card's labels for a classifier and a number for a regressor
(model/README.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from math import prod
from pathlib import Path

from aiship.app.card import FLOAT_DATATYPES, GOLDEN_FILE, ModelCard

from ...support.errors import ConfigError, IntegrityError


@dataclass(frozen=True)
class GoldenRow:
    inputs: dict[str, list]  # input name -> the row's values, flattened
    target: str | float


@dataclass(frozen=True)
class GoldenText:
    """A golden set as bytes, named for messages (its own, production's, the team's)."""

    name: str
    data: bytes
    rows: int | None = None  # as its card says, when it has one

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def describe(self) -> str:
        return f"{self.name} golden set (sha256 {self.sha256[:12]})"


def read_golden(model_dir: Path, card: ModelCard) -> list[GoldenRow]:
    """DIR/golden.jsonl's rows, each checked against the card's inputs; the count against the
    card's. The caller has verified the file's sha256."""
    path = Path(model_dir) / GOLDEN_FILE
    rows = card.golden.rows if card.golden else None
    return parse_golden(GoldenText(str(path), path.read_bytes(), rows), card, str(path))


def parse_golden(golden: GoldenText, card: ModelCard, where: str = "") -> list[GoldenRow]:
    """GOLDEN's rows, each checked against CARD's inputs and labels, the count against the one
    GOLDEN was published with; WHERE names it in errors (default: its description)."""
    where = where or golden.describe()
    sizes = {spec.name: prod(d for d in spec.shape[1:] if d > 0) for spec in card.inputs}
    try:
        lines = golden.data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text ({exc})") from None
    rows = [
        _row(line, card, sizes, f"{where} line {number}")
        for number, line in enumerate(lines, 1)
        if line.strip()
    ]
    if golden.rows is not None and len(rows) != golden.rows:
        raise IntegrityError(
            f"{where} has {len(rows)} rows, but model.json says {golden.rows}: publish the "
            "model and its golden set again"
        )
    if not rows:
        raise ConfigError(f"{where} has no rows: a golden set needs at least one")
    return rows


def _row(line: str, card: ModelCard, sizes: dict[str, int], where: str) -> GoldenRow:
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise ConfigError(f"{where}: not JSON ({exc})") from None
    inputs = data.get("inputs") if isinstance(data, dict) else None
    if not isinstance(inputs, dict) or set(inputs) != set(sizes):
        raise ConfigError(
            f"{where}: inputs must be an object with exactly {', '.join(sorted(sizes))} "
            "(the card's inputs)"
        )
    flat = {}
    for name, values in inputs.items():
        flat[name] = list(_flatten(values))
        if len(flat[name]) != sizes[name]:
            raise ConfigError(
                f"{where}: input {name} has {len(flat[name])} values, not {sizes[name]}"
            )
    target = data.get("target")
    if card.labels is not None:
        if target not in card.labels:
            raise ConfigError(f"{where}: target {target!r} is not one of the card's labels")
    elif isinstance(target, bool) or not isinstance(target, int | float):
        raise ConfigError(f"{where}: target must be a number (the card has no labels)")
    return GoldenRow(flat, target)


def _flatten(values) -> Iterator[float]:
    if isinstance(values, list):
        for value in values:
            yield from _flatten(values=value)
    elif isinstance(values, int | float) and not isinstance(values, bool):
        yield values
    else:
        raise ConfigError(f"golden set value {values!r} is not a number")


def batches(rows: Sequence[GoldenRow], size: int) -> Iterator[Sequence[GoldenRow]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def infer_request(card: ModelCard, rows: Sequence[GoldenRow]) -> dict:
    """The V2 inference request for ROWS, asking for the output that carries the answer."""
    inputs = [
        {
            "name": spec.name,
            "datatype": spec.datatype,
            "shape": [len(rows), *(d for d in spec.shape[1:])],
            "data": [value for row in rows for value in row.inputs[spec.name]],
        }
        for spec in card.inputs
    ]
    return {"inputs": inputs, "outputs": [{"name": answer_output(card)}]}


def answer_output(card: ModelCard) -> str:
    """The output read as the model's answer: a classifier's label (else its scores), a
    regressor's first floating-point output."""
    label, scores = card.class_outputs()
    if card.labels is not None:
        if not (label or scores):
            raise ConfigError(
                f"model {card.name}: the card has labels but no output with a label per row "
                "(integer, shape [-1]) or a score per label (float, shape [-1, labels])"
            )
        return label or scores
    found = next((s.name for s in card.outputs if s.datatype in FLOAT_DATATYPES), None)
    if found is None:
        raise ConfigError(f"model {card.name}: a regressor's card needs a floating-point output")
    return found


def answers(card: ModelCard, response: dict, rows: int) -> list[str | float]:
    """The model's answer per row from a V2 inference response: a class name, or a number."""
    name = answer_output(card)
    output = next((o for o in response.get("outputs", []) if o.get("name") == name), None)
    if output is None or not isinstance(output.get("data"), list):
        raise IntegrityError(f"the service's answer has no output {name}: {str(response)[:200]}")
    data = list(_flatten(output["data"]))
    if len(data) % rows:
        raise IntegrityError(f"output {name} has {len(data)} values for {rows} rows")
    width = len(data) // rows
    per_row = [data[i * width : (i + 1) * width] for i in range(rows)]
    if card.labels is None:
        return [float(values[0]) for values in per_row]
    label, _ = card.class_outputs()
    indexes = [
        int(values[0]) if name == label else max(range(width), key=values.__getitem__)
        for values in per_row
    ]
    return [card.labels[i] if 0 <= i < len(card.labels) else f"#{i}" for i in indexes]
