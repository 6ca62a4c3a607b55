#!/usr/bin/env python3
"""Accuracy of one-shot sparsification on a trained model with a held-out labelled set.

The data: scikit-learn's handwritten digits (1,797 8x8 images, 10 classes; the UCI optical
recognition of handwritten digits set, BSD-licensed with scikit-learn), read from the
scikit-learn wheel's sklearn/datasets/data/digits.csv.gz into ortsparse's cache
(tools/model_zoo.py's), never committed; scikit-learn itself is not installed. A fixed, seeded
split keeps 360 images apart for testing.

The model: an MLP 64 -> 256 -> 256 -> 10 with ReLU, trained here in numpy (Adam, seeded), written
as ONNX MatMul/Add/Relu nodes. Every layer is then pruned (as `ortsparse sparsify --prune-ends`
does; `--keep-ends` leaves the first and the last dense, sparsify's default) at each sparsity and
pattern, by magnitude and by reconstruction calibrated on the training images (labels unused),
and the test accuracy of each result is measured with ONNX Runtime.

A trained third-party model too (`--task ocr_cls`): PaddleOCR's text-angle classifier from the
model zoo (tools/model_zoo.py, Apache-2.0), which tells text lines at 0 from 180 degrees. Its
labelled data is made here: lines of random words drawn by Pillow's default font, half of them
turned by 180 degrees (the label), prepared as PaddleOCR prepares them (height 48, width up to
192, scaled to [-1, 1], padded right); 256 lines calibrate, 400 others test. Its depthwise convs
are grouped and stay dense; the first and the last layer stay dense (sparsify's default).

    .venv/bin/python tools/sparsify_accuracy.py
    .venv/bin/python tools/sparsify_accuracy.py --patterns unstructured 4x1 --sparsities 0.9
    .venv/bin/python tools/sparsify_accuracy.py --task ocr_cls --keep-ends
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from ortsparse.model_versions import newest_model_versions

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ortsparse.sparsify import CalibrationInputs, parse_pattern, sparsify_model  # noqa: E402
from ortsparse.sparsify.recipe import Recipe  # noqa: E402

from tools.model_zoo import MODELS, fetch, wheel_members, zoo_dir  # noqa: E402

PACKAGE = "scikit-learn==1.7.2"
TEST_IMAGES = 360
HIDDEN = 256
EPOCHS = 60


def digits() -> tuple[np.ndarray, np.ndarray]:
    """Images [1797, 64] scaled to [0, 1] and labels [1797]."""
    path = zoo_dir() / "data" / "digits.csv.gz"
    wheel_members(PACKAGE, {"sklearn/datasets/data/digits.csv.gz": path})
    with gzip.open(path, "rt") as file:
        table = np.loadtxt(file, delimiter=",")
    return (table[:, :-1] / 16.0).astype(np.float32), table[:, -1].astype(np.int64)


def split(images, labels, seed: int = 0):
    order = np.random.default_rng(seed).permutation(len(labels))
    test, train = order[:TEST_IMAGES], order[TEST_IMAGES:]
    return images[train], labels[train], images[test], labels[test]


def train_mlp(images: np.ndarray, labels: np.ndarray, seed: int = 0) -> list[np.ndarray]:
    """Weights [K, N] and biases of a 64-256-256-10 ReLU MLP, by Adam on the cross-entropy."""
    rng = np.random.default_rng(seed)
    sizes = [images.shape[1], HIDDEN, HIDDEN, 10]
    params = []
    for k, n in zip(sizes, sizes[1:]):
        params += [rng.standard_normal((k, n)) * np.sqrt(2.0 / k), np.zeros(n)]
    moments = [np.zeros_like(p) for p in params] + [np.zeros_like(p) for p in params]
    step = 0
    for _ in range(EPOCHS):
        for batch in np.array_split(rng.permutation(len(labels)), len(labels) // 32):
            activations = [images[batch].astype(np.float64)]
            for layer in range(3):
                z = activations[-1] @ params[2 * layer] + params[2 * layer + 1]
                activations.append(np.maximum(z, 0) if layer < 2 else z)
            logits = activations[-1]
            probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
            probabilities /= probabilities.sum(axis=1, keepdims=True)
            grad = probabilities
            grad[np.arange(len(batch)), labels[batch]] -= 1
            grad /= len(batch)
            grads = [None] * len(params)
            for layer in reversed(range(3)):
                grads[2 * layer] = activations[layer].T @ grad
                grads[2 * layer + 1] = grad.sum(axis=0)
                if layer:
                    grad = (grad @ params[2 * layer].T) * (activations[layer] > 0)
            step += 1
            for index, (param, g) in enumerate(zip(params, grads)):
                first, second = moments[index], moments[len(params) + index]
                first[:] = 0.9 * first + 0.1 * g
                second[:] = 0.999 * second + 0.001 * g * g
                corrected = first / (1 - 0.9**step), second / (1 - 0.999**step)
                param -= 1e-3 * corrected[0] / (np.sqrt(corrected[1]) + 1e-8)
    return [p.astype(np.float32) for p in params]


def mlp_model(params: list[np.ndarray]) -> onnx.ModelProto:
    nodes, initializers, current = [], [], "images"
    for layer in range(3):
        weight, bias = f"w{layer}", f"b{layer}"
        initializers += [
            numpy_helper.from_array(params[2 * layer], weight),
            numpy_helper.from_array(params[2 * layer + 1], bias),
        ]
        nodes += [
            helper.make_node("MatMul", [current, weight], [f"m{layer}"], name=f"fc{layer}"),
            helper.make_node("Add", [f"m{layer}", bias], [f"a{layer}"]),
        ]
        current = f"a{layer}"
        if layer < 2:
            nodes.append(helper.make_node("Relu", [current], [f"r{layer}"]))
            current = f"r{layer}"
    graph = helper.make_graph(
        nodes,
        "digits_mlp",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, ["batch", 10])],
        initializers,
    )
    return newest_model_versions().make_model(graph)


def accuracy(model: onnx.ModelProto, images: np.ndarray, labels: np.ndarray) -> float:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: images})
    return float(np.mean(np.argmax(logits, axis=1) == labels))


WORDS = (
    "the quick brown fox jumps over a lazy dog while sparse kernels run matrix products on "
    "every core of the machine and nobody waits for the result of their work"
).split()


def text_lines(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` lines of 2-4 random words, every other one turned by 180 degrees (label 1), as
    PaddleOCR's angle classifier takes them: [count, 3, 48, 192] in [-1, 1]."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    try:
        font = ImageFont.load_default(size=28)
    except TypeError:  # Pillow before 10.1 has one bitmap size
        font = ImageFont.load_default()
    lines, labels = [], []
    for index in range(count):
        text = " ".join(rng.choice(WORDS, int(rng.integers(2, 5))))
        image = Image.new("RGB", (20 * len(text), 48), "white")
        ImageDraw.Draw(image).text((6, 8), text, fill="black", font=font)
        image = image.crop(image.getbbox() and (0, 0, image.getbbox()[2] + 6, 48))
        if index % 2:
            image = image.rotate(180)
        width = min(192, int(np.ceil(48 * image.width / image.height)))
        pixels = np.asarray(image.resize((width, 48), Image.Resampling.BILINEAR), np.float32)
        line = np.zeros((48, 192, 3), np.float32)
        line[:, :width] = (pixels / 255.0 - 0.5) / 0.5
        lines.append(line.transpose(2, 0, 1))
        labels.append(index % 2)
    return np.stack(lines), np.array(labels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", choices=("digits", "ocr_cls"), default="digits")
    parser.add_argument("--patterns", nargs="+", default=["unstructured", "4x1", "1x4", "2:4"])
    parser.add_argument("--sparsities", nargs="+", type=float, default=[0.5, 0.7, 0.8, 0.9])
    parser.add_argument("--samples", type=int, default=512, help="calibration images (512)")
    parser.add_argument(
        "--keep-ends", action="store_true", help="leave the first and the last layer dense"
    )
    args = parser.parse_args(argv)
    patterns = [parse_pattern(name) for name in args.patterns]

    if args.task == "digits":
        train_images, train_labels, test_images, test_labels = split(*digits())
        print(f"training the MLP on {len(train_labels)} images", file=sys.stderr)
        dense = mlp_model(train_mlp(train_images, train_labels))
    else:
        dense = onnx.load(str(fetch(MODELS["ocr_cls"])))
        train_images, _ = text_lines(256, seed=1)
        test_images, test_labels = text_lines(400, seed=2)
    print(f"dense test accuracy: {accuracy(dense, test_images, test_labels):.1%}")
    print("| pattern | sparsity | magnitude | reconstruction |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        dense_path = Path(scratch) / "dense.onnx"
        onnx.save(dense, str(dense_path))
        calibration_path = Path(scratch) / "calibration.npz"
        np.savez(calibration_path, **{dense.graph.input[0].name: train_images})
        calibration = CalibrationInputs(calibration_path, dense_path, args.samples)
        for pattern in patterns:
            targets = [pattern.fixed_sparsity] if pattern.fixed_sparsity else args.sparsities
            for sparsity in targets:
                results = []
                for method in ("magnitude", "obs"):
                    model = onnx.load(str(dense_path))
                    recipe = Recipe(sparsity, pattern, method, prune_ends=not args.keep_ends)
                    sparsify_model(
                        model, recipe, calibration=calibration if method == "obs" else None
                    )
                    results.append(accuracy(model, test_images, test_labels))
                print(f"| {pattern.name} | {sparsity:.0%} | {results[0]:.1%} | {results[1]:.1%} |")
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
