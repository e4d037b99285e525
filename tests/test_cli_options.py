"""Every subcommand takes `key=value` and `--key value` alike, in any order, typed from the library (cli/options.py)."""

from __future__ import annotations

import inspect
import json
import types
import typing

import numpy as np
import pytest
from PIL import Image

from resnetlab.analysis.report import evaluate
from resnetlab.cli import main, parse_command
from resnetlab.cli.parser import commands
from resnetlab.deploy.predict import Predictor
from resnetlab.deploy.serve.settings import ServeConfig

COMMANDS = commands()


def _sample(option) -> str:
    """A valid value of the option's type, as typed on a command line."""
    kind = typing.get_args(option.kind)[0] if typing.get_origin(option.kind) in (typing.Union, types.UnionType) \
        else option.kind
    if kind is bool:
        return "false" if option.default else "true"
    if kind is int:
        return str(max(option.minimum or 0, 3) if option.name != "port" else 8123)
    if kind is float:
        return "0.5"
    if typing.get_origin(kind) is tuple:
        return "0.5,0.25,0.125"
    if typing.get_origin(kind) is typing.Literal:
        return next(str(choice) for choice in typing.get_args(kind) if choice != option.default)
    return "x"


CASES = [(name, option) for name, command in COMMANDS.items() for option in command.options]


@pytest.mark.parametrize(("name", "option"), CASES, ids=[f"{n}:{o.name}" for n, o in CASES])
def test_each_option_reads_the_same_in_both_styles(name, option):
    value = _sample(option)
    dashed = "--" + option.name.replace("_", "-")
    styles = [[f"{option.name}={value}"], [dashed, value], [f"{dashed}={value}"]]
    needed = [p.name for p in COMMANDS[name].positionals if p.required]  # import-weights FILE, info MODEL
    parsed = [getattr(parse_command([name, *needed, *words])[1], option.name) for words in styles]
    assert parsed[0] == parsed[1] == parsed[2] != option.default, (name, option.name, parsed)


def test_the_issues_example_and_other_orders_parse_alike():
    orders = [["m.safetensors", "--backend", "torch", "data=digits", "split=val"],
              ["data=digits", "--split", "val", "m.safetensors", "--backend=torch"],
              ["--split=val", "backend=torch", "--data", "digits", "model=m.safetensors"]]
    parsed = [vars(parse_command(["evaluate", *words])[1]) for words in orders]
    for args in parsed:
        args.pop("given")
        assert (args["model"], args["backend"], args["data"], args["split"]) == ("m.safetensors", "torch", "digits",
                                                                                 "val")
    assert parsed[0] == parsed[1] == parsed[2]


def test_defaults_and_types_come_from_the_library():
    args = parse_command(["evaluate", "m"])[1]
    defaults = {n: p.default for n, p in inspect.signature(evaluate).parameters.items()}
    assert (args.batch_size, args.split, args.tta, args.ema) == (defaults["batch_size"], defaults["split"],
                                                                 defaults["tta"], defaults["ema"])
    assert parse_command(["predict", "m", "a.png"])[1].batch_size == \
        inspect.signature(Predictor.from_file).parameters["batch_size"].default
    serve = parse_command(["serve", "m"])[1]
    assert (serve.port, serve.max_wait_ms, serve.access_log) == (ServeConfig().port, ServeConfig().max_wait_ms, True)
    assert parse_command(["evaluate", "m", "--batch-size", "64"])[1].batch_size == 64  # an int, not "64"


def test_flags_switch_both_ways():
    for words in (["--no-ema"], ["ema=false"], ["--ema", "false"], ["--ema=off"]):
        assert parse_command(["evaluate", "m", *words])[1].ema is False
    args = parse_command(["predict", "m", "--json", "x.png"])[1]
    assert args.json is True and args.images == ["x.png"]  # a flag takes no value
    assert parse_command(["predict", "m", "-k", "2", "a.png"])[1].topk == 2
    assert parse_command(["explain", "m", "a.png", "class=cat"])[1].class_name == "cat"  # an alias


@pytest.mark.parametrize(("words", "message"), [
    (["evaluate", "m", "--btach-size", "4"], "unknown option 'btach_size'; did you mean 'batch_size'?"),
    (["evaluate", "m", "batch_size=abc"], "batch_size must be an integer, got 'abc'"),
    (["predict", "m", "a.png", "topk=0"], "topk must be at least 1, got 0"),
    (["serve", "m", "--port"], "--port needs a value"),
    (["evalute", "m"], "unknown command 'evalute'; did you mean 'evaluate'?"),
    (["info", "a", "b"], "unexpected argument 'b'"),
    (["info"], "`resnetlab info` needs MODEL: model file"),
    (["import-weights", "arch=resnet18"], "`resnetlab import-weights` needs FILE: state dict file"),
])
def test_bad_words_are_one_error_line(words, message, capsys):
    assert main(words) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err


def test_a_file_name_with_an_equals_sign_is_an_image(tmp_path):
    odd = tmp_path / "a=b.png"
    odd.write_bytes(b"")
    assert parse_command(["predict", "m", str(odd)])[1].images == [str(odd)]


def test_help_lists_every_option_with_its_default(capsys):
    assert main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    assert "max_decode_mpix" in out and "200.0" in out and "access_log" in out
    assert main(["train", "--help"]) == 0
    assert "warmup_epochs" in capsys.readouterr().out  # the training settings table too


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / f"{i}.png")
    return root


@pytest.mark.slow
def test_every_subcommand_runs_the_same_in_both_styles(digits_run, image_folder, tmp_path, capsys, monkeypatch):
    model = str(digits_run.best_path)
    pth = tmp_path / "sd.pth"
    runs = {  # command: (key=value words, --key value words); the output compared where it is deterministic
        "evaluate": (["model=" + model, "data=digits", "split=val", "backend=torch", "no_report=true", "json=true"],
                     ["--json", "--split", "val", model, "--backend", "torch", "--no-report", "--data", "digits"]),
        "predict": ([model, str(image_folder), "topk=2", "json=true", "backend=torch", "workers=0"],
                    ["--json", model, "--topk", "2", "--backend", "torch", str(image_folder), "--workers", "0"]),
        "data": (["inspect", "digits", "json=true", "workers=0"], ["--json", "inspect", "--workers", "0", "digits"]),
        "models": (["resnet20", "no_flops=true", "family=cifar"], ["--no-flops", "--family", "cifar", "resnet20"]),
        "info": ([f"model={model}"], [model]),
        "datasets": ([], []),
        "weights": (["source=akamaster", "json=true", "resnet2*"], ["resnet2*", "--json", "--source", "akamaster"]),
    }
    for name, (first, second) in runs.items():
        outputs = []
        for words in (first, second):
            assert main([name, *words]) == 0, (name, words, capsys.readouterr().err)
            outputs.append(capsys.readouterr().out)
        if "json=true" in first:
            assert json.loads(outputs[0]) == json.loads(outputs[1]), name
        else:
            assert outputs[0] == outputs[1], name
    written = []
    for words in (["format=torchvision", f"out={pth}", model], [model, "--out", str(tmp_path / "sd2.pth"),
                                                                "--format", "torchvision"]):
        assert main(["export", *words]) == 0
        written.append(capsys.readouterr().out)
    assert pth.is_file() and (tmp_path / "sd2.pth").is_file()
    arch = digits_run.info.arch.name
    for words in ([str(pth), f"arch={arch}", f"out={tmp_path / 'a.safetensors'}", "img_size=8",
                   "mean=0.5", "std=0.25"],
                  ["--std", "0.25", str(pth), "--arch", arch, "--img-size", "8", "--mean", "0.5",
                   "--out", str(tmp_path / "b.safetensors")]):
        assert main(["import-weights", *words]) == 0, capsys.readouterr().err
    first, second = (tmp_path / "a.safetensors").read_bytes(), (tmp_path / "b.safetensors").read_bytes()
    assert len(first) == len(second)
    for words in ([model, str(image_folder), f"out={tmp_path / 'e1.npz'}", "workers=0"],
                  ["--out", str(tmp_path / "e2.npz"), "--workers", "0", model, str(image_folder)]):
        assert main(["embed", *words]) == 0
    assert np.array_equal(np.load(tmp_path / "e1.npz")["features"], np.load(tmp_path / "e2.npz")["features"])
    for words in ([model, str(image_folder), f"out={tmp_path / 'x1'}"],
                  ["--out", str(tmp_path / "x2"), model, str(image_folder)]):
        assert main(["explain", *words]) == 0
    assert sorted(p.name for p in (tmp_path / "x1").rglob("*.png")) == \
        sorted(p.name for p in (tmp_path / "x2").rglob("*.png")) != []
    seen = []
    import resnetlab.deploy.serve as serve_package

    monkeypatch.setattr(serve_package, "serve", lambda model, config, weights=None: seen.append(config))
    assert main(["serve", model, "port=0", "max_wait_ms=5", "access_log=false"]) == 0
    assert main(["serve", "--no-access-log", "--port", "0", model, "--max-wait-ms", "5"]) == 0
    assert seen[0] == seen[1] == ServeConfig(port=0, max_wait_ms=5.0, access_log=False)
    for words in (["model=tutorial_cnn", "data=digits", "steps=10", f"project={tmp_path}", "name=lr1"],
                  ["--steps", "10", "model=tutorial_cnn", "--data", "digits", "--project", str(tmp_path),
                   "--name", "lr2"]):
        assert main(["lr-find", *words]) == 0, capsys.readouterr().err
    assert (tmp_path / "lr1" / "lr_find.json").is_file() and (tmp_path / "lr2" / "lr_find.json").is_file()
    quiet = ["model=tutorial_cnn", "progress=false", "plots=false", "tensorboard=false", f"project={tmp_path}"]
    for words in (["epochs=1", "batch_size=256", "name=t1", *quiet], ["--epochs", "1", "--batch-size", "256",
                                                                      "--name", "t2", *quiet]):
        assert main(["train", *words]) == 0, capsys.readouterr().err
    results = [json.loads((tmp_path / name / "results.json").read_text()) for name in ("t1", "t2")]
    assert results[0]["test"] == results[1]["test"] and results[0]["steps"] == results[1]["steps"]


def test_the_cli_runs_without_the_serve_extra(digits_run):
    """`make demo` installs no FastAPI: the CLI (which types serve's options from ServeConfig) must still start."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['fastapi'] = None; sys.modules['uvicorn'] = None\n"  # as if not installed
            "from resnetlab.cli import main\n"
            f"assert main(['info', {str(digits_run.best_path)!r}]) == 0\n"
            "assert main(['serve', 'm.safetensors']) == 2\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "serving needs FastAPI and uvicorn" in done.stderr
