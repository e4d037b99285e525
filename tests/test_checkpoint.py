from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

import resnetlab
from resnetlab.atomic import atomic_write
from resnetlab.checkpoint import load_checkpoint, load_model, read_info, save_checkpoint, save_model
from resnetlab.errors import ModelFileError
from resnetlab.info import ModelInfo


def _model_and_info(name="resnet20", **options):
    torch.manual_seed(0)
    model = resnetlab.create_model(name, num_classes=3, in_chans=1, **options)
    with torch.no_grad():  # non-trivial BN statistics so a lost buffer would show
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    info = ModelInfo(arch=model.arch, class_names=["cat", "dog", "owl"], input_size=(1, 16, 16), mean=(0.4,),
                     std=(0.2,), interpolation="bicubic", training={"dataset": "toy", "epochs": 2})
    return model.eval(), info


@pytest.mark.parametrize("suffix", [".safetensors", ".h5"])
@pytest.mark.parametrize("name, options", [("resnet20", {}), ("resnet18", {"stem": "small"}),
                                           ("tutorial_cnn", {"img_size": 16}), ("preact_resnet110", {}),
                                           ("resnet8_airbench", {"activation": "gelu"}),  # fast-cifar's GELU
                                           ("resnet8_airbench", {"shortcut_layers": [2, 3]})])
def test_round_trip_gives_identical_outputs(tmp_path, suffix, name, options):
    model, info = _model_and_info(name, **options)
    path = save_model(tmp_path / f"model{suffix}", model, info)
    loaded, loaded_info = load_model(path)
    images = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(images), loaded(images))
    assert loaded_info == info
    assert not loaded.training


def test_formats_are_told_apart_by_content_not_name(tmp_path):
    model, info = _model_and_info()
    h5 = save_model(tmp_path / "model.h5", model, info)
    renamed = tmp_path / "model.safetensors"
    h5.rename(renamed)
    _, loaded_info = load_model(renamed)
    assert loaded_info.class_names == ["cat", "dog", "owl"]
    assert renamed.read_bytes()[:4] == b"\x89HDF"


def test_safetensors_metadata_is_plain_json(tmp_path):
    from safetensors import safe_open

    model, info = _model_and_info()
    path = save_model(tmp_path / "m.safetensors", model, info)
    with safe_open(str(path), "pt") as handle:
        meta = json.loads(handle.metadata()["resnetlab"])
    assert meta["arch"] == {"name": "resnet20", "num_classes": 3, "in_chans": 1, "options": {}}
    assert meta["mean"] == [0.4] and meta["input_size"] == [1, 16, 16] and meta["version"] == resnetlab.__version__
    assert read_info(path) == info


def test_unknown_suffix_on_save(tmp_path):
    model, info = _model_and_info()
    with pytest.raises(ModelFileError, match=r"\*.safetensors or \*.h5"):
        save_model(tmp_path / "model.bin", model, info)


def test_bad_files_get_clear_errors(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "nope.safetensors")
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty"):
        load_model(empty)
    text = tmp_path / "notes.h5"
    text.write_text("hello, this is not a model")
    with pytest.raises(ModelFileError, match="not a resnetlab model file"):
        load_model(text)
    pickle_file = tmp_path / "weights.pth"
    torch.save({"a": torch.zeros(2)}, pickle_file)
    with pytest.raises(ModelFileError, match="never need unpickling"):
        load_model(pickle_file)
    with pytest.raises(ModelFileError, match="is a folder"):
        load_model(tmp_path)


def test_truncated_file(tmp_path):
    model, info = _model_and_info()
    path = save_model(tmp_path / "m.safetensors", model, info)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        load_model(path)


def test_bare_state_dict_without_metadata(tmp_path):
    from safetensors.torch import save_file

    model, _ = _model_and_info()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "bare.safetensors"))
    with pytest.raises(ModelFileError, match="no resnetlab metadata"):
        load_model(tmp_path / "bare.safetensors")


def test_mismatched_tensors_are_listed(tmp_path):
    from safetensors.torch import save_file

    model, info = _model_and_info()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    del state["fc.bias"]
    state["fc.weight"] = torch.zeros(5, 64)
    state["extra.weight"] = torch.zeros(1)
    save_file(state, str(tmp_path / "bad.safetensors"), metadata={"resnetlab": json.dumps(info.to_dict())})
    with pytest.raises(ModelFileError) as err:
        load_model(tmp_path / "bad.safetensors")
    message = str(err.value)
    assert "1 missing: fc.bias" in message and "1 unexpected: extra.weight" in message
    assert "fc.weight (5, 64) (model: (3, 64))" in message


def test_inconsistent_metadata(tmp_path):
    model, info = _model_and_info()
    data = info.to_dict()
    data["class_names"] = ["a", "b"]
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "m.safetensors"),
              metadata={"resnetlab": json.dumps(data)})
    with pytest.raises(ModelFileError, match="2 class names for 3 outputs"):
        load_model(tmp_path / "m.safetensors")


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"previous good file")

    def crash(tmp: Path) -> None:
        tmp.write_bytes(b"half a fi")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, crash)
    assert target.read_bytes() == b"previous good file"
    assert os.listdir(tmp_path) == ["model.safetensors"]  # no temporary file left behind


def test_training_checkpoint_restores_optimizer_and_loads_as_a_model(tmp_path):
    model, info = _model_and_info()
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.randn(4, 1, 16, 16)).sum().backward()
        optimizer.step()
    path = save_checkpoint(tmp_path / "last.safetensors", model, info, optimizer, {"epoch": 2},
                           extra_tensors={"rng": torch.arange(3)})
    fresh, _ = _model_and_info()
    fresh_opt = torch.optim.SGD(fresh.parameters(), lr=0.5, momentum=0.9)
    state = load_checkpoint(path, fresh, fresh_opt)
    assert state["epoch"] == 2 and torch.equal(state["tensors"]["rng"], torch.arange(3))
    saved, restored = optimizer.state_dict()["state"], fresh_opt.state_dict()["state"]
    assert saved.keys() == restored.keys()
    for key in saved:
        assert torch.equal(saved[key]["momentum_buffer"], restored[key]["momentum_buffer"])
    assert fresh_opt.param_groups[0]["lr"] == 0.1
    as_model, _ = load_model(path)  # a checkpoint is also a model file
    for (k, v), (k2, v2) in zip(model.state_dict().items(), as_model.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    with pytest.raises(ModelFileError, match="not a training checkpoint"):
        load_checkpoint(save_model(tmp_path / "plain.safetensors", model, info), fresh)


def test_half_precision_file_loads_as_float32_and_wrong_types_are_refused(tmp_path):
    from safetensors.torch import save_file

    model, info = _model_and_info()
    path = save_model(tmp_path / "half.safetensors", model.half(), info)
    loaded, _ = load_model(path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    with torch.no_grad():
        assert torch.isfinite(loaded(torch.randn(2, 1, 16, 16))).all()
    state = {k: v.contiguous() for k, v in model.float().state_dict().items()}
    state["fc.weight"] = state["fc.weight"].to(torch.int32)
    save_file(state, str(tmp_path / "ints.safetensors"), metadata={"resnetlab": json.dumps(info.to_dict())})
    with pytest.raises(ModelFileError, match="fc.weight of torch.int32"):
        load_model(tmp_path / "ints.safetensors")


def test_written_files_get_ordinary_permissions(tmp_path):
    model, info = _model_and_info()
    old = os.umask(0o022)
    try:
        path = save_model(tmp_path / "m.safetensors", model, info)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600
