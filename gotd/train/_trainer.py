"""The training run: the transformers Trainer over packed blocks, with checkpoints and resuming."""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gotd._io import provenance, write_json_atomic
from gotd.devices import resolve_device
from gotd.errors import GotdError, GotdInputError
from gotd.models import document_separator_id, load_causal_lm_and_tokenizer
from gotd.outputs import check_output
from gotd.train._config import _FORMAT_VERSION, _RUN_FILE, PRESETS, RECORD_NAME, TrainConfig, TrainResult, preset
from gotd.train._packing import _BlockDataset, _PadCollator, _tokenize, load_training_texts, pack_token_blocks
from gotd.train._record import _base_model_info, _blocks_trained, _save_output, reusable_output

logger = logging.getLogger(__name__)

def _mixed_precision(precision: str, device: str) -> str:
    """The precision the Trainer will use: ``fp32``, ``bf16`` or ``fp16``."""
    import torch

    if precision != "auto":
        if precision == "fp16" and not device.startswith("cuda"):
            raise GotdInputError("precision='fp16' needs a CUDA GPU; use 'bf16' or 'fp32' on CPU")
        return precision
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"



def _loss_progress_callback() -> Any:
    """A progress bar that shows the latest loss and learning rate instead of printing log lines."""
    from transformers.trainer_callback import ProgressCallback

    class LossProgressCallback(ProgressCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            super().on_train_begin(args, state, control, **kwargs)
            if self.training_bar is not None:
                self.training_bar.set_description("pre-fine-tuning")

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            if self.training_bar is not None and logs and "loss" in logs:
                self.training_bar.set_postfix(loss=f"{logs['loss']:.4f}",
                                              lr=f"{logs.get('learning_rate', float('nan')):.2e}")

    return LossProgressCallback()


def _curve(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"step": int(e["step"]), "epoch": float(e.get("epoch", float("nan"))), "loss": float(e["loss"]),
             "learning_rate": float(e.get("learning_rate", float("nan"))),
             **({"grad_norm": float(e["grad_norm"])} if "grad_norm" in e else {})}
            for e in log_history if "loss" in e and "step" in e]


def _run_signature(config: TrainConfig, data: dict[str, Any], model_name: str) -> dict[str, Any]:
    """What a checkpoint folder must match to be resumed: the model, the data and the recipe."""
    return {"model": model_name, "texts_sha256": data["texts_sha256"], "config": config.to_dict()}


def _check_resumable(checkpoint_dir: Path, signature: dict[str, Any], resume: Any) -> str | None:
    """Return the checkpoint to resume from (or None), after checking it belongs to this run."""
    from transformers.trainer_utils import get_last_checkpoint

    if resume is None or resume is False:
        if checkpoint_dir.is_dir() and get_last_checkpoint(checkpoint_dir) is not None:
            raise GotdInputError(f"{checkpoint_dir} holds checkpoints of an earlier, unfinished run; continue it with "
                                 "resume_from_checkpoint=True (--resume) or delete that folder to start afresh")
        return None
    if resume is True:
        last = get_last_checkpoint(checkpoint_dir) if checkpoint_dir.is_dir() else None
        if last is None:
            raise GotdInputError(f"resume_from_checkpoint=True but {checkpoint_dir} holds no checkpoint-<step> folder; "
                                 "start without resuming, or pass the checkpoint folder")
        resume = last
    resume_path = Path(resume)
    if not resume_path.is_dir():
        raise GotdInputError(f"checkpoint {resume_path} does not exist; pass a checkpoint-<step> folder")
    run_file = resume_path.parent / _RUN_FILE
    if run_file.is_file():
        saved = json.loads(run_file.read_text(encoding="utf-8"))
        for key in ("model", "texts_sha256", "config"):
            if saved.get(key) != signature[key]:
                raise GotdInputError(
                    f"checkpoint {resume_path} was trained with a different {key} "
                    f"({saved.get(key)!r} != {signature[key]!r}); resume with the same model, data and settings, "
                    "or start a fresh run in another output folder")
    return os.fspath(resume_path)


def train(
    model: Any,
    data: Any,
    out_dir: str | os.PathLike[str],
    config: TrainConfig | str | None = None,
    *,
    tokenizer: Any = None,
    text_field: str = "text",
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume_from_checkpoint: bool | str | os.PathLike[str] | None = None,
    keep_checkpoints: bool = False,
    overwrite: bool = False,
    device: str | None = None,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Pre-fine-tune a causal LM on texts with next-token prediction and save it.

    The loss is the mean cross-entropy (nats per token) of each block's tokens given the tokens before
    them in the block, averaged over the non-padding tokens of a batch.

    Parameters
    ----------
    model : str, path or transformers model
        A registry name (``smollm2-135m``, ``tiny``; see :mod:`gotd.models`), a ``save_pretrained``
        folder, a hub id, or a loaded ``PreTrainedModel`` (then pass ``tokenizer``).
    data : path or sequence of str
        A selection file from ``gotd select`` / :func:`gotd.selection.save_selection`, any text file
        :func:`gotd.data.read_texts` reads, or the texts.
    out_dir : path
        Where the finished checkpoint goes. Must not exist unless ``overwrite``.
    config : TrainConfig or preset name, optional
        Default: the ``zero-shot`` preset.
    tokenizer : transformers tokenizer, optional
        Default: the model folder's tokenizer.
    text_field : str
        Text column of ``data`` when it is a file.
    checkpoint_dir : path, optional
        Where resumable checkpoints go during training. Default ``<out_dir>.checkpoints``.
    resume_from_checkpoint : bool or path, optional
        True: continue from the last checkpoint in ``checkpoint_dir``; a path: from that checkpoint.
        The checkpoint must come from the same model, data and config (checked).
    keep_checkpoints : bool
        Keep ``checkpoint_dir`` after success (default: delete it; the output folder is the result).
    overwrite : bool
        Train again and replace an existing ``out_dir``. Without it an existing ``out_dir`` is reused
        when it is a complete output of the same model, data (sha256 of the texts) and settings
        (:func:`reusable_output`), and refused otherwise.
    device : str, optional
        ``"cpu"`` forces the CPU; default: the GPU when there is one.
    progress : bool
        Show a progress bar with the latest loss.
    callbacks : sequence of transformers.TrainerCallback
        Extra Trainer callbacks.

    Returns
    -------
    TrainResult
        The output folder and its record (``result.curve`` is the loss curve).

    Raises
    ------
    GotdInputError
        Empty data, an existing output folder from another model, data or settings (or not a finished
        gotd output), a checkpoint from another run, bad settings.
    """
    if isinstance(config, str):
        config = preset(config)
    config = config or PRESETS["zero-shot"]
    out_dir = Path(out_dir).expanduser()
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else out_dir.with_name(out_dir.name + ".checkpoints")
    # writable, not in a data set, and replaced (overwrite) or deleted (after success) only when gotd wrote it
    check_output(out_dir, flag="out_dir", folder=True, record=RECORD_NAME, replaces_folder=True,
                 inputs={"data": data if isinstance(data, (str, os.PathLike)) else None})
    check_output(checkpoint_dir, flag="checkpoint_dir", folder=True, record=_RUN_FILE, probe=False)
    texts, data_info = load_training_texts(data, text_field=text_field)
    if out_dir.exists() and not overwrite:
        # the one rule for an existing output (CLI and notebooks alike): reuse it only when it is complete
        # and was trained from the same model, data and settings; refuse anything else
        reused = reusable_output(out_dir, model, data_info, config)
        logger.info("%s already holds this run (same model, data and settings); not training again", out_dir)
        return reused

    from transformers import Trainer, TrainingArguments, set_seed
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    device = str(resolve_device(device))
    precision = _mixed_precision(config.precision, device)
    # fp32 master weights whatever the device: mixed precision is the Trainer's autocast, not bf16 weights
    model_obj, tok, model_name = load_causal_lm_and_tokenizer(model, tokenizer, device="cpu", dtype="float32")

    # Tokenise without special tokens and pack; the tokenizer's length warning does not apply, since
    # long texts are split into blocks below.
    ids = _tokenize(tok, texts)
    separator = document_separator_id(tok)
    blocks, pack_stats = pack_token_blocks(ids, config.max_length, separator_id=separator, packing=config.packing)
    if pack_stats["n_texts_split"]:
        logger.warning("%d of %d texts are longer than max_length=%d tokens; they are split across consecutive "
                       "blocks (nothing is dropped)", pack_stats["n_texts_split"], len(texts), config.max_length)
    steps_per_epoch = math.ceil(len(blocks) / (config.batch_size * config.grad_accum))
    total_steps = math.ceil(steps_per_epoch * config.epochs)
    if config.max_steps is not None and config.max_steps < total_steps:
        seen = _blocks_trained(config.max_steps, steps_per_epoch, len(blocks), config)
        logger.warning("max_steps=%d stops before the %g epoch(s) end: %d block passes of the %d planned "
                       "(%d blocks x %g epochs) will be trained on", config.max_steps, config.epochs, seen,
                       math.ceil(len(blocks) * config.epochs), len(blocks), config.epochs)
        total_steps = config.max_steps
    warmup_steps = math.ceil(config.warmup_ratio * total_steps)

    set_seed(config.seed)
    if config.lora:
        model_obj = _wrap_lora(model_obj, config)
    if config.gradient_checkpointing:
        model_obj.config.use_cache = False
        if config.lora:
            model_obj.enable_input_require_grads()

    signature = _run_signature(config, data_info, model_name)
    resume = _check_resumable(checkpoint_dir, signature, resume_from_checkpoint)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(checkpoint_dir / _RUN_FILE, signature)

    args = TrainingArguments(
        output_dir=os.fspath(checkpoint_dir),
        num_train_epochs=config.epochs,
        # max_steps is a cap: the Trainer would otherwise run past the epochs to reach it
        max_steps=total_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=warmup_steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        weight_decay=config.weight_decay,
        adam_beta1=config.adam_beta1,
        adam_beta2=config.adam_beta2,
        adam_epsilon=config.adam_epsilon,
        max_grad_norm=config.max_grad_norm,
        optim="adamw_torch",
        seed=config.seed,
        data_seed=config.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device == "cpu",
        **_checkpointing_argument(config.gradient_checkpointing),
        logging_strategy="steps",
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        report_to="none",
        disable_tqdm=not progress,
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else (separator if separator is not None else 0)
    trainer = Trainer(model=model_obj, args=args, train_dataset=_BlockDataset(blocks),
                      data_collator=_PadCollator(pad_id), callbacks=list(callbacks))
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    if progress:
        trainer.add_callback(_loss_progress_callback())

    start = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - start

    final_model = trainer.model
    if config.lora and config.merge_lora:
        final_model = final_model.merge_and_unload()
    curve = _curve(trainer.state.log_history)
    state = trainer.state
    record = {
        "format_version": _FORMAT_VERSION,
        "model": model_name,
        "base_model": _base_model_info(model),
        "data": {**data_info, "text_field": text_field},
        "tokens": {**pack_stats, "block_size": config.max_length, "packing": config.packing,
                   "separator": None if separator is None else tok.convert_ids_to_tokens(separator),
                   "blocks_trained": _blocks_trained(state.global_step, steps_per_epoch, len(blocks), config)},
        "config": config.to_dict(),
        "seed": config.seed,
        "precision": precision,
        "steps": int(state.global_step),
        "steps_per_epoch": steps_per_epoch,
        "warmup_steps": warmup_steps,
        "epochs_done": float(state.epoch or 0.0),
        "train_loss": float(output.training_loss),
        "resumed_from": os.fspath(resume) if resume else None,
        "curve": curve,
        "seconds": round(seconds, 3),
        "seconds_per_step": round(seconds / max(1, state.global_step - _step_of(resume)), 4),
        "lora": ({"merged": config.merge_lora, "r": config.lora_r, "alpha": config.lora_alpha}
                 if config.lora else None),
        "checkpoint_dir": os.fspath(checkpoint_dir) if keep_checkpoints else None,
        **provenance(device=str(trainer.args.device)),
    }
    _save_output(final_model, tok, record, out_dir, overwrite=overwrite)
    if not keep_checkpoints:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    logger.info("pre-fine-tuned %s for %d steps in %.1f s -> %s", model_name, state.global_step, seconds, out_dir)
    return TrainResult(output_dir=out_dir, record=record)


def _checkpointing_argument(enabled: bool) -> dict[str, bool]:
    """The TrainingArguments keyword for activation checkpointing (renamed in transformers 5)."""
    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    if not enabled:
        return {}
    return {"activation_checkpointing": True} if "activation_checkpointing" in names else {"gradient_checkpointing": True}


def _step_of(checkpoint: str | None) -> int:
    if not checkpoint:
        return 0
    try:
        return int(Path(checkpoint).name.rsplit("-", 1)[-1])
    except ValueError:
        return 0


def _wrap_lora(model: Any, config: TrainConfig) -> Any:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:  # pragma: no cover - peft is in the lm extra
        raise GotdError("LoRA needs the peft package: pip install 'gotd[lm]'") from exc
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.lora_target_modules) if config.lora_target_modules else None,
                      task_type="CAUSAL_LM")
    wrapped = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    total = sum(p.numel() for p in wrapped.parameters())
    logger.info("LoRA: training %d of %d parameters (%.2f%%)", trainable, total, 100 * trainable / total)
    return wrapped
