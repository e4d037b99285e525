"""Model files from untrusted hands: each test is an attack that once worked, and the answer it gets now.

Everything is refused with one ModelFileError naming the file and what is wrong, before any tensor data
is read where the shape or layout already tells, and without running a pickle's code.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import resnetlab
from resnetlab.checkpoint import load_model, read_info, save_model
from resnetlab.cli import main
from resnetlab.deploy.interop import import_weights
from resnetlab.deploy.predict import Prediction
from resnetlab.errors import ModelFileError
from resnetlab.info import ModelInfo

ACCEPTS = "resnetlab reads a 'state_dict' group"  # the sentence every HDF5 refusal ends with


def _model_and_info():
    torch.manual_seed(0)
    model = resnetlab.create_model("resnet20", num_classes=3, in_chans=1)
    info = ModelInfo(arch=model.arch, class_names=["cat", "dog", "owl"], input_size=(1, 16, 16), mean=(0.5,),
                     std=(0.25,))
    return model.eval(), info


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """One saved resnet20 per format (saving fsyncs: slow on a busy disk); tests get copies."""
    folder = tmp_path_factory.mktemp("originals")
    model, info = _model_and_info()
    return {suffix: save_model(folder / f"model{suffix}", model, info) for suffix in (".h5", ".safetensors")}


@pytest.fixture
def saved(originals, tmp_path):
    """saved(suffix) -> a fresh copy of the saved model in this test's folder."""

    def copy(suffix=".h5", folder=tmp_path):
        return Path(shutil.copyfile(originals[suffix], folder / f"model{suffix}"))

    return copy


def _replace_dataset(path, key, make):
    """Swap one tensor of a resnetlab .h5 for what `make(group, key, original)` puts in its place."""
    with h5py.File(path, "a") as handle:
        group = handle["state_dict"]
        original = group[key][()]
        del group[key]
        make(group, key, original)


def _strict_json(text):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


# --- 1. HDF5 layouts that read other files, or that resnetlab never writes ------------------------------


def _external_storage(tmp_path):
    def make(group, key, original):  # the dataset's bytes are whatever file it names (/etc/passwd, ...)
        secret = tmp_path / "secret.txt"
        secret.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n".ljust(original.nbytes, b"#")[:original.nbytes])
        group.create_dataset(key, shape=original.shape, dtype=original.dtype,
                             external=[(str(secret), 0, original.nbytes)])
    return make


def _external_link(tmp_path):
    def make(group, key, original):
        with h5py.File(tmp_path / "other.h5", "w") as other:
            other.create_dataset("x", data=original)
        group[key] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/x")
    return make


def _soft_link(tmp_path):
    def make(group, key, original):
        group.file.create_dataset("elsewhere", data=original)
        group[key] = h5py.SoftLink("/elsewhere")
    return make


def _virtual(tmp_path):
    def make(group, key, original):
        with h5py.File(tmp_path / "source.h5", "w") as source:
            source.create_dataset("x", data=original)
        layout = h5py.VirtualLayout(shape=original.shape, dtype=original.dtype)
        layout[...] = h5py.VirtualSource(str(tmp_path / "source.h5"), "x", shape=original.shape)
        group.create_virtual_dataset(key, layout)
    return make


def _scaleoffset(tmp_path):  # a lossy filter h5py can write but resnetlab never does
    return lambda group, key, original: group.create_dataset(key, data=original, scaleoffset=3)


def _compound(tmp_path):
    def make(group, key, original):
        group.create_dataset(key, data=np.zeros(original.shape, dtype=[("w", "<f4"), ("b", "<i4")]))
    return make


def _string(tmp_path):
    return lambda group, key, original: group.create_dataset(key, data="not a tensor")


def _nested_group(tmp_path):
    def make(group, key, original):
        group.create_group(key).create_dataset("weight", data=original)
    return make


@pytest.mark.parametrize("attack", [_external_storage, _external_link, _soft_link, _virtual, _scaleoffset,
                                    _compound, _string, _nested_group])
def test_hdf5_reads_only_the_layout_resnetlab_writes(tmp_path, saved, attack):
    path = saved()
    _replace_dataset(path, "conv1.weight", attack(tmp_path))
    with pytest.raises(ModelFileError) as err:
        load_model(path)
    message = str(err.value)
    assert str(path) in message and "state_dict/conv1.weight" in message and ACCEPTS in message


def test_hdf5_external_link_for_the_whole_state_dict_is_refused(tmp_path, saved):
    (tmp_path / "other").mkdir()
    other = saved(folder=tmp_path / "other")
    path = tmp_path / "model.h5"
    with h5py.File(path, "w") as handle:
        with h5py.File(other, "r") as source:
            handle.attrs["resnetlab"] = source.attrs["resnetlab"]
        handle["state_dict"] = h5py.ExternalLink(str(other), "/state_dict")
    with pytest.raises(ModelFileError, match=f"'state_dict' is a ExternalLink.*{ACCEPTS}"):
        load_model(path)


def test_hdf5_with_h5pys_usual_compression_still_loads(tmp_path, saved):
    model, _ = _model_and_info()
    path = saved()
    with h5py.File(path, "a") as handle:  # as another writer would: gzip + shuffle + checksums, lzf
        group = handle["state_dict"]
        for i, key in enumerate(list(group)):
            data = group[key][()]
            del group[key]
            if data.ndim == 0:
                group.create_dataset(key, data=data)
            elif i % 2:
                group.create_dataset(key, data=data, compression="gzip", shuffle=True, fletcher32=True)
            else:
                group.create_dataset(key, data=data.astype(data.dtype.newbyteorder(">")), compression="lzf")
    loaded, _ = load_model(path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


# --- 2. files that claim huge tensors or inputs ------------------------------------------------------


@pytest.fixture
def hdf5_reads(monkeypatch):
    """Names of the HDF5 datasets whose data is read."""
    reads = []
    original = h5py.Dataset.__getitem__

    def recording(self, selection):
        reads.append(self.name)
        return original(self, selection)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", recording)
    return reads


@pytest.fixture
def safetensors_reads(monkeypatch):
    """Names of the safetensors tensors whose data is read."""
    import safetensors

    reads = []
    real_open = safetensors.safe_open

    class Recording:
        def __init__(self, *args, **kwargs):
            self._handle = real_open(*args, **kwargs)

        def __enter__(self):
            self._handle.__enter__()
            return self

        def __exit__(self, *exc):
            return self._handle.__exit__(*exc)

        def get_tensor(self, key):
            reads.append(key)
            return self._handle.get_tensor(key)

        def __getattr__(self, name):
            return getattr(self._handle, name)

    monkeypatch.setattr(safetensors, "safe_open", Recording)
    return reads


def test_a_4gib_hdf5_tensor_is_refused_from_its_shape_without_reading_it(tmp_path, saved, hdf5_reads):
    path = saved()
    _replace_dataset(path, "conv1.weight", lambda group, key, original: group.create_dataset(
        key, shape=(1024, 1024, 1024), dtype="f4", chunks=(64, 1024, 1024), compression="gzip"))  # never written
    assert path.stat().st_size < 2_000_000  # resnet20's own 1.1 MB: the 4 GiB are claimed, not stored
    hdf5_reads.clear()  # the set-up's own reads
    with pytest.raises(ModelFileError, match=r"conv1\.weight claims 4,294,967,296 bytes but stores 0"):
        load_model(path)
    assert hdf5_reads == []


def test_an_hdf5_tensor_of_the_wrong_shape_is_never_read(tmp_path, saved, hdf5_reads):
    path = saved()
    _replace_dataset(path, "fc.weight", lambda group, key, original: group.create_dataset(
        key, data=np.zeros((300, 64), "f4")))
    hdf5_reads.clear()  # the set-up's own reads
    with pytest.raises(ModelFileError, match=r"fc.weight \(300, 64\) \(model: \(3, 64\)\)"):
        load_model(path)
    assert hdf5_reads == []


def test_an_unwritten_hdf5_dataset_of_the_right_shape_is_refused(tmp_path, saved):
    # the metadata decides the model's shapes (tutorial_cnn's img_size sizes its classifier): a shape match
    # alone does not bound what HDF5 fills in for chunks that were never written
    path = saved()
    _replace_dataset(path, "layer3.0.conv2.weight", lambda group, key, original: group.create_dataset(
        key, shape=original.shape, dtype=original.dtype, chunks=True, compression="gzip"))
    with pytest.raises(ModelFileError, match=r"state_dict/layer3.0.conv2.weight claims 147,456 bytes but stores 0"):
        load_model(path)


def test_a_safetensors_tensor_of_the_wrong_shape_is_never_read(tmp_path, safetensors_reads):
    model, info = _model_and_info()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    state["fc.weight"] = torch.zeros(300, 64)
    save_file(state, str(tmp_path / "m.safetensors"), metadata={"resnetlab": json.dumps(info.to_dict())})
    with pytest.raises(ModelFileError, match=r"fc.weight \(300, 64\) \(model: \(3, 64\)\)"):
        load_model(tmp_path / "m.safetensors")
    assert safetensors_reads == []


@pytest.mark.parametrize("suffix", [".safetensors", ".h5"])
def test_read_info_reads_no_tensor(tmp_path, saved, suffix, hdf5_reads, safetensors_reads):
    path = saved(suffix)
    assert read_info(path).class_names == ["cat", "dog", "owl"]
    assert hdf5_reads == [] and safetensors_reads == []


def test_info_of_an_hdf5_file_claiming_4gib_reads_only_its_metadata(tmp_path, saved, hdf5_reads, capsys):
    path = saved()
    _replace_dataset(path, "fc.weight", lambda group, key, original: group.create_dataset(
        key, shape=(1 << 30,), dtype="f4", chunks=(1 << 26,), compression="gzip"))
    hdf5_reads.clear()  # the set-up's own reads
    assert main(["info", str(path)]) == 0
    assert _strict_json(capsys.readouterr().out)["class_names"] == ["cat", "dog", "owl"]
    assert hdf5_reads == []


# --- 3. malformed metadata: one ModelFileError naming the file and the field ---------------------------


def _info_dict():
    return _model_and_info()[1].to_dict()


def _changed(**fields):
    def change(data):
        for dotted, value in fields.items():
            target, *path = dotted.split(".")
            if path:
                data[target][path[0]] = value
            elif value is KeyError:
                del data[target]
            else:
                data[target] = value
        return json.dumps(data)
    return change


def _deep(levels):
    value = {}
    for _ in range(levels):
        value = {"a": value}
    return value


MALFORMED = {
    "deeply nested JSON": (lambda data: "[" * 100_000, "metadata"),
    "deeply nested training": (_changed(training=_deep(100)), "nests more than"),
    "not an object": (lambda data: "[1, 2]", "JSON object"),
    "too large": (_changed(training={"pad": "x" * (9 << 20)}), "characters of resnetlab metadata"),
    "no mean": (_changed(mean=KeyError), "mean"),
    "input_size empty": (_changed(input_size=[]), "input_size"),
    "input_size zero": (_changed(input_size=[1, 0, 0]), "input_size"),
    "input_size huge": (_changed(input_size=[1, 100_000, 100_000]), "input_size"),
    "input_size fractional": (_changed(input_size=[1, 16.5, 16]), "input_size"),
    "input_size text": (_changed(input_size="16"), "input_size"),
    "channels unlike the arch": (_changed(input_size=[3, 16, 16]), "input_size"),
    "mean empty per-pixel": (_changed(mean=[[]]), "mean"),
    "mean empty": (_changed(mean=[]), "mean"),
    "mean text": (_changed(mean=["x"]), "mean"),
    "mean NaN": (_changed(mean=[float("nan")]), "mean"),
    "std zero": (_changed(std=[0]), "std"),
    "std inf": (_changed(std=[float("inf")]), "std"),
    "std too long": (_changed(std=[0.2, 0.2]), "std"),
    "class_names text": (_changed(class_names="cat"), "class_names"),
    "class_names too few": (_changed(class_names=["cat"]), "class_names"),
    "num_classes inf": (lambda data: _changed()(data).replace('"num_classes": 3', '"num_classes": 1e400'),
                        "arch.num_classes"),
    "num_classes huge": (_changed(**{"arch.num_classes": 10**12}), "arch.num_classes"),
    "in_chans zero": (_changed(**{"arch.in_chans": 0}), "arch.in_chans"),
    "arch text": (_changed(arch="resnet20"), "arch"),
    "arch options text": (_changed(**{"arch.options": "x"}), "arch.options"),
    "crop_pct tiny": (_changed(crop_pct=1e-9), "crop_pct"),
    "crop_pct text": (_changed(crop_pct="0.9"), "crop_pct"),
    "interpolation number": (_changed(interpolation=5), "interpolation"),
    "training list": (_changed(training=[1]), "training"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_metadata_is_one_error_naming_file_and_field(tmp_path, case):
    change, field = MALFORMED[case]
    model, _ = _model_and_info()
    path = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"resnetlab": change(_info_dict())})
    for read in (read_info, load_model):
        with pytest.raises(ModelFileError) as err:
            read(path)
        assert str(path) in str(err.value) and field in str(err.value)


def test_an_unknown_architecture_in_metadata_names_the_file(tmp_path):
    model, _ = _model_and_info()
    path = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"resnetlab": _changed(**{"arch.name": "resnet5"})(_info_dict())})
    with pytest.raises(ModelFileError, match=r"m.safetensors: metadata field arch .*unknown model 'resnet5'"):
        load_model(path)


def test_hdf5_metadata_that_is_not_text_is_refused(tmp_path, saved):
    path = saved()
    with h5py.File(path, "a") as handle:
        handle.attrs["resnetlab"] = np.arange(10)
    with pytest.raises(ModelFileError, match=r"model.h5: HDF5 attribute 'resnetlab' is .* not one text string"):
        read_info(path)


# --- 4. NaN weights, and JSON that stays JSON ----------------------------------------------------------


def _write_unchecked(path, model, info):
    """A model file written without resnetlab's checks."""
    from resnetlab.tensorfile import META_KEY, write_hdf5, write_safetensors

    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    write = write_hdf5 if path.suffix == ".h5" else write_safetensors
    write(path, tensors, {META_KEY: json.dumps(info.to_dict())})
    return path


@pytest.mark.parametrize("suffix", [".safetensors", ".h5"])
def test_non_finite_weights_are_refused_at_save_and_at_load(tmp_path, suffix):
    model, info = _model_and_info()
    with torch.no_grad():
        model.conv1.weight[0, 0, 0, 0] = float("inf")
        model.bn1.running_var[3] = float("nan")
        model.fc.bias[1] = float("nan")
        model.layer1[0].bn1.running_mean[0] = float("nan")
    path = tmp_path / f"diverged{suffix}"
    with pytest.raises(ModelFileError, match=r"refusing to write .*diverged.* 4 tensor\(s\) hold NaN/inf"):
        save_model(path, model, info)  # resnetlab itself never writes one ...
    assert not path.exists()
    _write_unchecked(path, model, info)  # ... but another tool (or an older resnetlab) may have
    with pytest.raises(ModelFileError) as err:
        load_model(path)
    message = str(err.value)
    assert str(path) in message
    assert "4 tensor(s) hold NaN/inf: conv1.weight, bn1.running_var, layer1.0.bn1.running_mean and 1 more" in message
    assert "diverged in training" in message and "lower lr" in message


def test_importing_non_finite_weights_is_refused(tmp_path):
    model, _ = _model_and_info()
    state = model.state_dict()
    state["fc.weight"][0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    with pytest.raises(ModelFileError, match="1 tensor.s. hold NaN/inf: fc.weight"):
        import_weights(tmp_path / "nan.pth", "resnet20", tmp_path / "out.safetensors")


def test_predictions_with_nan_probabilities_are_strict_json():
    prediction = Prediction(source="a.png", labels=["cat", "dog"], probs=[float("nan"), float("inf")], indices=[0, 1])
    assert prediction.to_dict()["top"][0]["prob"] is None
    assert json.dumps([prediction.to_dict()], allow_nan=False)


def test_info_prints_strict_json_for_a_summary_with_nan(tmp_path, capsys):
    model, info = _model_and_info()
    info.training = {"val_loss": float("nan"), "history": [{"loss": float("inf")}]}
    path = save_model(tmp_path / "m.safetensors", model, info)
    assert main(["info", str(path)]) == 0
    printed = _strict_json(capsys.readouterr().out)
    assert printed["training"] == {"val_loss": None, "history": [{"loss": None}]}


# --- 5. pickles: what was refused, never "load it with weights_only=False" -----------------------------


def _assert_no_unsafe_advice(message):
    assert "weights_only=False" not in message and "set to `False`" not in message
    assert "add_safe_globals" not in message and "safe_globals(" not in message


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Prints:
    def __reduce__(self):
        return print, ("pwned",)


@pytest.mark.parametrize("legacy", [False, True])
def test_a_pickle_that_runs_a_shell_command_is_refused_by_name(tmp_path, legacy):
    marker = tmp_path / "pwned"
    model, _ = _model_and_info()
    torch.save({**model.state_dict(), "x": _RunsShell(marker)}, tmp_path / "evil.pth",
               _use_new_zipfile_serialization=not legacy)
    with pytest.raises(ModelFileError) as err:
        import_weights(tmp_path / "evil.pth", "resnet20", tmp_path / "out.safetensors")
    message = str(err.value)
    assert not marker.exists()
    assert f"{os.system.__module__}.system" in message and "save the state dict alone" in message
    _assert_no_unsafe_advice(message)


def test_import_weights_cli_names_the_refused_global(tmp_path, capsys):
    torch.save({"w": torch.zeros(1), "x": _Prints()}, tmp_path / "evil.pth")
    code = main(["import-weights", str(tmp_path / "evil.pth"), "arch=resnet20", f"out={tmp_path}/o.safetensors"])
    err = capsys.readouterr()
    assert code == 2 and "pwned" not in err.out
    assert "GLOBAL print" in err.err or "GLOBAL builtins.print" in err.err
    _assert_no_unsafe_advice(err.err)


OLDER_TORCH_REFUSALS = {  # torch 2.0-2.3 worded its refusals so; the advice must go, the name must stay
    "numpy._core.multiarray._reconstruct": "Weights only load failed. Re-running `torch.load` with `weights_only` "
    "set to `False` will likely succeed, but it can result in arbitrary code execution.Do it only if you get the "
    "file from a trusted source. WeightsUnpickler error: Unsupported class numpy._core.multiarray._reconstruct",
    "<built-in function system>": "Weights only load failed. Re-running `torch.load` with `weights_only` set to "
    "`False` will likely succeed, but it can result in arbitrary code execution.Do it only if you get the file "
    "from a trusted source. WeightsUnpickler error: Trying to call reduce for unrecognized function "
    "`<built-in function system>`",
}


@pytest.mark.parametrize("name", OLDER_TORCH_REFUSALS)
def test_older_torch_wordings_name_the_refused_global(tmp_path, monkeypatch, name):
    import pickle

    def refuse(*args, **kwargs):
        raise pickle.UnpicklingError(OLDER_TORCH_REFUSALS[name])

    torch.save({"w": torch.zeros(1)}, tmp_path / "w.pth")
    monkeypatch.setattr(torch, "load", refuse)
    with pytest.raises(ModelFileError) as err:
        import_weights(tmp_path / "w.pth", "resnet20", tmp_path / "out.safetensors")
    assert f"it holds GLOBAL {name}, which is not a tensor" in str(err.value)
    _assert_no_unsafe_advice(str(err.value))


def _truncated_zip(tmp_path):
    torch.save({"w": torch.zeros(100)}, tmp_path / "ok.pth")
    data = (tmp_path / "ok.pth").read_bytes()
    return data[:len(data) // 2]


def _truncated_legacy(tmp_path):
    torch.save({"w": torch.zeros(100)}, tmp_path / "ok.pth", _use_new_zipfile_serialization=False)
    data = (tmp_path / "ok.pth").read_bytes()
    return data[:len(data) // 2]


def _zip_of_garbage(tmp_path):
    with zipfile.ZipFile(tmp_path / "g.zip", "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02garbage")
        archive.writestr("archive/version", "3\n")
    return (tmp_path / "g.zip").read_bytes()


@pytest.mark.parametrize("content", [_truncated_zip, _truncated_legacy, _zip_of_garbage,
                                     lambda tmp_path: b"PK\x03\x04" + bytes(range(256)) * 4,
                                     lambda tmp_path: b"\x80\x02" + b"\xff" * 64])
def test_unreadable_pickles_are_called_corrupt_without_unsafe_advice(tmp_path, content):
    path = tmp_path / "weights.pth"
    path.write_bytes(content(tmp_path))
    with pytest.raises(ModelFileError) as err:
        import_weights(path, "resnet20", tmp_path / "out.safetensors")
    message = str(err.value)
    assert str(path) in message and "truncated or corrupt" in message
    _assert_no_unsafe_advice(message)


# --- 6. permission denied is not "truncated or corrupt" --------------------------------------------------


def _denied(*args, **kwargs):
    raise PermissionError(13, "Permission denied")


def test_an_unreadable_model_file_says_permission_denied(tmp_path, saved, monkeypatch):
    import resnetlab.tensorfile as tensorfile

    path = saved(".safetensors")
    monkeypatch.setattr(tensorfile, "open", _denied, raising=False)  # root reads through chmod 000
    for read in (load_model, read_info):
        with pytest.raises(ModelFileError, match=f"cannot read {path}: permission denied"):
            read(path)


@pytest.mark.parametrize("suffix", [".safetensors", ".h5"])
def test_permission_denied_inside_the_format_library_is_not_corruption(tmp_path, saved, monkeypatch, suffix):
    import safetensors

    path = saved(suffix)

    def h5_denied(*args, **kwargs):  # h5py's own wording of EACCES
        raise PermissionError(13, "Unable to synchronously open file (file open failed: errno = 13, error "
                                  "message = 'Permission denied')")

    monkeypatch.setattr(safetensors, "safe_open", _denied)
    monkeypatch.setattr(h5py, "File", h5_denied)
    with pytest.raises(ModelFileError) as err:
        load_model(path)
    assert str(err.value) == f"cannot read {path}: permission denied"


def test_an_unreadable_pth_says_permission_denied(tmp_path, monkeypatch):
    torch.save({"w": torch.zeros(1)}, tmp_path / "w.pth")
    monkeypatch.setattr(torch, "load", _denied)
    with pytest.raises(ModelFileError, match="cannot read .*w.pth: permission denied"):
        import_weights(tmp_path / "w.pth", "resnet20", tmp_path / "out.safetensors")


def test_evaluate_json_is_strict_when_a_metric_is_nan(digits_run, capsys, monkeypatch):
    from resnetlab.analysis.report import EvaluationReport

    summary = EvaluationReport.summary
    # a class the model never predicts has no precision: scikit-learn gives NaN when asked not to warn
    monkeypatch.setattr(EvaluationReport, "summary", lambda self: {**summary(self), "precision_3": float("nan")})
    assert main(["evaluate", str(digits_run.best_path), "--json", "--no-report"]) == 0
    assert _strict_json(capsys.readouterr().out)["precision_3"] is None
