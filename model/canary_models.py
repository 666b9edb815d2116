"""Bad canary candidates: digits models that load, pass the app's warm-up and get ready, then fail
the way a new model really fails in production, where only the service's own metrics can tell:

- `skewed`: trained on broken labels; answers, but its prediction mix is not the good model's.
- `failing`: answers 500 to real digits (zeros, the warm-up, still pass).
- `slow`: the good model's answers, each tens of milliseconds later.

Each is a model folder (model.onnx and a model.json that matches it) with the good model's inputs
and outputs; `write_*` make them, next to the good model of model/train.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from aiship.app.card import GOLDEN_FILE, MODEL_FILE, ModelCard, read_card, write_card
from aiship.local.sample_model import digits_split

SKEWED_VERSION, FAILING_VERSION, SLOW_VERSION = "1.0.1", "1.0.2", "1.0.3"
SKEWED_CLASS = "1"  # the class that the skewed model's broken labels favour
SLOW_MATMULS = 30  # 512x512 products per inference: about 30 ms on one core here
SIDE = 512
_INPUT, _PROBABILITIES = "input", "probabilities"  # the good model's tensors


def write_skewed(out: Path, good: Path) -> ModelCard:
    """Trained on shuffled labels, one in ten of them then overwritten with SKEWED_CLASS (a
    broken label column): accuracy near chance, and about half of its answers are that class,
    where the good model answers each digit about as often. (Shuffled labels alone would not
    do: such a model answers at random, in the good model's mix.)"""
    import train  # model/train.py: its classifier's conversion to ONNX
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, x_test, y_train, y_test = digits_split()
    rng = np.random.default_rng(0)
    labels = rng.permutation(y_train)
    labels[rng.random(len(labels)) < 0.1] = int(SKEWED_CLASS)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    classifier.fit(x_train, labels)
    accuracy = round(float(classifier.score(x_test, y_test)), 4)
    onnx_bytes = train.to_onnx_bytes(classifier)
    return _write(out, good, onnx_bytes, SKEWED_VERSION, metrics={"accuracy": accuracy})


def write_failing(out: Path, good: Path) -> ModelCard:
    """The good model, plus zeros gathered at the index sum(row): in range for a row of zeros (the
    app's warm-up), out of range for any real digit, so onnxruntime raises at run time."""
    model = _load(good)
    table = numpy_helper.from_array(np.zeros((1, 10), np.float32), "canary_table")
    nodes = [
        helper.make_node("ReduceSum", [_INPUT, "canary_axis"], ["canary_sum"], keepdims=0),
        helper.make_node("Cast", ["canary_sum"], ["canary_index"], to=TensorProto.INT64),
        helper.make_node("Gather", ["canary_table", "canary_index"], ["canary_zeros"], axis=0),
    ]
    axis = numpy_helper.from_array(np.array([1], np.int64), "canary_axis")
    _add_zeros(model, nodes, [table, axis], "canary_zeros")
    return _write(out, good, model.SerializeToString(), FAILING_VERSION, metrics={})


def write_slow(out: Path, good: Path) -> ModelCard:
    """The good model, plus SLOW_MATMULS products of SIDE x SIDE matrices made from the input
    (so that nothing is folded away when the session loads), times zero: the same answers, later."""
    model = _load(good)
    average = np.full((SIDE, SIDE), 1.0 / SIDE, np.float32)  # keeps every product finite
    nodes = [
        helper.make_node("ReduceSum", [_INPUT], ["canary_sum"], keepdims=0),
        helper.make_node("Mul", ["canary_sum", "canary_average"], ["canary_0"]),
    ]
    for i in range(SLOW_MATMULS):
        nodes.append(
            helper.make_node("MatMul", [f"canary_{i}", "canary_average"], [f"canary_{i + 1}"])
        )
    nodes += [
        helper.make_node("ReduceSum", [f"canary_{SLOW_MATMULS}"], ["canary_total"], keepdims=0),
        helper.make_node("Mul", ["canary_total", "canary_zero"], ["canary_zeros"]),
    ]
    initializers = [
        numpy_helper.from_array(average, "canary_average"),
        numpy_helper.from_array(np.array(0.0, np.float32), "canary_zero"),
    ]
    _add_zeros(model, nodes, initializers, "canary_zeros")
    return _write(out, good, model.SerializeToString(), SLOW_VERSION)


def _load(good: Path) -> onnx.ModelProto:
    return onnx.load_model_from_string((good / MODEL_FILE).read_bytes())


def _add_zeros(model: onnx.ModelProto, nodes: list, initializers: list, zeros: str) -> None:
    """Make the graph's probabilities its old ones plus ZEROS, which NODES compute."""
    graph = model.graph
    for node in graph.node:
        node.output[:] = [
            f"{_PROBABILITIES}_good" if o == _PROBABILITIES else o for o in node.output
        ]
    graph.node.extend(
        [*nodes, helper.make_node("Add", [f"{_PROBABILITIES}_good", zeros], [_PROBABILITIES])]
    )
    graph.initializer.extend(initializers)
    onnx.checker.check_model(model, full_check=True)


def _write(
    out: Path, good: Path, onnx_bytes: bytes, version: str, metrics: dict | None = None
) -> ModelCard:
    """OUT/model.onnx and the good model's card made to match it (its metrics unless given), with
    the good model's golden set when the card names one (the candidates take the same inputs)."""
    good_card = read_card(good)
    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL_FILE).write_bytes(onnx_bytes)
    if good_card.golden:
        shutil.copy(good / GOLDEN_FILE, out / GOLDEN_FILE)
    card = dataclasses.replace(
        good_card.with_version(version),
        sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        **({} if metrics is None else {"metrics": metrics}),
    )
    write_card(out, card)
    return card
