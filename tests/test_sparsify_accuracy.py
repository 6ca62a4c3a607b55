"""tools/sparsify_accuracy.py's model and measurement, on data made here (the digits themselves
come from a download the suite does not make)."""

import numpy as np

from tools.sparsify_accuracy import accuracy, mlp_model, split, train_mlp


def test_the_trained_mlp_learns_and_its_onnx_form_computes_as_trained():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 600)
    centres = rng.standard_normal((10, 64)).astype(np.float32)
    images = centres[labels] + 0.3 * rng.standard_normal((600, 64)).astype(np.float32)
    train_images, train_labels, test_images, test_labels = split(images, labels)
    assert len(test_labels) == 360 and len(train_labels) == 240
    params = train_mlp(train_images, train_labels)
    model = mlp_model(params)
    hidden = np.maximum(test_images @ params[0] + params[1], 0)
    hidden = np.maximum(hidden @ params[2] + params[3], 0)
    expected = np.mean(np.argmax(hidden @ params[4] + params[5], axis=1) == test_labels)
    assert accuracy(model, test_images, test_labels) == expected
    assert expected > 0.9


def test_text_lines_are_prepared_as_paddleocr_takes_them():
    from tools.sparsify_accuracy import text_lines

    lines, labels = text_lines(4, seed=0)
    assert lines.shape == (4, 3, 48, 192) and lines.dtype == np.float32
    assert labels.tolist() == [0, 1, 0, 1]
    assert lines.min() >= -1.0 and lines.max() <= 1.0
