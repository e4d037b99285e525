"""The training loop. `Trainer.run` trains epoch after epoch; `fit` is the short way in.

Everything that decides what the next step computes lives in `Trainer.state` and the components
(model, optimizer, EMA, loss scaler, RNG), which is exactly what a checkpoint saves; the data order
and augmentation of any batch follow from (seed, epoch, batch). So a run stopped anywhere (Ctrl-C,
SIGTERM, a crash after a checkpoint) and resumed continues as if it had never stopped.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext

import torch
from torch import nn

from ..analysis.evaluation import EvalResult, evaluate_model
from ..config import TrainConfig
from ..data.dataset import Split
from ..data.loader import Batches
from ..errors import UserError
from ..info import ModelInfo
from ..runtime import Inference
from .callbacks import Callback, check_callbacks, load_state_dicts, overrides
from .distributed import Distributed, all_reduce_sum, any_process, main_process_says
from .divergence import TrainingError, check_loss, check_validation, check_weights
from .ema import Lookahead, ModelEma
from .history import EpochMetrics, History, LoopState
from .optim import build_optimizer, build_schedule, cycles, head_parameters, reported_lr, set_lr, whiten_bias
from .precision import Precision, grad_scaler, resolve_precision
from .progress import ProgressCallback, ProgressDisplay
from .signals import StopRequest
from .stopping import EarlyStopping
from .sums import BASE, ClassCounts, EpochSums

WARMUP_CHECK_STEPS = 50  # how often He et al.'s warm-up looks at the training accuracy (one device sync)
# multi-process runs: how often the processes agree on a stop request (one tiny all-reduce and sync); a
# process that left alone would leave the others waiting in their next gradient all-reduce
STOP_CHECK_STEPS = 8
OWN_LOSS_WEIGHTED = ("class and sample weights weight the built-in cross-entropy; a loss function of your own must "
                     "weight its terms itself (or leave class_weight and sample_weight out)")


class Trainer:
    """A model, its data and everything needed to train it step by step.

    Args:
        model: the bare model (DDP and torch.compile wrap it here; state dicts use the bare one).
        info: model metadata (normalization for validation, classes).
        loader: training batches (BatchLoader or FileLoader).
        cfg: the training settings.
        val_data: validation split, evaluated after every epoch (with the EMA weights when on).
        optimizer: use this one instead of building `cfg.optimizer` (the Keras facade passes its own).
        class_weight: per-class loss weights.
        distributed: the process group when launched by torchrun.
        callbacks: the run's Callbacks (training/callbacks.py), called in order; `Trainer.callbacks` is the list.
        criterion: the loss, (logits, targets) -> a scalar, instead of cross-entropy (the Keras facade's loss=).
        class_counts: also sum confusion matrices, plain and sample-weighted (training/sums.py), for metrics
            beyond accuracy; `epoch_counts` has the last epoch's, over all processes.
    """

    def __init__(self, model: nn.Module, info: ModelInfo, loader: Batches, cfg: TrainConfig, *,
                 val_data: Split | None = None, optimizer: torch.optim.Optimizer | None = None,
                 class_weight: torch.Tensor | None = None, distributed: Distributed | None = None,
                 sync_bn: bool = False, callbacks: Sequence[Callback] = (),
                 criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 class_counts: bool = False):
        device = loader.device
        if len(loader) == 0:
            raise TrainingError("no training batch could be formed; give at least 2 training images "
                                "(BatchNorm cannot train on one)")
        self.cfg, self.info, self.loader, self.val_data, self.distributed = cfg, info, loader, val_data, distributed
        self.precision: Precision = resolve_precision(cfg.precision, cfg.channels_last, device)
        # deterministic mode is process-wide in PyTorch: switched on for run() only, then put back
        self._deterministic = (True, device.type == "cpu") if cfg.deterministic else None
        self.model = model.to(device, memory_format=torch.channels_last) if self.precision.channels_last \
            else model.to(device)
        if sync_bn and distributed is not None:
            if device.type != "cuda":
                raise UserError("sync_bn=true needs CUDA GPUs (PyTorch's SyncBatchNorm); leave it off on CPU")
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)  # in place: the same parameters
        # parameters the model itself freezes (a whitening conv's weights) stay frozen through every phase
        self._frozen = {id(p) for p in self.model.parameters() if not p.requires_grad}
        self._whiten_bias = whiten_bias(self.model) if cfg.whiten_bias_epochs else None
        self.forward = self._wrap()
        self.optimizer = optimizer or build_optimizer(self.model, cfg)
        self.scaler = grad_scaler(self.precision)
        self.ema = ModelEma(self.model, cfg.ema_decay) if cfg.ema_decay else None
        weight = None if class_weight is None else class_weight.to(device)
        self.custom_criterion = criterion is not None
        self.criterion = criterion or nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
        # with sample weights: Keras' loss, sum(sample weight x class weight x loss) / batch size
        self.sample_criterion = nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing,
                                                    reduction="none")
        if criterion is not None and (class_weight is not None or getattr(loader, "weights", None) is not None):
            raise UserError(OWN_LOSS_WEIGHTED)
        micro_per_epoch = len(loader)
        self.steps_per_epoch = max(1, math.ceil(micro_per_epoch / cfg.accumulate))
        self.total_steps = min(self.steps_per_epoch * cfg.epochs, cfg.max_steps or math.inf)  # where the run ends
        self.schedule = build_schedule(cfg, self.steps_per_epoch, self.total_steps)
        spans = cycles(cfg, self.steps_per_epoch, self.total_steps)  # the lr's cycles: Lookahead follows them
        self.lookahead = Lookahead(self.model, cfg.lookahead_steps, spans) if cfg.lookahead_steps else None
        self.sums = EpochSums(info.num_classes if class_counts else None)
        self.state = LoopState(warming=cfg.warmup_lr is not None, sums=self.sums.zeros())
        self.epoch_counts: ClassCounts | None = None
        self.history = History()
        # patience= is early stopping; first, so that the checkpoints written at an epoch's end know it stopped
        self.callbacks: list[Callback] = [*([EarlyStopping(cfg.patience)] if cfg.patience else []), *callbacks]
        self.callback_state: dict[str, dict] = {}  # what a resumed run's callbacks saved (restore_training sets it)
        self.stop = StopRequest()
        self.validate_every = 1  # validate after every this many epochs (Keras' validation_freq)
        self.checkpoint_minutes = 0.0  # also ask for a checkpoint (on_checkpoint) this often in an epoch; 0: never
        self._sums: torch.Tensor | None = None  # the epoch so far on the device (training/sums.py)
        self._started = 0.0  # perf_counter at the epoch's start, less the time of its resumed part
        self.last_loss: torch.Tensor | None = None  # the last micro-batch's loss (detached; reading it syncs)
        self.last_output: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None  # its outputs
        self.last_validation: EvalResult | None = None  # the last epoch's, with its probabilities and labels
        self._last_checkpoint = time.monotonic()

    def _wrap(self) -> nn.Module:
        forward = self.model
        self._trainable = self._trainable_now()
        if self.distributed is not None:
            # DDP reduces the gradients of the parameters that require one when it is built, and PyTorch does not
            # support changing that set afterwards: train_epoch wraps anew when it changes (fine-tuning's
            # head-only epochs, airbench's whitening-bias epochs)
            device_ids = [self.loader.device.index] if self.loader.device.type == "cuda" else None
            forward = nn.parallel.DistributedDataParallel(forward, device_ids=device_ids)
        if self.cfg.compile:
            forward = torch.compile(forward)
        return forward

    @property
    def lr(self) -> float:
        """The lr the latest step used at full scale (a backbone at backbone_lr_scale runs lower)."""
        return reported_lr(self.optimizer)

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are evaluated and saved as the model: the EMA when on."""
        return self.ema.module if self.ema is not None else self.model

    def _trainable_now(self) -> tuple[bool, ...]:
        return tuple(p.requires_grad for p in self.model.parameters())

    def set_head_only(self, head_only: bool) -> None:
        """Fine-tuning's first phase: freeze everything but the classifier (and keep its BatchNorm statistics)."""
        head = head_parameters(self.model)
        for param in self.model.parameters():
            param.requires_grad_(id(param) not in self._frozen and (not head_only or id(param) in head))
        for module in self.model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.train(not head_only)

    # --- one epoch -----------------------------------------------------------------------------

    def train_epoch(self) -> bool:
        """Train the rest of the current epoch; return False if stopped before its end."""
        cfg, state, precision, device = self.cfg, self.state, self.precision, self.loader.device
        self.model.train()
        if cfg.head_epochs:  # fine-tuning: classifier alone first, then everything
            self.set_head_only(state.epoch <= cfg.head_epochs)  # every epoch: model.train() put BatchNorm back
        if self._whiten_bias is not None:  # airbench94: the whitening bias trains in the first epochs only
            self._whiten_bias.requires_grad_(state.epoch <= cfg.whiten_bias_epochs)
        if self.distributed is not None and self._trainable_now() != self._trainable:
            self.forward = self._wrap()  # DDP reduces the gradients of what trained when it was built
        self.loader.set_position(state.epoch, state.batch)
        if len(state.sums) != self.sums.size:  # a checkpoint of a run that counted otherwise: keep its loss sums
            state.sums = [*state.sums[:BASE], *self.sums.zeros()[BASE:]]
        sums = torch.tensor(state.sums, device=device, dtype=torch.float64)  # stay on the device: no sync per step
        warm_marks = None
        if state.warming:  # the window starts here, over all processes
            marks = all_reduce_sum(torch.stack([sums[1], sums.new_tensor(float(state.seen))]), self.distributed)
            warm_marks = tuple(marks.tolist())
        started = time.perf_counter() - state.seconds
        self._sums, self._started = sums, started
        total_batches = len(self.loader)
        batch_hooks = [callback for callback in self.callbacks if overrides(callback, "on_batch_end")]
        for images, labels, *weights in self.loader:  # sample weights third, when the data has them
            weights = weights[0] if weights else None
            if weights is not None and self.custom_criterion:  # a generator's batches may bring weights late
                raise UserError(OWN_LOSS_WEIGHTED)
            micro = state.batch % cfg.accumulate
            last_micro = micro == cfg.accumulate - 1 or state.batch == total_batches - 1
            # the step's loss is the mean over its micro-batches, and the epoch's last step may have fewer
            group = min(cfg.accumulate, total_batches - (state.batch - micro))
            if micro == 0:
                self._set_lr()
                self.optimizer.zero_grad(set_to_none=True)
            images = precision.layout(images)
            no_sync = self.distributed is not None and not last_micro and hasattr(self.forward, "no_sync")
            with self.forward.no_sync() if no_sync else nullcontext(), precision.autocast():
                logits = self.forward(images)
                loss = self.criterion(logits, labels) if weights is None else \
                    (self.sample_criterion(logits, labels) * weights).sum() / len(labels)
            scaled = loss / group
            (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            self.sums.add(sums, loss, logits, labels, weights)
            self.last_loss = loss.detach()
            self.last_output = (logits.detach(), labels, weights)  # (logits, labels, sample weights or None)
            state.batch += 1
            state.seen += len(labels)
            if not last_micro:
                continue
            self._optimizer_step()
            if state.warming and state.step % WARMUP_CHECK_STEPS == 0:
                warm_marks = self._check_warmup(sums, warm_marks)
            for callback in batch_hooks:
                callback.on_batch_end(self)
            if self._stop_agreed(state.step % STOP_CHECK_STEPS == 0) or \
                    (cfg.max_steps is not None and state.step >= cfg.max_steps):
                break
            if self._checkpoint_due():
                self._save_midway(sums, started)
        state.sums, state.seconds = sums.tolist(), time.perf_counter() - started
        if self.distributed is None:
            check_loss(state.sums[0] / max(state.seen, 1), self.state.step)
        return state.batch >= total_batches

    def _set_lr(self) -> float:
        if self.state.warming:
            return set_lr(self.optimizer, 1.0, absolute=self.cfg.warmup_lr)
        return set_lr(self.optimizer, self.schedule(self.state.step))

    def _optimizer_step(self) -> None:
        if self.cfg.grad_clip:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.state.step += 1
        if self.lookahead is not None:
            self.lookahead.step(self.state.step)
        if self.ema is not None:
            self.ema.update(self.model)

    def _check_warmup(self, sums: torch.Tensor, marks: tuple[float, int]) -> tuple[float, int]:
        """He et al. 2015: leave the low warm-up lr once training accuracy passes the threshold (over all
        processes, so that they all leave at the same step)."""
        totals = all_reduce_sum(torch.stack([sums[1], sums.new_tensor(float(self.state.seen))]), self.distributed)
        correct, seen = totals.tolist()
        if (correct - marks[0]) / max(1.0, seen - marks[1]) >= self.cfg.warmup_until_accuracy:
            self.state.warming = False
        return correct, seen

    def _stop_agreed(self, check: bool = True) -> bool:
        """Stop now? One process alone: when asked. Several: when any was asked, checked only where all
        check (`check`): every STOP_CHECK_STEPS steps and at epoch ends."""
        if self.distributed is not None and not check:
            return False
        if not any_process(self.stop.requested, self.distributed, self.loader.device):
            return False
        self.stop.request("another process's stop request")  # keeps this process's own reason if it had one
        return True

    def running_metrics(self) -> tuple[float, float, float]:
        """(loss, accuracy, images per second) of the epoch so far, this process's images (reading them waits
        for the device: the progress display asks only when it refreshes)."""
        seen = max(self.state.seen, 1)
        loss = self._sums[0].item() / seen
        if self.distributed is None:  # several processes check together, at the epoch's end (finish_epoch)
            check_loss(loss, self.state.step)
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        return loss, self._sums[1].item() / seen, seen * (self.distributed.world if self.distributed else 1) / elapsed

    def _checkpoint_due(self) -> bool:
        due = self.checkpoint_minutes > 0 and time.monotonic() - self._last_checkpoint >= self.checkpoint_minutes * 60
        return due and any(overrides(callback, "on_checkpoint") for callback in self.callbacks)

    def _save_midway(self, sums: torch.Tensor, started: float) -> None:
        self.state.sums, self.state.seconds = sums.tolist(), time.perf_counter() - started
        check_loss(self.state.sums[0] / max(self.state.seen, 1), self.state.step)  # never checkpoint a diverged model
        check_weights(self)
        self._call("on_checkpoint")
        self._last_checkpoint = time.monotonic()

    # --- epochs ------------------------------------------------------------------------------------

    def validate(self) -> EvalResult | None:
        if self.val_data is None or len(self.val_data) == 0:
            return None
        inference = Inference(self.precision.dtype, self.precision.channels_last)  # as fast as training
        result = evaluate_model(self.eval_model, self.val_data, self.info, device=self.loader.device,
                                inference=inference)
        weights = getattr(self.val_data, "weights", None)
        if weights is not None and result.sample_losses is not None:  # Keras: sum(weight x loss) / N
            result.loss = float((weights.double().numpy() * result.sample_losses).mean())
        if self.custom_criterion and result.probs is not None:  # the loss trained on, from the log-probabilities
            with torch.no_grad():  # (logits up to a constant per image: exact for any softmax-based loss)
                log_probs = torch.from_numpy(result.probs).clamp_min(1e-30).log().to(self.loader.device)
                result.loss = float(self.criterion(log_probs, torch.from_numpy(result.labels).to(log_probs.device)))
        return result

    def finish_epoch(self) -> EpochMetrics:
        """Epoch-end bookkeeping: totals over processes, validation, history, early stopping."""
        state = self.state
        # on the training device: NCCL reduces CUDA tensors only
        totals = all_reduce_sum(torch.tensor([*state.sums, float(state.seen)], device=self.loader.device,
                                             dtype=torch.float64), self.distributed).cpu()
        self.epoch_counts = self.sums.counts(totals[:-1])
        totals = [*totals[:BASE].tolist(), float(totals[-1])]  # loss x n, correct, top-5, images
        seen = max(totals[3], 1)
        if self.distributed is not None:  # every process sees the same totals, so all stop together
            check_loss(totals[0] / seen, self.state.step)
        check_weights(self)  # before the epoch's checkpoints are written
        val = self.validate() if state.epoch % self.validate_every == 0 else None
        check_validation(self, val)
        self.last_validation = val
        metrics = EpochMetrics(
            epoch=state.epoch, train_loss=totals[0] / seen, train_accuracy=totals[1] / seen,
            train_top5=totals[2] / seen, val_loss=val.loss if val else None,
            val_accuracy=val.accuracy if val else None, val_top5=val.top5 if val else None,
            lr=self.lr, seconds=state.seconds,
            images_per_second=totals[3] / max(state.seconds, 1e-9))
        self.history.rows.append(metrics)
        state.epoch, state.batch, state.sums, state.seen, state.seconds = state.epoch + 1, 0, self.sums.zeros(), 0, 0.0
        return metrics

    def finished(self) -> bool:
        """All epochs done or max_steps reached: by the settings now in force (a resumed run may have been
        given more epochs than it finished with). Early stopping ends a run through `state.done`."""
        reached = self.cfg.max_steps is not None and self.state.step >= self.cfg.max_steps
        return self.state.epoch > self.cfg.epochs or reached

    def _stop_now(self) -> None:
        """A stop request (SIGINT/SIGTERM): record why and write `last` so the run can resume."""
        self.state.stop_reason = self.stop.reason
        self._call("on_checkpoint")

    def _call(self, hook: str, *args: object) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def run(self) -> History:
        """Train until the last epoch, `max_steps`, early stopping or a stop request; return the History."""
        state = self.state
        before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
        if self._deterministic is not None:
            torch.use_deterministic_algorithms(self._deterministic[0], warn_only=self._deterministic[1])
        check_callbacks(self.callbacks)
        load_state_dicts(self.callbacks, self.callback_state)
        try:
            with self.stop.installed():
                self._call("on_train_begin")
                while not state.done:
                    self._call("on_epoch_begin")
                    complete = self.train_epoch()
                    if not complete and self._stop_agreed():
                        self._stop_now()
                        break
                    metrics = self.finish_epoch()
                    state.done = self.finished()
                    self._call("on_epoch_end", metrics)  # early stopping, a Keras callback may end the run here
                    # several processes: rank 0's decision (early stopping reads each one's own validation)
                    state.done = main_process_says(state.done, self.distributed, self.loader.device)
                    if self._stop_agreed() and not state.done:
                        self._stop_now()
                        break
        except BaseException as error:
            for callback in self.callbacks:  # each is told; none of their own failures hides `error`
                with contextlib.suppress(Exception):
                    callback.on_exception(self, error)
            raise
        else:
            self._call("on_train_end")
        finally:
            torch.use_deterministic_algorithms(before[0], warn_only=before[1])
            if self.precision.channels_last:  # leave the model in the layout it came in (saved files are NCHW)
                self.model.to(memory_format=torch.contiguous_format)
                if self.ema is not None:
                    self.ema.module.to(memory_format=torch.contiguous_format)
        return self.history


def fit(model: nn.Module, info: ModelInfo, train_loader: Batches, cfg: TrainConfig, *,
        val_data: Split | None = None, optimizer: torch.optim.Optimizer | None = None,
        callbacks: Sequence[Callback] = (), progress: ProgressDisplay | None = None) -> History:
    """Train `model` for `cfg.epochs` epochs, validating on `val_data` after each; return the History.

    The short way in for a model and batches at hand; `resnetlab.train` builds a Trainer itself to add the
    run folder, checkpoints, resume and multi-process training, and the Keras facade to connect its callbacks.
    """
    shown = [ProgressCallback(progress)] if progress is not None else []
    trainer = Trainer(model, info, train_loader, cfg, val_data=val_data, optimizer=optimizer,
                      callbacks=[*shown, *callbacks])
    return trainer.run()
