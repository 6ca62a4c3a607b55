"""`ortsparse server`, started as users start it (the CLI, uvicorn on 127.0.0.1 on a free port),
talked to over HTTP with httpx: real photographs, bad uploads, parallel requests, several
endpoints from a YAML file, graceful shutdown. The detector is YOLOv8n on COCO
(tools/model_zoo.py) on the default engine (ortsparse's drop-in session), and the same pruned to
80% on ortsparse's rewrite. One-shot 80% pruning without retraining leaves it no confident
detection, so that one is compared with the local pipeline at conf_thres 0."""

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from ortsparse import Pipeline

from tools.model_zoo import MODELS, fetch, pruned
from tools.sample_images import sample_images

STARTUP_SECONDS = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    def __init__(self, arguments, cache_dir):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {**os.environ, "ORTSPARSE_CACHE_DIR": str(cache_dir)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ortsparse", "server", *arguments, "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=environment,
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server stopped:\n{self.process.stdout.read()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.process.kill()
        raise RuntimeError("the server did not start in time")

    def stop(self, sig=signal.SIGTERM) -> tuple[int, str]:
        self.process.send_signal(sig)
        output, _ = self.process.communicate(timeout=30)
        return self.process.returncode, output


@pytest.fixture(scope="module")
def photos():
    return sample_images()


@pytest.fixture(scope="module")
def detector():
    return fetch(MODELS["yolov8n"])


@pytest.fixture(scope="module")
def server(detector, tmp_path_factory):
    running = Server(
        ["--task", "yolo", "--model_path", str(detector), "--workers", "2"],
        tmp_path_factory.mktemp("cache"),
    )
    yield running
    running.stop()


def post_files(server, *files, field="request", params=None):
    return httpx.post(
        f"{server.url}/predict/from_files",
        files=[(field, file) for file in files],
        params=params,
        timeout=60,
    )


def assert_same_detections(answer, local):
    assert answer["labels"] == local.labels
    np.testing.assert_allclose(answer["boxes"], local.boxes, atol=0.05)
    np.testing.assert_allclose(answer["scores"], local.scores, atol=1e-4)


def test_a_photograph_posted_as_a_file_gives_the_pipeline_s_boxes(
    server, photos, detector, tmp_path
):
    path = photos["coffee.png"]
    response = post_files(server, (path.name, path.read_bytes(), "image/png"))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == {"boxes", "scores", "labels", "timings_ms"}
    assert "cup" in answer["labels"][0]
    local = Pipeline.create("yolo", detector, cache_dir=tmp_path)(images=[str(path)])
    assert_same_detections(answer, local)


def test_the_pruned_detector_on_ortsparse_s_rewrite_answers_as_the_pipeline(photos, tmp_path):
    model = pruned(MODELS["yolov8n"], 0.8, 1)
    server = Server(["--task", "yolo", "--model_path", str(model), "--no-verify"], tmp_path)
    try:
        path = photos["astronaut.png"]
        options = {"conf_thres": 0.0, "max_detections": 10}
        answer = post_files(server, (path.name, path.read_bytes()), params=options).json()
    finally:
        server.stop()
    pipeline = Pipeline.create("yolo", model, cache_dir=tmp_path, verify=False)
    assert pipeline.session.ortsparse_model.has_ortsparse_ops
    local = pipeline(images=[path], **options)
    assert len(local.boxes[0]) == 10
    assert_same_detections(answer, local)


def test_several_files_in_one_request_and_query_options(server, photos):
    files = [(name, photos[name].read_bytes()) for name in ("astronaut.png", "chelsea.png")]
    answer = post_files(server, *files, params={"conf_thres": 0.5}).json()
    assert "person" in answer["labels"][0] and "cat" in answer["labels"][1]
    assert min(score for scores in answer["scores"] for score in scores) >= 0.5


def test_json_predict_takes_base64_images_and_options(server, photos):
    image = base64.b64encode(photos["chelsea.png"].read_bytes()).decode()
    response = httpx.post(
        f"{server.url}/predict", json={"images": [image], "max_detections": 1}, timeout=60
    )
    assert response.status_code == 200, response.text
    assert response.json()["labels"] == [["cat"]]


@pytest.mark.parametrize(
    "files,field,status,message",
    [
        ([("notes.txt", b"plain text")], "request", 400, "notes.txt: the data is not an image"),
        ([("empty.png", b"")], "request", 400, "empty"),
        ([("photo.png", b"\x89PNG")], "image", 400, "multipart field 'request'"),
    ],
    ids=["text-file", "empty-file", "wrong-field"],
)
def test_bad_uploads_are_4xx_and_the_server_keeps_serving(
    server, photos, files, field, status, message
):
    response = post_files(server, *files, field=field)
    assert response.status_code == status
    assert message in response.json()["detail"]
    path = photos["coffee.png"]
    assert post_files(server, (path.name, path.read_bytes())).status_code == 200


def test_bad_json_bodies_and_options_are_4xx(server):
    assert httpx.post(f"{server.url}/predict", content=b"{", timeout=10).status_code == 400
    assert (
        httpx.post(f"{server.url}/predict", json={"images": ["@@"]}, timeout=10).status_code == 400
    )
    response = httpx.post(f"{server.url}/predict", json={"images": [], "bogus": 1}, timeout=10)
    assert response.status_code == 422


def test_parallel_requests_all_get_their_own_answers(server, photos):
    names = ["astronaut.png", "chelsea.png", "coffee.png"] * 4
    expected = {"astronaut.png": "person", "chelsea.png": "cat", "coffee.png": "cup"}

    def ask(name):
        return name, post_files(server, (name, photos[name].read_bytes()))

    with ThreadPoolExecutor(6) as pool:
        for name, response in pool.map(ask, names):
            assert response.status_code == 200
            assert expected[name] in response.json()["labels"][0]


def test_health_metadata_and_openapi(server):
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    (model,) = httpx.get(f"{server.url}/v2/models").json()["models"]
    assert model["task"] == "yolo" and model["engine_type"] == "ortsparse"
    assert model["image_size"] == [640, 640]
    assert httpx.get(f"{server.url}/v2/models/{model['name']}").json() == model
    assert httpx.get(f"{server.url}/v2/models/{model['name']}/ready").json() == {"ready": True}
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert "/predict/from_files" in paths and "/predict" in paths
    assert httpx.get(f"{server.url}/docs").status_code == 200


def test_oversized_uploads_are_refused(detector, photos, tmp_path):
    small = Server(
        [
            "--task",
            "yolo",
            "--model_path",
            str(detector),
            "--engine-type",
            "onnxruntime",
            "--max-upload-bytes",
            "1000",
        ],
        tmp_path,
    )
    try:
        path = photos["coffee.png"]
        response = post_files(small, (path.name, path.read_bytes()))
        assert response.status_code == 413
    finally:
        code, output = small.stop(signal.SIGINT)
    assert code == 0 and "Shutting down" in output


def test_endpoints_from_a_yaml_file(tmp_path, photos):
    config = tmp_path / "server.yaml"
    config.write_text(
        f"""
endpoints:
  - task: yolo
    model: {fetch(MODELS["yolov8n"])}
    route: /detect
    engine_type: onnxruntime
  - task: image_classification
    model: {fetch(MODELS["lcnet_cls"])}
    route: /orientation
    engine_type: onnxruntime
    kwargs:
      class_names: ["0", "90", "180", "270"]
"""
    )
    server = Server(["--config", str(config)], tmp_path)
    try:
        path = photos["astronaut.png"]
        detected = httpx.post(
            f"{server.url}/detect/predict/from_files", files={"request": path.read_bytes()}
        ).json()
        assert "person" in detected["labels"][0]
        classified = httpx.post(
            f"{server.url}/orientation/predict/from_files", files={"request": path.read_bytes()}
        ).json()
        assert classified["labels"] == [["0"]]
        names = {model["name"] for model in httpx.get(f"{server.url}/v2/models").json()["models"]}
        assert names == {"detect", "orientation"}
    finally:
        code, output = server.stop()
    # uvicorn finishes its shutdown, then ends by the signal it caught, as the convention is.
    assert code == -signal.SIGTERM and "Finished server process" in output


@pytest.mark.parametrize(
    "content,message",
    [
        ("endpoints: []", "no endpoints"),
        ("endpoints:\n  - task: yolo\n    modle: m.onnx", "unknown key(s) ['modle']"),
        ("endpoints:\n  - model: m.onnx", "missing ['task']"),
        ("port: [", "not valid YAML"),
        ("endpoints:\n  - {task: yolo, model: m.onnx, kwargs: {size: 3}}", "unknown ['size']"),
        (
            "endpoints:\n  - {task: yolo, model: a.onnx}\n  - {task: yolo, model: b.onnx}",
            "each needs its own route",
        ),
    ],
    ids=["empty", "typo", "missing-task", "bad-yaml", "bad-kwargs", "no-routes"],
)
def test_a_bad_config_is_a_one_line_error(tmp_path, content, message):
    config = tmp_path / "server.yaml"
    config.write_text(content)
    result = subprocess.run(
        [sys.executable, "-m", "ortsparse", "server", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_config_and_endpoint_options_do_not_go_together(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ortsparse", "server", "--config", "s.yaml", "--batch-size", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "go in the file" in result.stderr
