"""Typed settings for a training run, read from YAML and `key=value` overrides.

Every setting is a dataclass field with a default that works. On the command line a setting is named by
its field name (`epochs=30`), unique across sections, or by its dotted path (`train.epochs=30`);
`model=`, `data=` and `name=` are short for `model.name`, `data.name` and `run.name`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .atomic import atomic_write
from .errors import ConfigError, did_you_mean
from .recipes import recipe_settings, scale_to_epochs
from .yamlfile import load_yaml_text, read_settings_file

# the choices, stated once: optim.py, runtime.py and the CLI read them from here
OptimizerName = Literal["sgd", "adam", "adamw", "rmsprop", "nadam", "adagrad"]
ScheduleName = Literal["cosine", "onecycle", "step", "multistep", "constant"]
TtaMode = Literal["none", "flip", "flip+shift"]  # test-time augmentation (runtime.Inference)

@dataclass
class ModelConfig:
    name: str = "resnet20"  # any name from `resnetlab models`
    # imagenet/small: the ResNets' 7x7/2+pool or 3x3/1; conv/whiten: resnet9's prep conv or airbench's 2x2
    # whitening conv
    stem: Literal["imagenet", "small", "conv", "whiten"] | None = None  # first layer; None: the model's own
    width: int | None = None  # resnet9: the prep conv's channels, the layers get 2x, 4x, 8x (Page: 64); None: own
    shortcut: Literal["A", "B"] | None = None  # He et al. 2015, Sec. 3.3; None keeps the architecture's own
    activation: Literal["relu", "gelu"] | None = None  # resnet9 family (airbench94: gelu, Page: relu); None: own
    conv_init: Literal["kaiming", "dirac", "pytorch"] | None = None  # resnet9 family: He et al.'s, airbench94's
    # (nn.Conv2d's own, then identities) or nn.Conv2d's own alone
    shortcut_layers: list[int] | None = None  # resnet9 family: the residual layers that keep their shortcut; None: all
    zero_init_residual: bool = False  # start each residual branch at zero (Goyal et al. 2017)
    drop_path_rate: float = 0.0  # stochastic depth of the deepest block; 0 disables
    block_drop_rate: float = 0.0  # dropout inside wide-ResNet blocks (Zagoruyko & Komodakis: 0.3)
    weights: str | None = None  # start from: a weights name (`resnetlab weights`), hf-hub:ORG/NAME, model file or .pth

    def options(self) -> dict[str, Any]:
        """Architecture options to pass to `create_model`, leaving out the ones left at default."""
        opts = {"stem": self.stem, "shortcut": self.shortcut, "width": self.width, "activation": self.activation,
                "conv_init": self.conv_init, "shortcut_layers": self.shortcut_layers}
        opts = {k: v for k, v in opts.items() if v is not None}
        for key in ("zero_init_residual", "drop_path_rate", "block_drop_rate"):
            if getattr(self, key):
                opts[key] = getattr(self, key)
        return opts


@dataclass
class DataConfig:
    name: str = "digits"  # dataset name (`resnetlab datasets`), or a path: image folder, .csv manifest, .npz
    data_dir: str | None = None  # where a named dataset's files are; None: the resnetlab cache folder
    download: bool = True  # fetch a named dataset's missing files from their official addresses
    verify: bool = True  # check official files' published checksums; false accepts a re-encoded copy (JPEG CIFAR-10)
    val_fraction: float | None = None  # share of train held out for validation; None: the dataset's default
    crop_padding: int | None = None  # random-crop padding in pixels; None: the dataset's default, 0: off
    pad_mode: Literal["zeros", "reflect", "edge"] | None = None  # None: the dataset's default
    normalize: Literal["channel", "pixel_mean"] = "channel"  # per-channel mean/std, or subtract the mean image
    flip: bool | None = None  # random horizontal flips; None: the dataset's default (off for digits)
    alternate_flip: bool = False  # flips: each image mirrored every other epoch from a random start (airbench)
    cutout: int = 0  # side of a zeroed square per image, pixels (DeVries & Taylor: 16 on CIFAR-10); 0: off
    random_erasing: float = 0.0  # probability of erasing a random rectangle per image (Zhong et al.: 0.5)
    mixup_alpha: float = 0.0  # mixup Beta(alpha, alpha) (Zhang et al.: 0.2); 0: off
    cutmix_alpha: float = 0.0  # cutmix Beta(alpha, alpha) (Yun et al.: 1.0); 0: off; with mixup, 50/50 per batch
    mix_prob: float = 1.0  # share of batches mixed when mixup or cutmix is on
    img_size: int | None = None  # image folders: input side; None: their own size if small and alike, else 224
    channels: int | None = None  # image folders: 1 or 3; None: 1 when every image is grayscale
    in_memory: bool = False  # image folders: decode once at img_size and keep in memory (small datasets)
    workers: int | None = None  # image-decoding processes; None: one per core (at most 8)
    on_bad_image: Literal["error", "skip"] = "error"  # error: stop before training naming every bad file
    path_column: str | None = None  # .csv manifests: the header's name for the image paths; None: path, file...
    label_column: str | None = None  # .csv manifests: the header's name for the labels; None: label, class...


@dataclass
class TrainConfig:
    epochs: int = 30
    max_steps: int | None = None  # stop after this many optimizer steps (He et al. count 64k); None: all epochs
    batch_size: int = 128  # images per optimizer step (over all processes and accumulation steps)
    accumulate: int = 1  # split each step's batch into this many forward/backward passes (same result, less memory)
    optimizer: OptimizerName = "sgd"
    lr: float = 0.1  # peak learning rate for `batch_size` images
    momentum: float = 0.9  # SGD or RMSprop momentum, or Adam's / NAdam's beta1 (Adagrad: unused)
    nesterov: bool = True  # SGD only
    weight_decay: float = 5e-4  # L2 penalty (decoupled for AdamW)
    decay_norm_and_bias: bool = False  # False: no weight decay on norm scales/shifts and biases (timm default)
    decoupled: bool = False  # SGD's lr and weight_decay in airbench's units, per 1024 images (optim.py says how)
    norm_bias_lr_scale: float = 1.0  # lr multiplier for norm layers' biases, not their decay (airbench: 64)
    schedule: ScheduleName = "cosine"  # per iteration
    warmup_epochs: float = 0.0  # linear warm-up from 0 to `lr` over this many epochs (onecycle: its rising part)
    start_lr_factor: float | None = None  # onecycle's first lr / peak; None: 1/25 (torch's OneCycleLR); airbench 0.2
    end_lr_factor: float = 0.0  # onecycle's last lr / peak (airbench94: 0.07, its peak at 23% of training)
    step_size: int = 30  # schedule=step: epochs between decays
    milestones: list[int] = field(default_factory=list)  # schedule=multistep: epochs to decay at; [] = 50%, 75%
    milestone_steps: list[int] = field(default_factory=list)  # schedule=multistep: iterations (overrides milestones)
    gamma: float = 0.1  # step/multistep decay factor
    # cosine/onecycle warm restarts (SGDR, Loshchilov & Hutter 2017): the schedule starts again at these epochs,
    # each cycle the whole schedule shrunk to its length (warm-up the same share), Lookahead's ramp too
    restart_epochs: list[float] = field(default_factory=list)
    warmup_lr: float | None = None  # He et al.: train at this lr until train accuracy passes warmup_until_accuracy
    warmup_until_accuracy: float = 0.2  # ... i.e. training error below 80% (about 400 iterations for resnet110)
    label_smoothing: float = 0.0  # Szegedy et al. 2016; 0.1 is common
    class_weight: Literal["none", "balanced"] = "none"  # balanced: weight classes by N / (K * count)
    class_weights: list[float] = field(default_factory=list)  # explicit per-class loss weights (override)
    grad_clip: float = 0.0  # clip the global gradient norm to this; 0: off
    ema_decay: float = 0.0  # weight EMA, evaluated and saved as the model (0.999 is common); 0: off
    lookahead_steps: int = 0  # Lookahead every this many steps, airbench's schedule (airbench: 5); 0: off
    whiten_bias_epochs: int = 0  # stem=whiten: the whitening bias trains this many epochs (airbench94: 3); 0: all
    head_epochs: int = 0  # fine-tuning: train only the classifier for this many epochs first
    backbone_lr_scale: float = 1.0  # fine-tuning: lr multiplier for every layer but the classifier
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 where the device is fast at it
    channels_last: bool | None = None  # memory layout; None: on for CPU and CUDA (faster in every measurement)
    compile: bool = False  # torch.compile the model (costs start-up time; measured no faster on the 2-core CPU)
    patience: int = 0  # early stopping: epochs without a better validation accuracy; 0: off
    deterministic: bool = False  # deterministic kernels (slower on GPU; CPU runs repeat exactly anyway)


@dataclass
class RunConfig:
    name: str | None = None  # run folder name under `project`; None: "<model>-<data>", numbered if taken
    project: str = "runs"  # parent folder of run folders
    seed: int = 0  # seeds weights, data order and augmentation
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    progress: bool = True  # rich progress bar; off prints one line per epoch
    resume: str | None = None  # continue an interrupted run: its folder (or its last.safetensors)
    checkpoint_minutes: float = 10.0  # also write `last` this often within an epoch; 0: at epoch ends only
    tensorboard: bool = False  # write TensorBoard event files (needs the package: pip install 'resnetlab[tensorboard]')
    plots: bool = True  # redraw curves.png (loss, accuracy, lr) after every epoch
    sync_bn: bool = False  # multi-process runs on CUDA: batch statistics over all processes
    tta: TtaMode = "none"  # test-time augmentation for the final test evaluation
    # the final test evaluation's arithmetic: fp32 (as `predict` runs it) or the training's precision and layout
    # (what the validation uses; bf16 on CPUs with AVX-512 BF16/AMX)
    test_precision: Literal["fp32", "train"] = "fp32"
    recipe: str | None = None  # the recipe the settings started from (`recipe=NAME`, applied before all else)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> Config:
        """Raise ConfigError for values out of range; return self."""
        t, d, m, r = self.train, self.data, self.model, self.run
        checks = [
            (t.epochs >= 1, f"epochs must be at least 1, got {t.epochs}"),
            (t.max_steps is None or t.max_steps >= 1, f"max_steps must be at least 1, got {t.max_steps}"),
            (t.batch_size >= 1, f"batch_size must be at least 1, got {t.batch_size}"),
            (t.accumulate >= 1 and t.batch_size % t.accumulate == 0,
             f"accumulate must divide batch_size ({t.batch_size}), got {t.accumulate}"),
            (t.lr > 0, f"lr must be positive, got {t.lr}"),
            (t.weight_decay >= 0, f"weight_decay must be >= 0, got {t.weight_decay}"),
            (0 <= t.momentum < 1, f"momentum must be in [0, 1), got {t.momentum}"),
            (0 <= t.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {t.label_smoothing}"),
            (t.warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {t.warmup_epochs}"),
            (t.step_size >= 1, f"step_size must be at least 1, got {t.step_size}"),
            (t.warmup_lr is None or t.warmup_lr > 0, f"warmup_lr must be positive, got {t.warmup_lr}"),
            (t.grad_clip >= 0, f"grad_clip must be >= 0, got {t.grad_clip}"),
            (0 <= t.ema_decay < 1, f"ema_decay must be in [0, 1), got {t.ema_decay}"),
            (t.head_epochs >= 0, f"head_epochs must be >= 0, got {t.head_epochs}"),
            (t.backbone_lr_scale >= 0, f"backbone_lr_scale must be >= 0, got {t.backbone_lr_scale}"),
            (t.patience >= 0, f"patience must be >= 0, got {t.patience}"),
            (0 <= (t.start_lr_factor or 0) <= 1 and 0 <= t.end_lr_factor <= 1,
             f"start_lr_factor and end_lr_factor must be in [0, 1], got {t.start_lr_factor}, {t.end_lr_factor}"),
            (t.norm_bias_lr_scale > 0 and t.whiten_bias_epochs >= 0,
             "norm_bias_lr_scale must be positive and whiten_bias_epochs >= 0"),
            (not t.decoupled or t.optimizer == "sgd",
             f"decoupled=true is SGD's airbench units; optimizer={t.optimizer} takes its own lr and weight_decay"),
            (t.lookahead_steps >= 0, f"lookahead_steps must be >= 0 (0: off), got {t.lookahead_steps}"),
            (t.gamma > 0, f"gamma must be positive, got {t.gamma}"),
            (0 < t.warmup_until_accuracy <= 1,
             f"warmup_until_accuracy must be in (0, 1], got {t.warmup_until_accuracy}"),
            (all(m >= 1 for m in t.milestones + t.milestone_steps), "milestones and milestone_steps must be >= 1"),
            (all(w >= 0 for w in t.class_weights), "class_weights must be >= 0"),
            (t.restart_epochs == sorted(set(t.restart_epochs)) and all(0 < r < t.epochs for r in t.restart_epochs),
             f"restart_epochs must rise strictly, each after 0 and before epochs={t.epochs}, got {t.restart_epochs}"),
            (not t.restart_epochs or t.schedule in ("cosine", "onecycle"),
             f"restart_epochs restarts a cosine or onecycle schedule, not schedule={t.schedule}"),
            (d.val_fraction is None or 0 <= d.val_fraction < 1,
             f"val_fraction must be in [0, 1), got {d.val_fraction}"),
            (d.crop_padding is None or d.crop_padding >= 0, f"crop_padding must be >= 0, got {d.crop_padding}"),
            (d.cutout >= 0, f"cutout must be >= 0, got {d.cutout}"),
            (0 <= d.random_erasing <= 1, f"random_erasing must be in [0, 1], got {d.random_erasing}"),
            (d.mixup_alpha >= 0 and d.cutmix_alpha >= 0, "mixup_alpha and cutmix_alpha must be >= 0"),
            (0 <= d.mix_prob <= 1, f"mix_prob must be in [0, 1], got {d.mix_prob}"),
            (d.img_size is None or d.img_size >= 8, f"img_size must be >= 8, got {d.img_size}"),
            (d.channels in (None, 1, 3), f"channels must be 1 or 3, got {d.channels}"),
            (d.workers is None or d.workers >= 0, f"workers must be >= 0, got {d.workers}"),
            (0 <= m.drop_path_rate < 1, f"drop_path_rate must be in [0, 1), got {m.drop_path_rate}"),
            (0 <= m.block_drop_rate < 1, f"block_drop_rate must be in [0, 1), got {m.block_drop_rate}"),
            (r.checkpoint_minutes >= 0, f"checkpoint_minutes must be >= 0, got {r.checkpoint_minutes}"),
            # torch.manual_seed takes 64 bits and NumPy's generators refuse negative seeds
            (0 <= r.seed <= MAX_SEED, f"seed must be in 0..{MAX_SEED} (2**63 - 1), got {r.seed}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self


MAX_SEED = 2**63 - 1

ALIASES = {"model": "model.name", "data": "data.name", "name": "run.name"}


def sections() -> dict[str, type]:
    """The Config's sections by name (model, data, train, run) and their dataclasses."""
    return {f.name: f.type if isinstance(f.type, type) else globals()[f.type] for f in dataclasses.fields(Config)}


def setting_paths() -> dict[str, str]:
    """Map every accepted key (leaf name, dotted path, alias) to its dotted path."""
    paths: dict[str, str] = {}
    for section, cls in sections().items():
        for f in dataclasses.fields(cls):
            dotted = f"{section}.{f.name}"
            paths[dotted] = dotted
            if f.name != "name":
                if f.name in paths:
                    raise RuntimeError(f"setting name {f.name!r} is not unique across sections")
                paths[f.name] = dotted
    paths.update(ALIASES)
    return paths


def _field_type(section: str, name: str) -> Any:
    cls = sections()[section]
    return typing.get_type_hints(cls)[name]


def coerce(key: str, value: Any, hint: Any) -> Any:
    """Convert `value` (a YAML scalar or a command-line string) to the type `hint`, or raise ConfigError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null", "~"))
        if is_none and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(key, value, inner[0]) if len(inner) == 1 else value
    if origin is Literal:
        text = str(value)
        if text not in args:
            raise ConfigError(f"{key} must be one of {', '.join(map(str, args))}; got {text!r}"
                              f"{did_you_mean(text, map(str, args))}")
        return text
    if origin in (list, tuple):
        if isinstance(value, str):
            try:
                value = load_yaml_text(value, f"{key}={value[:40]}") if value.strip() else []
            except ConfigError:
                raise ConfigError(f"{key} must be a list such as [30, 60], got {value!r}") from None
        if not isinstance(value, (list, tuple)):
            value = [value]
        try:
            return [coerce(key, v, args[0]) for v in value]
        except ConfigError as exc:  # "2,3" is one item, not two: say how a list is written
            raise ConfigError(f"{exc}; {key} is a list, written as [2, 3]") from None
    if hint is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("true", "yes", "on", "1"):
            return True
        if text in ("false", "no", "off", "0"):
            return False
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip())  # exact: a float would round 99999999999999999999999
        except ValueError:
            pass
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be an integer, got {value!r}") from None
        if not number.is_integer():
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return int(number)
    if hint is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if hint is str:
        return str(value)
    raise TypeError(f"unsupported setting type {hint!r} for {key}")


def apply_overrides(config: Config, overrides: dict[str, Any]) -> Config:
    """Set each `key: value` (key as accepted by `setting_paths`), type-checked; return the config."""
    paths = setting_paths()
    for key, value in overrides.items():
        if key not in paths:
            raise ConfigError(f"unknown setting {key!r}{did_you_mean(key, paths)} "
                              f"(`resnetlab train --help` lists all)")
        section, name = paths[key].split(".")
        setattr(getattr(config, section), name, coerce(key, value, _field_type(section, name)))
    return config


def changed_settings(config: Config) -> dict[str, Any]:
    """The settings of `config` that differ from the defaults, by dotted path (`train.epochs`): what a caller
    set. A setting given at its default value cannot be told from one not given."""
    defaults = flatten_settings(Config())
    return {key: value for key, value in flatten_settings(config).items() if value != defaults[key]}


def flatten_settings(config: Config) -> dict[str, Any]:
    """Every setting of `config` by dotted path (`train.epochs`)."""
    return _flatten(config.to_dict())


def parse_overrides(args: list[str]) -> dict[str, str]:
    """Split command-line `key=value` words into a dict, rejecting anything else."""
    overrides: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {arg!r} (for example: epochs=30 lr=0.05)")
        overrides[key.strip()] = value.strip()
    return overrides


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and f"{prefix}{key}" in sections():
            flat.update(_flatten(value, f"{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def read_recipe(name: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(settings, per-model settings) of a recipe (recipes.py), flattened to dotted keys."""
    data, per_model = recipe_settings(name)
    return _flatten(data), {model: _flatten(values) for model, values in per_model.items()}


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Build a Config: defaults, then a recipe (`recipe=`), then a YAML file, then overrides; validate it.

    The recipe's per-model settings apply when the finally chosen model is named there; with other epochs than
    the recipe's, its warm-up and restarts scale to keep their share of the run (`recipes.scale_to_epochs`).
    """
    overrides = dict(overrides or {})
    file_data = _flatten(read_settings_file(Path(path), "config file")) if path is not None else {}
    recipe = None
    for source in (file_data, overrides):  # later wins: the command line over the file
        for key in ("recipe", "run.recipe"):
            recipe = source.pop(key, None) or recipe
    config = Config()
    if recipe:
        settings, per_model = read_recipe(str(recipe))
        apply_overrides(config, settings)
        model = next((source[k] for source in (overrides, file_data) for k in ("model", "model.name") if k in source),
                     config.model.name)
        apply_overrides(config, per_model.get(str(model), {}))
        config.run.recipe = str(recipe)
    recipe_epochs = config.train.epochs  # the recipe's own, before the file and the command line
    apply_overrides(config, file_data)
    apply_overrides(config, overrides)
    if recipe:
        paths = setting_paths()
        given = {paths[k] for source in (file_data, overrides) for k in source if k in paths}
        scale_to_epochs(config.train, recipe_epochs, given)
    return config.validate()


def save_config(config: Config, path: str | Path) -> None:
    """Write `config` as YAML, atomically: a run killed mid-write keeps the previous file (resume reads it)."""
    text = yaml.safe_dump(config.to_dict(), sort_keys=False)
    atomic_write(path, lambda tmp: tmp.write_text(text))


def config_from_dict(data: dict[str, Any], source: str = "saved settings") -> Config:
    """The Config that `Config.to_dict()` gave `data` (as saved in a checkpoint), type-checked and validated."""
    try:
        return apply_overrides(Config(), _flatten(data)).validate()
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
