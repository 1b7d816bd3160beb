"""Tasks read from the graph, and their decoders on synthetic outputs shaped like the real heads.

The zoo models that need new ops (YOLOv8n, DeepLab, MoveNet, traffic) are imported here (import does
not need the ops) to check task detection; their end-to-end golden checks are in test_zoo_golden.py.
The CLI is driven end to end with one-op RESHAPE graphs whose output has a real head's shape, so the
planted image pixels become known boxes, class maps and keypoints.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from engine import labels as lab
from engine import pose, segment, yolo
from engine.formats.tflite import import_tflite
from engine.tasks import Task, detect_task, task_for
from tests.cli_env import make_cli
from tests.harness import Net


@pytest.fixture
def cli(tmp_path, models_dir):
    return make_cli(tmp_path, models_dir)


# ---------------------------------------------------------------- task detection on the real graphs


@pytest.mark.parametrize(
    "file, task",
    [
        ("zoo/yolov8n_full_integer_quant.tflite", Task("detect", "yolov8", (0,))),
        ("zoo/deeplabv3_mnv2_dm05_pascal_quant.tflite", Task("segment", "argmax", (0,))),
        ("zoo/movenet_single_pose_lightning_ptq.tflite", Task("pose", "movenet", (0,))),
        ("zoo/traffic_model.tflite", Task("detect", "postprocess", (0, 1, 2, 3))),
        ("ssd_mobilenet_v1_coco_uint8.tflite", Task("detect", "postprocess", (0, 1, 2, 3))),
        ("zoo/mobilenet_v1_0.25_128_quant.tflite", Task("classify", "", (0,))),
        ("zoo/split_concat.tflite", Task("classify", "", (0,))),  # feature maps, not a mask
        ("mnist_uint8.tflite", Task("classify", "", (0,))),
    ],
)
def test_task_from_the_graph(models_dir, file, task):
    g = import_tflite((models_dir / file).read_bytes(), file)
    assert detect_task(g) == task


def test_postprocess_outputs_found_by_tensor_not_position(models_dir):
    g = import_tflite((models_dir / "ssd_mobilenet_v1_coco_uint8.tflite").read_bytes(), "ssd")
    g.outputs = [g.outputs[2], g.outputs[0], g.outputs[3], g.outputs[1]]  # declared in another order
    assert detect_task(g).outputs == (1, 3, 0, 2)
    assert task_for(g, "classify").kind == "classify"  # --task overrides


# ---------------------------------------------------------------- YOLO


def yolov8_head(boxes, n: int = 100, classes: int = 80) -> np.ndarray:
    """[4 + C, N] with boxes (cx, cy, w, h, class, score) at the first anchors, zeros elsewhere."""
    out = np.zeros((4 + classes, n), np.float32)
    for i, (cx, cy, w, h, c, s) in enumerate(boxes):
        out[:4, i] = cx, cy, w, h
        out[4 + c, i] = s
    return out


def test_yolov8_decode_classwise_nms():
    head = yolov8_head(
        [
            (100, 100, 50, 50, 16, 0.9),  # dog
            (102, 101, 50, 50, 16, 0.8),  # the same dog again: suppressed (IoU ~0.9)
            (100, 100, 50, 50, 15, 0.7),  # a cat on the same spot: another class, kept
            (300, 300, 40, 40, 16, 0.6),  # another dog elsewhere: kept
            (500, 500, 40, 40, 0, 0.2),  # below the 0.25 score threshold
        ]
    )
    b = yolo.decode(head, "yolov8", (640, 640))
    assert b.classes.tolist() == [16, 15, 16]
    assert np.allclose(b.scores, [0.9, 0.7, 0.6])
    assert np.allclose(b.xyxy[0], [75, 75, 125, 125])
    # flags: a stricter IoU keeps the duplicate, a higher score threshold drops the cat and the far dog
    assert yolo.decode(head, "yolov8", (640, 640), iou_threshold=0.95).classes.tolist() == [16, 16, 15, 16]
    assert yolo.decode(head, "yolov8", (640, 640), score_threshold=0.75).classes.tolist() == [16]


def test_yolo_normalized_coordinates_are_scaled():
    head = yolov8_head([(0.5, 0.25, 0.1, 0.2, 3, 0.9)], classes=4)
    b = yolo.decode(head, "yolov8", (640, 320))
    assert np.allclose(b.xyxy[0], [288, 48, 352, 112])


def test_yolov5_objectness_multiplies():
    n, classes = 50, 3
    out = np.zeros((n, 5 + classes), np.float32)
    out[0] = [0.5, 0.5, 0.2, 0.2, 0.9, 0.1, 0.9, 0.0]  # 0.9 * 0.9 = 0.81, class 1
    out[1] = [0.2, 0.2, 0.1, 0.1, 0.3, 0.0, 0.0, 1.0]  # 0.3 * 1.0 = 0.30, class 2
    out[2] = [0.8, 0.8, 0.1, 0.1, 0.2, 0.0, 0.0, 1.0]  # objectness below the threshold
    b = yolo.decode(out, "yolov5", (320, 320))
    assert b.classes.tolist() == [1, 2] and np.allclose(b.scores, [0.81, 0.3])
    assert np.allclose(b.xyxy[0], [128, 128, 192, 192])


def test_letterbox_geometry_and_boxes_back():
    img = Image.new("RGB", (512, 430), (255, 0, 0))
    lb = yolo.Letterbox.of(img.size, (640, 640))
    assert (lb.new_w, lb.new_h, lb.left, lb.top) == (640, 538, 0, 51)
    boxed = yolo.letterbox(img, (640, 640))
    a = np.asarray(boxed)
    assert a.shape == (640, 640, 3) and (a[:51] == 114).all() and (a[51 + 538 :] == 114).all()
    assert (a[51:589, :, 0] == 255).all()
    # the letterboxed image's full area maps back to the whole image, clipped
    back = lb.to_image(np.array([[0, 51, 640, 589], [-10, 0, 700, 700]]), img.size)
    assert np.allclose(back[0], [0, 0, 512, 430]) and np.allclose(back[1], [0, 0, 512, 430])
    st = yolo.Letterbox.stretch((320, 160), (640, 640))
    assert np.allclose(st.to_image(np.array([[64, 64, 128, 128]]), (320, 160))[0], [32, 16, 64, 32])


def test_nms_keeps_order_on_equal_scores():
    boxes = yolo.Boxes(
        np.array([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]], np.float64),
        np.array([0.5, 0.5, 0.5], np.float32),
        np.array([1, 1, 1]),
    )
    kept = yolo.nms(boxes, 0.45)
    assert kept.xyxy.tolist() == [[0, 0, 10, 10], [20, 20, 30, 30]]


# ---------------------------------------------------------------- segmentation and pose


def test_segmentation_maps_and_fractions():
    argmax = np.zeros((1, 4, 4), np.int64)
    argmax[0, :2, :2] = 3
    argmax[0, 3, 3] = 12
    cmap = segment.class_maps(argmax, "argmax")[0]
    names = ["background", "aeroplane", "bicycle", "bird"]
    got = segment.fractions(cmap, names)
    assert [(g["label"], g["class_id"], g["fraction"]) for g in got] == [
        ("background", 0, 11 / 16),
        ("bird", 3, 4 / 16),
        ("class 12", 12, 1 / 16),
    ]
    logits = np.zeros((2, 2, 3, 5), np.int8)
    logits[1, :, :, 4] = 9
    maps = segment.class_maps(logits, "logits")
    assert maps.shape == (2, 2, 3) and (maps[0] == 0).all() and (maps[1] == 4).all()
    assert segment.to_size(cmap, (8, 8)).shape == (8, 8) and segment.to_size(cmap, (8, 8))[0, 0] == 3


def test_mask_file_holds_class_ids(tmp_path):
    cmap = np.arange(12).reshape(3, 4) * 20
    segment.save_mask(cmap, tmp_path / "m.png")
    with Image.open(tmp_path / "m.png") as im:
        assert im.mode == "P" and np.array_equal(np.asarray(im), cmap)


def test_overlay_tints_classes_and_draws_a_legend():
    img = Image.new("RGB", (64, 64), (128, 128, 128))
    cmap = np.zeros((8, 8), np.int64)
    cmap[4:, 4:] = 2
    out = np.asarray(segment.overlay(img, cmap, segment.fractions(cmap, None)))
    assert (out[60, 60] != 128).any() and (out[30, 60] == 128).all()  # tinted bird quarter, plain rest
    assert (out[2:8, 2:8] != 128).any()  # the legend's swatch


def test_pose_keypoints_normalized_with_names():
    out = np.zeros((1, 1, 17, 3), np.float32)
    out[0, 0, :, 0] = np.linspace(0.1, 0.9, 17)  # y
    out[0, 0, :, 1] = 0.5  # x
    out[0, 0, :, 2] = 0.8
    (pts,) = pose.keypoints(out)
    assert len(pts) == 17 and pts[0]["name"] == "nose" and pts[16]["name"] == "right_ankle"
    assert (
        pts[16]["y"] == pytest.approx(0.9) and pts[16]["x"] == 0.5 and pts[0]["score"] == pytest.approx(0.8)
    )
    drawn = np.asarray(pose.draw(Image.new("RGB", (100, 100)), pts))
    assert drawn[50, 50].any()  # the skeleton's vertical lines cross the middle


# ---------------------------------------------------------------- labels


def test_yaml_names_forms():
    assert lab.yaml_names("task: detect\nnames:\n  0: person\n  1: 'traffic light'\nimgsz: [640]\n") == [
        "person",
        "traffic light",
    ]
    assert lab.yaml_names("names:\n- cat\n- dog\nnc: 2\n") == ["cat", "dog"]
    assert lab.yaml_names("names: ['cat', 'dog']\n") == ["cat", "dog"]
    assert lab.yaml_names("names: {0: cat, 2: dog}\n") == ["cat", "class 1", "dog"]
    assert lab.yaml_names("nc: 2\n") is None


def test_shared_metadata_yaml(models_dir):
    names = lab.from_file(models_dir / "zoo/yolov8n_metadata.yaml")
    assert len(names) == 80 and names[0] == "person" and names[16] == "dog" and names[79] == "toothbrush"


def test_labels_inside_model_files(models_dir):
    data = (models_dir / "zoo/yolov8n_full_integer_quant.tflite").read_bytes()
    names, where = lab.from_model_bytes(data)
    assert names == lab.from_file(models_dir / "zoo/yolov8n_metadata.yaml") and "temp_meta.txt" in where
    names, where = lab.from_model_bytes((models_dir / "zoo/mobilenet_v1_0.25_128_quant.tflite").read_bytes())
    assert len(names) == 1001 and names[0] == "background" and "imagenet_labels.txt" in where
    assert lab.from_model_bytes((models_dir / "mnist_uint8.tflite").read_bytes()) == (None, None)


def test_python_literal_metadata_is_not_executed(tmp_path):
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("temp_meta.txt", "__import__('os').system('echo pwned')")
    assert lab.from_model_bytes(b"TFL3" + buf.getvalue()) == (None, None)


# ---------------------------------------------------------------- the CLI on synthetic heads


def reshape_model(in_shape, out_shape, dtype, scale, zp) -> bytes:
    net = Net()
    x = net.input(in_shape, dtype, scale, zp)
    y = net.tensor(out_shape, dtype, scale, zp)
    net.op("RESHAPE", [x], [y], "head", new_shape=list(out_shape))
    return net.build()


def test_cli_yolo_file_detects_decodes_and_labels(cli, tmp_path):
    # input int8 [1, 8, 16, 3], scale 1/255, zero point -128: Ultralytics' pixels/255 gives q = pixel - 128,
    # and the output [1, 6, 64] (2 classes) is the pixels / 255: plant two boxes of class 1 and one of 0
    (tmp_path / "y.tflite").write_bytes(reshape_model([1, 8, 16, 3], [1, 6, 64], "int8", 1 / 255, -128))
    head = np.zeros((6, 64), np.uint8)
    head[:, 0] = [64, 128, 64, 128, 0, 230]  # class 1, 230/255
    head[:, 1] = [66, 128, 64, 128, 0, 200]  # overlaps the first: suppressed
    head[:, 2] = [192, 64, 32, 64, 180, 0]  # class 0
    Image.fromarray(head.reshape(8, 16, 3)).save(tmp_path / "img.png")
    (tmp_path / "y_metadata.yaml").write_text("names:\n  0: cat\n  1: dog\n")
    doc = json.loads(cli("--model", "y.tflite", "--image", "img.png", "--json", "--out", "o.png").stdout)
    assert doc["task"] == "detect"
    dets = doc["results"][0]["detections"]
    assert [(d["label"], d["class_id"]) for d in dets] == [("dog", 1), ("cat", 0)]
    assert dets[0]["score"] == pytest.approx(230 / 255)
    cx, cy, w, h = 64 / 255 * 16, 128 / 255 * 8, 64 / 255 * 16, 128 / 255 * 8
    want = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
    assert dets[0]["box"] == pytest.approx([max(0, want[0]), max(0, want[1]), want[2], want[3]])
    assert dets[0]["box_normalized"] == pytest.approx([v / s for v, s in zip(dets[0]["box"], (16, 8, 16, 8))])
    assert doc["results"][0]["iou_threshold"] == 0.45
    assert (tmp_path / "o.png").is_file()
    # flags: --iou-threshold 0.99 keeps the duplicate, --score-threshold 0.75 keeps only the first dog
    doc = json.loads(
        cli("--model", "y.tflite", "--image", "img.png", "--json", "--iou-threshold", "0.99").stdout
    )
    assert len(doc["results"][0]["detections"]) == 3
    doc = json.loads(
        cli("--model", "y.tflite", "--image", "img.png", "--json", "--score-threshold", "0.75").stdout
    )
    assert [d["class_id"] for d in doc["results"][0]["detections"]] == [1]


def test_cli_segmentation_logits_overlay_mask_and_json(cli, tmp_path):
    # identity RESHAPE [1, 8, 8, 3] uint8: the logits of class c are channel c, so red pixels are class 0
    (tmp_path / "s.tflite").write_bytes(reshape_model([1, 8, 8, 3], [1, 8, 8, 3], "uint8", 1 / 255, 0))
    a = np.zeros((8, 8, 3), np.uint8)
    a[:, :4, 0] = 200  # left half: class 0
    a[:4, 4:, 1] = 200  # top right: class 1
    a[4:, 4:, 2] = 200  # bottom right: class 2
    Image.fromarray(a).save(tmp_path / "img.png")
    (tmp_path / "labels.txt").write_text("sky\ngrass\nwater\n")
    p = cli(
        "--model", "s.tflite", "--image", "img.png", "--labels", "labels.txt", "--json",
        "--out", "over.png", "--mask-out", "mask.png",
    )  # fmt: skip
    doc = json.loads(p.stdout)
    assert doc["task"] == "segment"
    assert doc["results"][0]["classes"] == [
        {"label": "sky", "class_id": 0, "fraction": 0.5},
        {"label": "grass", "class_id": 1, "fraction": 0.25},
        {"label": "water", "class_id": 2, "fraction": 0.25},
    ]
    with Image.open(tmp_path / "mask.png") as m:
        ids = np.asarray(m)
    assert (
        ids.shape == (8, 8)
        and (ids[:, :4] == 0).all()
        and (ids[:4, 4:] == 1).all()
        and (ids[4:, 4:] == 2).all()
    )
    with Image.open(tmp_path / "over.png") as o:
        assert o.size == (8, 8) or o.size[0] >= 8
    p = cli("--image", "img.png", "--mask-out", "m.png", expect=4)  # MNIST is no segmenter: said, not ignored
    assert "--mask-out writes a segmentation map; mnist answers 'classify'" in p.stderr
    text = cli("--model", "s.tflite", "--image", "img.png", "--labels", "labels.txt").stdout
    assert "sky" in text and "50.0 %" in text


def test_cli_pose_keypoints_json_and_picture(cli, tmp_path):
    # input uint8 [1, 17, 1, 3] (a 1 x 17 image) reshaped to MoveNet's [1, 1, 17, 3] = (y, x, score) * 255
    (tmp_path / "p.tflite").write_bytes(reshape_model([1, 17, 1, 3], [1, 1, 17, 3], "uint8", 1 / 255, 0))
    a = np.zeros((17, 1, 3), np.uint8)
    a[:, 0, 0] = np.arange(17) * 10 + 20  # y
    a[:, 0, 1] = 100  # x
    a[:, 0, 2] = 255  # score
    Image.fromarray(a).save(tmp_path / "img.png")
    doc = json.loads(cli("--model", "p.tflite", "--image", "img.png", "--json", "--out", "pose.png").stdout)
    assert doc["task"] == "pose"
    kps = doc["results"][0]["keypoints"]
    assert [k["name"] for k in kps] == list(pose.KEYPOINTS)
    assert kps[3]["y"] == pytest.approx(50 / 255) and kps[3]["x"] == pytest.approx(100 / 255)
    assert kps[3]["score"] == 1.0 and (tmp_path / "pose.png").is_file()
    # --task overrides the graph: the same output read as a classification
    doc = json.loads(cli("--model", "p.tflite", "--image", "img.png", "--json", "--task", "classify").stdout)
    assert doc["task"] == "classify" and "predictions" in doc["results"][0]


def test_cli_ssd_file_is_a_detector_without_the_registry(cli, models_dir, tmp_path, shared):
    # a registry that does not know the file: the task comes from the graph (the postprocess op)
    (tmp_path / "reg.json").write_text(
        json.dumps(
            {
                "files": {"x.tflite": {"url": "file:///x", "sha256": "0" * 64}},
                "models": {"x": {"file": "x.tflite"}},
            }
        )
    )
    p = cli(
        "--model", str(models_dir / "ssd_mobilenet_v1_coco_uint8.tflite"), "--image", str(shared / "data/ssd/table.jpg"),
        "--labels", str(models_dir / "coco_labelmap.txt"), "--json", env={"ENGINE_REGISTRY": str(tmp_path / "reg.json")},
    )  # fmt: skip
    doc = json.loads(p.stdout)
    assert doc["task"] == "detect"
    labels = [d["label"] for d in doc["results"][0]["detections"]]
    assert "dining table" in labels and {"cup", "knife"} & set(labels)
