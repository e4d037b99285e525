"""The README's commands, run as a newcomer would, offline.

Every `resnetlab ...` line of the README's sh blocks is parsed (subcommand, flags, and for `train` every
setting through the typed config). Every line that can run offline runs for real, in-process, in a
folder holding the files the README names (a trained digits model at runs/resnet20-digits/, photos/,
cat.jpg, ...), with changes for time only: `train` runs 1 epoch, and `predict` of a 224 px ResNet and
`evaluate` name their backend (auto would first time every backend) and write no report. Published
weights come from a local stand-in of the same architecture: fetching is tested in tests/weights.
Lines that need the network, the full CIFAR-10 or run forever are listed in NOT_RUN with the reason,
and are parsed only.
"""

from __future__ import annotations

import re
import shlex
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import resnetlab
from resnetlab.cli import main, parse_command
from resnetlab.config import load_config, parse_overrides

README = Path(__file__).resolve().parents[1] / "README.md"
NOT_RUN = {  # line prefix -> why it is parsed only
    "resnetlab train data=cifar10 data_dir=~/datasets": "needs CIFAR-10 in ~/datasets",
    "resnetlab train data=cifar10 data_dir=../shared": "a CIFAR-10 epoch takes minutes",
    "resnetlab train data=cifar10 cutout": "downloads CIFAR-10",
    "resnetlab train data=cifar10  ": "downloads CIFAR-10",
    "resnetlab train recipe=fast-cifar": "30 CPU minutes on CIFAR-10",
    "resnetlab train recipe=he2015-cifar": "64k iterations on CIFAR-10",
    "resnetlab train resume=runs/resnet20-cifar10": "needs an interrupted CIFAR-10 run",
    "resnetlab lr-find model=resnet20 data=cifar10": "needs CIFAR-10",
    "resnetlab serve": "serves until interrupted (tests/test_serve.py runs the server)",
}
FAST = {"train": ["epochs=1"], "predict": []}


def readme_commands() -> list[str]:
    """The `resnetlab ...` lines of the README's sh code blocks, comments and [optional] parts removed."""
    lines, in_sh = [], False
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            in_sh = line.strip() == "```sh"
            continue
        if in_sh and line.startswith("resnetlab "):
            command = re.sub(r"\s+#.*$", "", line)
            lines.append(re.sub(r"\s*\[[^\]]*\]", "", command).strip())
    return lines


def _not_run(line: str) -> str | None:
    padded = line + "  "
    return next((why for prefix, why in NOT_RUN.items() if padded.startswith(prefix)), None)


def test_the_readme_has_commands_to_check():
    commands = readme_commands()
    assert len(commands) > 25 and any(c.startswith("resnetlab predict cat.jpg model=resnet50") for c in commands)


@pytest.mark.parametrize("line", readme_commands())
def test_every_readme_command_parses(line):
    words = shlex.split(line)[1:]
    command, args = parse_command(words)  # every option known, every value of its type
    if command.name == "train" and not args.help:
        load_config(overrides=parse_overrides(args.settings))  # every setting known, every value of its type


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, digits_run):
    """A folder holding every file the README's runnable lines name."""
    root = tmp_path_factory.mktemp("readme")
    run = root / "runs" / "resnet20-digits"
    run.mkdir(parents=True)
    shutil.copy(digits_run.best_path, run / "best.safetensors")
    shutil.copy(digits_run.best_path, root / "model.safetensors")
    rng = np.random.default_rng(0)
    for name in ("scan1.png", "photo.jpg", "cat.jpg"):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / name)
    colours = {"red": (220, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 220)}
    for split in ("train", "test"):
        for name, colour in colours.items():
            folder = root / "photos" / split / name
            folder.mkdir(parents=True)
            for i in range(4):
                pixels = np.clip(rng.integers(0, 60, (32, 32, 3)) + np.array(colour) * 0.7, 0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")
    rows = [f"{p.relative_to(root)},{p.parent.name},{p.parent.parent.name}"
            for p in sorted((root / "photos").glob("*/*/*.png"))]
    (root / "photos.csv").write_text("picture,species,split\n" + "\n".join(rows) + "\n")
    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / "digit.png")
    torch.save(resnetlab.create_model("resnet50").state_dict(), root / "resnet50-0676ba61.pth")
    return root


@pytest.fixture
def stand_in_weights(tmp_path, monkeypatch):
    """Published weights by name, served by a local file of the same architecture (no network here)."""
    from resnetlab.weights import load

    files: dict[str, Path] = {}

    def local(entry, progress=True):
        if entry.arch not in files:
            files[entry.arch] = tmp_path / f"{entry.arch}.pth"
            torch.save(resnetlab.create_model(entry.arch, **entry.options).state_dict(), files[entry.arch])
        return files[entry.arch]

    monkeypatch.setattr(load, "fetch", local)


@pytest.mark.slow
def test_every_readme_command_that_can_run_offline_runs(sandbox, stand_in_weights, monkeypatch, capsys):
    monkeypatch.chdir(sandbox)
    ran, failed = [], []
    for line in readme_commands():
        if _not_run(line):
            continue
        words = shlex.split(line)[1:]
        if words[0] == "train" and "--help" not in words:
            words += ["epochs=1", "head_epochs=0", "batch_size=8", "tensorboard=false", "plots=false"]
        if words[0] == "predict" and "model=resnet50" in words:
            words += ["--backend", "torch"]
        if words[0] == "evaluate":  # auto would time every backend first (tests/test_report.py covers it)
            words += ["backend=onnxruntime" if "precision=int8" in words else "backend=torch", "--no-report"]
        started = time.perf_counter()
        try:
            code = main(words)
        except SystemExit as exc:  # --help exits through argparse
            code = exc.code
        out = capsys.readouterr()
        ran.append(f"{time.perf_counter() - started:6.1f}s {line}")
        if code != 0:
            failed.append(f"{line} -> {code}: {out.err.strip()[-300:]}")
    print("\n".join(ran))
    assert not failed, "\n".join(failed)
    assert len(ran) >= 20


# what the Python examples are run with: (README text, what replaces it, why); each must still be in the README
PYTHON_CHANGES = [
    ("epochs=10,", "epochs=2,", "ten epochs prove nothing more"),
    ("epochs=100,", "epochs=3,", "early stopping would end it after patience=5 epochs anyway"),
    ('data="digits", epochs=30)', 'data="digits", epochs=1)', "a 30-epoch run takes minutes"),
]


def readme_python_blocks() -> list[str]:
    """The README's ```python code blocks, as written, each after as many blank lines as precede it there (so
    a traceback names the README's own line numbers)."""
    text = README.read_text()
    return ["\n" * text[:m.start(1)].count("\n") + m.group(1)
            for m in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M)]


def test_the_readme_has_python_examples_and_every_change_applies():
    blocks = "\n".join(readme_python_blocks())
    assert "clf.fit(X_train, y_train" in blocks and "resnetlab.create_model(" in blocks
    for old, _, why in PYTHON_CHANGES:
        assert old in blocks, f"the README no longer says {old!r} ({why}): update PYTHON_CHANGES"


@pytest.mark.slow
def test_every_readme_python_example_runs(stand_in_weights, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)).save("digit.png")
    rng = np.random.default_rng(1)

    def arrays(count: int) -> tuple[np.ndarray, np.ndarray]:  # the names the examples use: 28x28 RGB, 10 classes
        return rng.integers(0, 256, (count, 28, 28, 3), dtype=np.uint8), np.arange(count) % 10

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = arrays(40), arrays(20), arrays(20)
    namespace = {"X_train": x_train, "y_train": y_train, "X_val": x_val, "y_val": y_val, "X_test": x_test,
                 "y_test": y_test}
    for block in readme_python_blocks():
        for old, new, _ in PYTHON_CHANGES:
            block = block.replace(old, new)
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - the README's own examples
    assert namespace["features"].shape == (2, 2048)
    assert namespace["clf"].predict(x_test).shape == (20, 10)
    loss, accuracy = namespace["loss"], namespace["accuracy"]
    assert loss > 0 and 0 <= accuracy <= 1
    assert (tmp_path / "model.h5").is_file() and (tmp_path / "best.h5").is_file()
    assert type(namespace["clf2"]).__name__ == "Classifier"
    assert "accuracy_change" in namespace["report"].extra
