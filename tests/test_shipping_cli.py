"""The shipping commands end to end: export, import-weights, and predict/evaluate on each backend and precision."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from resnetlab.checkpoint import load_model
from resnetlab.cli import main
from resnetlab.data import load_dataset
from resnetlab.deploy.inference import build_backend
from resnetlab.errors import ConfigError
from resnetlab.runtime import batched_logits

from reference_weights import synthetic_state_dict

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "torchvision_resnets.json").read_text())


@pytest.fixture()
def model_file(digits_run, tmp_path):
    target = tmp_path / "digits.safetensors"
    target.write_bytes(Path(digits_run.best_path).read_bytes())
    return target


def test_export_onnx_torchscript_and_torchvision_from_the_cli(model_file, capsys):
    assert main(["export", str(model_file), "format=onnx"]) == 0
    out = capsys.readouterr().out
    assert "onnx export" in out and "top-1 agreement 100%" in out
    graph = onnx.load(str(model_file.with_suffix(".onnx")))
    props = {p.key: p.value for p in graph.metadata_props}
    assert json.loads(props["class_names"]) == [str(i) for i in range(10)]
    assert main(["export", str(model_file), "--format", "torchscript", "--out", str(model_file.parent / "m.pt")]) == 0
    assert (model_file.parent / "m.pt").stat().st_size > 100_000 and "torchscript export" in capsys.readouterr().out
    assert main(["export", str(model_file), "format=torchvision", f"out={model_file.parent / 'sd.pth'}"]) == 0
    out = capsys.readouterr().out  # read back into a fresh model and checked, as the other formats
    assert "torchvision export" in out and "max |logit diff| 0.00e+00" in out and "strict=True" in out
    state = torch.load(model_file.parent / "sd.pth", weights_only=True)
    model, _ = load_model(model_file)
    assert list(state) == list(model.state_dict())
    assert main(["export", str(model_file), "format=torchvision", "normalize=metadata"]) == 2
    assert "normalize= applies to onnx and torchscript graphs" in capsys.readouterr().err
    assert main(["export", str(model_file), "format=coreml"]) == 2
    assert "unknown format 'coreml'; choose one of onnx, torchscript, torchvision" in capsys.readouterr().err


def test_import_weights_from_the_cli(tmp_path, capsys):
    torch.save(synthetic_state_dict(FIXTURE["models"]["resnet18"]["state_dict"]), tmp_path / "resnet18.pth")
    assert main(["import-weights", str(tmp_path / "resnet18.pth"), "arch=resnet18",
                 f"out={tmp_path / 'r18.safetensors'}"]) == 0
    out = capsys.readouterr().out
    assert "resnet18, 1000 classes (tench, " in out and "input 224x224 (resize 256 + center crop, bilinear)" in out
    assert main(["info", str(tmp_path / "r18.safetensors")]) == 0
    assert "tench" in capsys.readouterr().out
    assert main(["import-weights", str(tmp_path / "resnet18.pth"), "arch=resnet34"]) == 2
    assert "does not match its architecture resnet34" in capsys.readouterr().err
    assert main(["import-weights", str(tmp_path / "resnet18.pth")]) == 2
    assert "give the architecture the weights are for: arch=resnet50" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["torch", "onnxruntime", "openvino"])
def test_predict_on_every_backend_agrees_with_pytorch(model_file, backend, tmp_path, capsys):
    from PIL import Image

    images = load_dataset("digits").test.images[:6, 0].numpy()
    for i, image in enumerate(images):
        Image.fromarray(image, "L").save(tmp_path / f"{i}.png")
    model, info = load_model(model_file)  # the reference: the unfolded model as PyTorch runs it
    probs = torch.softmax(batched_logits(model, torch.from_numpy(images[:, None]), info), 1)
    assert main(["predict", str(model_file), str(tmp_path), "--json", "--backend", backend]) == 0
    answer = {Path(row["source"]).stem: row for row in json.loads(capsys.readouterr().out)}
    assert sorted(answer) == [str(i) for i in range(6)]
    for i, row in answer.items():
        want = probs[int(i)].sort(descending=True)
        assert row["top"][0]["label"] == info.class_names[int(want.indices[0])]
        got = [t["prob"] for t in row["top"]]
        np.testing.assert_allclose(got, want.values[:len(got)].numpy(), atol=1e-5)


def test_evaluate_at_reduced_precision_reports_the_change(model_file, capsys):
    assert main(["evaluate", str(model_file), "--precision", "int8", "--backend", "onnxruntime", "--json",
                 "--no-report"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["precision"] == "int8" and summary["backend"] == "onnxruntime"
    assert abs(summary["accuracy_change"] - (summary["accuracy"] - summary["fp32_accuracy"])) < 1e-9
    assert abs(summary["accuracy_change"]) <= 0.05  # int8 on 360 digits: within a few images of fp32
    assert main(["evaluate", str(model_file), "precision=bf16", "backend=onnxruntime", "--no-report"]) == 2
    assert "onnxruntime has no fast bf16 CPU kernels" in capsys.readouterr().err
    assert main(["evaluate", str(model_file), "precision=fp16", "--no-report"]) == 2
    assert "unknown precision 'fp16'; choose one of fp32, bf16, int8" in capsys.readouterr().err


def test_evaluate_a_folder_at_bf16_decodes_each_file_once(model_file, tmp_path, monkeypatch):
    from PIL import Image

    import resnetlab.data.stream as stream
    from resnetlab.analysis.report import evaluate

    digits = load_dataset("digits").test
    labels = digits.labels.tolist()
    for split, take in (("train", range(0, 2)), ("test", range(2, 6))):  # 2 and 4 images of each class
        for label in range(10):
            folder = tmp_path / split / str(label)
            folder.mkdir(parents=True)
            for i in [i for i, y in enumerate(labels) if y == label][take.start:take.stop]:
                Image.fromarray(digits.images[i, 0].numpy(), "L").save(folder / f"{i}.png")
    decoded = []
    read = stream.read_for_model
    monkeypatch.setattr(stream, "read_for_model", lambda path, *a: decoded.append(path) or read(path, *a))
    report = evaluate(model_file, str(tmp_path), precision="bf16", backend="torch", workers=0)
    assert sorted(decoded) == sorted(report.sources) and len(decoded) == 40  # one decode serves both passes
    reference = evaluate(model_file, str(tmp_path), precision="fp32", backend="torch", workers=0)
    assert report.extra["fp32_accuracy"] == reference.result.accuracy
    assert report.extra["accuracy_change"] == report.result.accuracy - reference.result.accuracy
    assert report.extra["backend"] == "torch" and report.result.num_samples == 40


def test_auto_measures_once_then_reuses_its_choice(digits_run, monkeypatch):
    import resnetlab.deploy.inference as inference

    model, info = load_model(digits_run.best_path)
    first = build_backend(model, info)
    assert first.name in ("torch", "onnxruntime", "openvino") and first.precision == "fp32"
    monkeypatch.setattr(inference, "_latency", lambda *a: pytest.fail("measured again"))
    assert build_backend(model, info).name == first.name
    images = np.random.default_rng(0).standard_normal((3, *info.input_size), dtype=np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(first(images), model(torch.from_numpy(images)).numpy(), atol=1e-4)


def test_int8_without_calibration_images_says_what_to_do(digits_run, tmp_path, monkeypatch):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path))  # no int8 export cached by other tests
    model, info = load_model(digits_run.best_path)
    with pytest.raises(ConfigError, match="precision=int8 needs calibration images"):
        build_backend(model, info, backend="onnxruntime", precision="int8")
    with pytest.raises(ConfigError, match="precision=int8 runs on onnxruntime or openvino"):
        build_backend(model, info, backend="torch", precision="int8")
    with pytest.raises(ConfigError, match="unknown backend 'tensorrt'"):
        build_backend(model, info, backend="tensorrt")
