"""ortsparse.Pipeline: the yolo and image_classification tasks, on trained models from PyPI
wheels (tools/model_zoo.py: YOLOv8n on COCO, a PP-LCNet orientation classifier) and real
photographs (tools/sample_images.py), with each post-processing step checked against an
independent reference written here."""

import io
import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper
from ortsparse import Pipeline
from ortsparse.model_versions import newest_model_versions
from ortsparse.pipelines import ImageError, Timings
from ortsparse.pipelines.classification import IMAGENET_MEAN, IMAGENET_STD, probabilities
from ortsparse.pipelines.images import load_rgb
from ortsparse.pipelines.yolo import Letterbox, class_aware_nms, decode, to_image_pixels
from PIL import Image

from tools.model_zoo import MODELS, fetch, pruned
from tools.sample_images import sample_images

ORIENTATIONS = ["0", "90", "180", "270"]


@pytest.fixture(scope="module")
def photos():
    return sample_images()


@pytest.fixture(scope="module")
def yolo():
    return Pipeline.create("yolo", fetch(MODELS["yolov8n"]), engine_type="onnxruntime")


# --- post-processing against independent references ---------------------------------------------


def reference_nms(boxes, scores, classes, iou_thres):
    """Greedy NMS class by class, one pair of boxes at a time."""

    def iou(a, b):
        width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        overlap = width * height
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - overlap
        return overlap / union if union > 0 else 0.0

    kept = []
    for cls in set(classes.tolist()):
        candidates = sorted(np.flatnonzero(classes == cls), key=lambda i: -scores[i])
        chosen = []
        for index in candidates:
            if all(iou(boxes[index], boxes[other]) <= iou_thres for other in chosen):
                chosen.append(index)
        kept += chosen
    return set(kept)


@pytest.mark.parametrize("seed", range(5))
def test_class_aware_nms_keeps_what_the_reference_keeps(seed):
    rng = np.random.default_rng(seed)
    corners = rng.uniform(0, 200, (150, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(5, 80, (150, 2))], axis=1)
    scores = rng.random(150)
    classes = rng.integers(0, 4, 150)
    kept = class_aware_nms(boxes, scores, classes, 0.45)
    assert set(kept.tolist()) == reference_nms(boxes, scores, classes, 0.45)
    assert np.all(np.diff(scores[kept]) <= 0)  # best first


def test_boxes_of_other_classes_never_suppress_each_other():
    boxes = np.array([[10, 10, 50, 50], [10, 10, 50, 50]], float)
    kept = class_aware_nms(boxes, np.array([0.9, 0.8]), np.array([0, 1]), 0.5)
    assert kept.tolist() == [0, 1]


def yolo_head(boxes_xywh, class_scores, objectness=None):
    """A head's rows [anchors, 4 (+1) + classes] for the given anchors."""
    columns = [np.asarray(boxes_xywh, np.float32)]
    if objectness is not None:
        columns.append(np.asarray(objectness, np.float32)[:, None])
    columns.append(np.asarray(class_scores, np.float32))
    return np.concatenate(columns, axis=1)


def test_decode_reads_a_yolov8_head_channels_first():
    rows = yolo_head([[100, 50, 20, 10], [5, 5, 2, 2], [0, 0, 1, 1]], np.eye(3) * [0.9, 0.1, 0.6])
    padded = np.concatenate([rows, np.zeros((10, rows.shape[1]), np.float32)])  # anchors > 7
    boxes, scores, classes = decode(padded.T, None, 0.25)
    np.testing.assert_allclose(boxes, [[90, 45, 110, 55], [-0.5, -0.5, 0.5, 0.5]])
    np.testing.assert_allclose(scores, [0.9, 0.6], rtol=1e-6)
    assert classes.tolist() == [0, 2]


def test_decode_multiplies_a_yolov5_head_s_objectness_into_its_class_scores():
    rows = yolo_head([[100, 50, 20, 10], [30, 30, 4, 4]], [[0.8, 0.2], [0.9, 0.1]], [0.5, 0.2])
    padded = np.concatenate([rows, np.zeros((10, rows.shape[1]), np.float32)])
    boxes, scores, classes = decode(padded, None, 0.25)
    np.testing.assert_allclose(boxes, [[90, 45, 110, 55]])
    np.testing.assert_allclose(scores, [0.4], rtol=1e-6)
    assert classes.tolist() == [0]


def test_decode_tells_the_head_by_the_number_of_class_names():
    rows = yolo_head([[10, 10, 4, 4]] * 3, [[0.1, 0.9]] * 3, [0.5] * 3)  # [3, 7]: anchors < 7
    boxes, scores, classes = decode(rows, ["a", "b"], 0.25)
    np.testing.assert_allclose(scores, [0.45] * 3, rtol=1e-6)
    boxes, scores, classes = decode(rows, ["a", "b", "c"], 0.25)  # 7 = 4 + 3: no objectness
    np.testing.assert_allclose(scores, [0.9] * 3, rtol=1e-6)
    assert classes.tolist() == [2] * 3
    with pytest.raises(ValueError, match="neither 4 \\+ 4 nor 5 \\+ 4"):
        decode(rows, ["a", "b", "c", "d"], 0.25)


def test_letterboxed_boxes_map_back_to_the_image_s_pixels(yolo):
    image = np.zeros((300, 451, 3), np.uint8)
    array, letterbox = yolo.preprocess(image)
    assert array.shape == (3, 640, 640) and array.dtype == np.float32
    gain = 640 / 451
    assert letterbox.gain == pytest.approx(gain)
    top = letterbox.pad_y
    assert top == round((640 - round(300 * gain)) / 2 - 0.1)
    np.testing.assert_allclose(array[:, : int(top) - 1], 114 / 255, rtol=1e-6)  # gray padding
    assert np.all(array[:, int(top) + 1 : int(top) + 300] == 0)  # the (black) image
    in_image = np.array([[10.0, 20.0, 400.0, 290.0]])
    in_input = in_image * gain + [letterbox.pad_x, letterbox.pad_y] * 2
    np.testing.assert_allclose(to_image_pixels(in_input, letterbox), in_image, atol=1e-9)


def test_boxes_are_clipped_to_the_image():
    letterbox = Letterbox(height=100, width=200, gain=1.0, pad_x=0, pad_y=0)
    clipped = to_image_pixels(np.array([[-5.0, -5.0, 250.0, 150.0]]), letterbox)
    assert clipped.tolist() == [[0, 0, 200, 100]]


# --- yolo on a trained detector and real photographs ---------------------------------------------


def test_yolo_finds_what_is_in_real_photographs(yolo, photos):
    names = ["astronaut.png", "chelsea.png", "coffee.png"]
    out = yolo(images=[photos[name] for name in names], conf_thres=0.5)
    assert yolo.class_names[0] == "person" and len(yolo.class_names) == 80  # model's metadata
    for labels, expected in zip(out.labels, ["person", "cat", "cup"]):
        assert expected in labels
    height, width = load_rgb(photos["chelsea.png"]).shape[:2]
    for box in out.boxes[1]:
        assert 0 <= box[0] < box[2] <= width and 0 <= box[1] < box[3] <= height
    assert all(score >= 0.5 for scores in out.scores for score in scores)
    assert set(out.timings) == {"pre_process", "engine_forward", "post_process", "total"}


def test_yolo_takes_paths_bytes_arrays_and_pil_images_alike(yolo, photos):
    path = photos["coffee.png"]
    data = path.read_bytes()
    image = Image.open(io.BytesIO(data))
    out = yolo(images=[str(path), data, np.asarray(image.convert("RGB")), image])
    assert all(boxes == out.boxes[0] for boxes in out.boxes[1:])
    assert out.boxes[0]


def test_max_detections_and_conf_thres_limit_the_boxes(yolo, photos):
    many = yolo(images=photos["coffee.png"], conf_thres=0.01)
    assert len(many.boxes[0]) > 2
    assert len(yolo(images=photos["coffee.png"], conf_thres=0.01, max_detections=2).boxes[0]) == 2
    assert yolo(images=photos["rocket.jpg"], conf_thres=0.99).boxes == [[]]


@pytest.mark.parametrize(
    "options,message",
    [
        ({"conf": 0.5}, "unknown option"),
        ({"iou_thres": 2}, "within"),
        ({"max_detections": 0}, "least"),
    ],
)
def test_bad_options_are_errors(yolo, photos, options, message):
    with pytest.raises(ValueError, match=message):
        yolo(images=photos["coffee.png"], **options)


def test_ortsparse_engine_gives_onnxruntime_s_boxes_on_a_pruned_detector(photos, tmp_path):
    # One-shot 80% pruning without retraining leaves no confident detection: all are compared.
    model = pruned(MODELS["yolov8n"], 0.8, 1)
    images = [photos["astronaut.png"], photos["coffee.png"]]
    options = {"conf_thres": 0.0, "max_detections": 20}
    reference = Pipeline.create("yolo", model, engine_type="onnxruntime")(images, **options)
    assert all(len(boxes) == 20 for boxes in reference.boxes)
    sparse = Pipeline.create("yolo", model, cache_dir=tmp_path, verify=False)
    assert sparse.session.ortsparse_model.has_ortsparse_ops
    assert_same_detections(sparse(images, **options), reference)


def assert_same_detections(actual, expected):
    assert actual.labels == expected.labels
    for got, want in zip(actual.boxes, expected.boxes):
        np.testing.assert_allclose(np.reshape(got, (-1, 4)), np.reshape(want, (-1, 4)), atol=0.05)
    for got, want in zip(actual.scores, expected.scores):
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_a_batch_of_any_length_runs_in_batches_of_the_engine_s_size(photos):
    model = fetch(MODELS["yolov8n_320"])  # dynamic batch, height and width
    one_at_a_time = Pipeline.create("yolo", model, engine_type="onnxruntime", image_size=320)
    by_two = Pipeline.create("yolo", model, engine_type="onnxruntime", image_size=320, batch_size=2)
    images = [photos[name] for name in ("astronaut.png", "chelsea.png", "coffee.png")]
    expected = one_at_a_time(images)
    actual = by_two(images)
    assert_same_detections(actual, expected)
    assert by_two.timings.calls == 1 and by_two.timings.images == 3


def test_a_fixed_batch_model_gets_its_last_short_batch_padded(tmp_path):
    # Y = the mean of each colour channel: its best "class" is the image's dominant colour.
    model = tiny_image_model(tmp_path / "m.onnx", [2, 3, 16, 16])
    pipeline = Pipeline.create(
        "image_classification", model, batch_size=2, engine_type="onnxruntime"
    )
    colours = [np.zeros((20, 30, 3), np.uint8) for _ in range(3)]
    for channel, image in enumerate(colours):
        image[:, :, channel] = 255
    assert pipeline(images=colours).labels == [["0"], ["1"], ["2"]]


def test_a_fixed_batch_model_refuses_another_batch_size():
    with pytest.raises(ValueError, match="batches of 1"):
        Pipeline.create("yolo", fetch(MODELS["yolov8n"]), batch_size=2, engine_type="onnxruntime")


# --- image_classification -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def classifier():
    model = fetch(MODELS["lcnet_cls"])
    return Pipeline.create(
        "image_classification", model, engine_type="onnxruntime", class_names=ORIENTATIONS
    )


def test_classifier_tells_a_photograph_s_orientation(classifier, photos):
    photo = load_rgb(photos["astronaut.png"])
    turned = [photo, np.rot90(photo, 2)]  # upright, and upside down
    out = classifier(images=turned, top_k=2)
    assert [labels[0] for labels in out.labels] == ["0", "180"]
    assert all(len(labels) == 2 for labels in out.labels)
    assert all(scores[0] > 0.5 and scores[0] >= scores[1] for scores in out.scores)


def test_classification_preprocessing_is_resize_crop_and_imagenet_normalisation(classifier):
    gray = np.full((300, 500, 3), 128, np.uint8)
    array, _ = classifier.preprocess(gray)
    assert array.shape == (3, 224, 224)
    expected = (128 / 255 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(array[:, 100, 100], expected, rtol=1e-5)
    # The centre crop of a left-to-right ramp keeps its middle.
    ramp = np.tile(np.linspace(0, 255, 512).astype(np.uint8)[None, :, None], (256, 1, 3))
    cropped, _ = classifier.preprocess(ramp)
    middle = (cropped[0, 112, 112] * IMAGENET_STD[0] + IMAGENET_MEAN[0]) * 255
    assert middle == pytest.approx(127.5, abs=2)


def test_logits_go_through_softmax_and_probabilities_stay():
    logits = np.array([2.0, 1.0, -1.0])
    expected = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(probabilities(logits), expected)
    np.testing.assert_allclose(probabilities(expected.astype(np.float32)), expected, rtol=1e-6)


# --- model reading and inputs --------------------------------------------------------------------


def tiny_image_model(path, dims, metadata=None):
    """Y = GlobalAveragePool(images) [batch, 3, 1, 1]: an image model of the given input dims."""
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["images"], ["Y"])],
        "tiny",
        [helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, None)],
    )
    model = newest_model_versions().make_model(graph)
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def test_input_size_from_fixed_dims_then_metadata_then_argument(tmp_path):
    dynamic = ["batch", 3, "height", "width"]
    fixed = tiny_image_model(tmp_path / "fixed.onnx", [1, 3, 96, 128])
    with_imgsz = tiny_image_model(tmp_path / "imgsz.onnx", dynamic, {"imgsz": "[320, 256]"})
    bare = tiny_image_model(tmp_path / "bare.onnx", dynamic)

    def size(model, **kwargs):
        pipeline = Pipeline.create(
            "image_classification", model, engine_type="onnxruntime", **kwargs
        )
        return pipeline.image_height, pipeline.image_width

    assert size(fixed) == (96, 128)
    assert size(with_imgsz) == (320, 256)
    assert size(bare) == (224, 224)
    assert size(bare, image_size=160) == (160, 160)
    assert size(bare, image_size=[64, 96]) == (64, 96)
    with pytest.raises(ValueError, match="fixed at 96x128"):
        size(fixed, image_size=640)


def test_class_names_from_metadata_a_list_or_a_json_file(tmp_path):
    names = "{0: 'person', 1: 'bicycle', 2: 'car'}"  # as Ultralytics writes them
    model = tiny_image_model(tmp_path / "m.onnx", [1, 3, 8, 8], {"names": names})

    def class_names(**kwargs):
        return Pipeline.create("yolo", model, engine_type="onnxruntime", **kwargs).class_names

    assert class_names() == ["person", "bicycle", "car"]
    assert class_names(class_names=["a", "b"]) == ["a", "b"]
    (tmp_path / "names.json").write_text(json.dumps({"0": "x", "2": "z"}))
    assert class_names(class_names=tmp_path / "names.json") == ["x", "1", "z"]
    with pytest.raises(ValueError, match="cannot read"):
        class_names(class_names=tmp_path / "missing.json")


@pytest.mark.parametrize(
    "dims,message",
    [([1, 3, 8], "\\[batch, 3, height, width\\]"), ([1, 1, 8, 8], "\\[1, 1, 8, 8\\]")],
)
def test_a_model_that_takes_no_images_is_refused(tmp_path, dims, message):
    model = tiny_image_model(tmp_path / "m.onnx", dims)
    with pytest.raises(ValueError, match=message):
        Pipeline.create("yolo", model, engine_type="onnxruntime")


def test_unknown_task_and_engine_are_errors(tmp_path):
    model = tiny_image_model(tmp_path / "m.onnx", [1, 3, 8, 8])
    with pytest.raises(ValueError, match="unknown task 'segmentation'"):
        Pipeline.create("segmentation", model)
    with pytest.raises(ValueError, match="engine_type"):
        Pipeline.create("yolo", model, engine_type="tensorrt")


@pytest.mark.parametrize(
    "image,message",
    [
        (b"", "empty"),
        (b"hello, not an image", "not an image"),
        ("/nonexistent/photo.jpg", "no image file"),
        (np.zeros((4, 4, 2), np.uint8), "height, width, 3 or 4"),
        (np.zeros((4, 4, 3), np.int32), "uint8 or float"),
        (3.5, "path, bytes, a numpy array or a PIL image"),
    ],
    ids=["empty", "text", "missing", "two-channels", "int32", "float"],
)
def test_what_is_not_an_image_is_an_image_error(image, message):
    with pytest.raises(ImageError, match=message):
        load_rgb(image)


def test_arrays_in_other_forms_become_rgb_uint8():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert load_rgb(gray).shape == (3, 4, 3)
    rgba = np.zeros((2, 2, 4), np.uint8)
    assert load_rgb(rgba).shape == (2, 2, 3)
    assert load_rgb(np.ones((2, 2, 3), np.float32)).max() == 255


def test_timings_add_up():
    total = Timings()
    total.add(Timings(0.001, 0.002, 0.003, calls=1, images=2))
    total.add(Timings(0.001, 0.002, 0.003, calls=1, images=2))
    assert total.as_dict() == pytest.approx(
        {"pre_process": 2, "engine_forward": 4, "post_process": 6, "total": 12}
    )
    assert (total.calls, total.images) == (2, 4)


# --- the commands --------------------------------------------------------------------------------


def ortsparse_command(*arguments):
    return subprocess.run(
        [sys.executable, "-m", "ortsparse", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_annotate_draws_the_detections_onto_each_image(photos, tmp_path):
    sources = tmp_path / "photos"
    sources.mkdir()
    for name in ("astronaut.png", "chelsea.png"):
        shutil.copy(photos[name], sources / name)
    (sources / "notes.txt").write_text("not an image, not read")
    out = tmp_path / "annotated"
    model = fetch(MODELS["yolov8n"])
    result = ortsparse_command(
        "annotate",
        "--model_path",
        model,
        "--source",
        sources,
        "--out",
        out,
        "--engine-type",
        "onnxruntime",
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["astronaut.png", "chelsea.png"]
    assert "chelsea.png: 1 detection(s) (cat)" in result.stdout
    original = load_rgb(sources / "chelsea.png")
    annotated = load_rgb(out / "chelsea.png")
    assert annotated.shape == original.shape
    changed = np.any(annotated != original, axis=2)
    assert 0 < changed.mean() < 0.2  # the box's outline and caption, not the whole image


def test_annotate_without_images_is_a_one_line_error(tmp_path):
    result = ortsparse_command(
        "annotate", "--model_path", fetch(MODELS["yolov8n"]), "--source", tmp_path / "none"
    )
    assert result.returncode == 2
    assert "no image or directory" in result.stderr and "Traceback" not in result.stderr


def test_benchmark_pipeline_prints_each_stage(photos):
    result = ortsparse_command(
        "benchmark",
        fetch(MODELS["yolov8n"]),
        "--pipeline",
        "yolo",
        "--images",
        photos["coffee.png"],
        "-t",
        "0.5",
        "-w",
        "0",
        "-e",
        "onnxruntime",
        "-q",
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    assert lines["Pipeline"] == "yolo on onnxruntime"
    stages = ["Pre-processing", "Engine", "Post-processing"]
    values = [float(lines[f"{stage} (ms/batch)"]) for stage in stages]
    assert all(value > 0 for value in values)
    assert float(lines["Total (ms/batch)"]) == pytest.approx(sum(values), abs=1e-3)


def test_benchmark_pipeline_refuses_what_it_does_not_take():
    result = ortsparse_command(
        "benchmark", fetch(MODELS["yolov8n"]), "--pipeline", "yolo", "-s", "async"
    )
    assert result.returncode == 2 and "does not take -s async" in result.stderr
