"""Resolving a causal-LM argument (registry name, folder, hub id) and loading model and tokenizer."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gotd.errors import GotdInputError
from gotd.models._gguf import fetch_model
from gotd.models._registry import CAUSAL_LMS, DEFAULT_CAUSAL_LM, MODELS, is_fetched, model_dir


def _looks_like_local_path(name: str) -> bool:
    # Hub ids are "name" or "owner/name"; anything with more structure is meant as a folder.
    return (name.startswith(("/", "./", "../", "~", ".")) or "\\" in name or name.count("/") > 1
            or Path(name).expanduser().exists())


def resolve_causal_lm(name_or_path: str | os.PathLike[str], *, fetch: bool = True) -> str | Path:
    """Turn a causal-LM argument into what ``from_pretrained`` takes.

    Parameters
    ----------
    name_or_path : str or path
        A registry name (``"smollm2-135m"``, ``"gemma3-270m"``, ``"tiny"``; ``"default"`` means
        ``"smollm2-135m"``), a local folder written by ``save_pretrained``, or a hub id (``"owner/name"``),
        returned unchanged.
    fetch : bool
        Fetch/convert (or build) a registry model that is not ready yet; with False, raise instead.

    Returns
    -------
    Path or str
        The model folder (absolute) or the hub id.

    Raises
    ------
    GotdInputError
        Empty argument, ``"minilm"`` (an encoder), a path that does not exist or holds no
        ``config.json``, or a registry model not fetched when ``fetch=False``.
    """
    if isinstance(name_or_path, os.PathLike):
        name_or_path = os.fspath(name_or_path)
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise GotdInputError(f"model={name_or_path!r} is not a model name; pass one of {', '.join(CAUSAL_LMS)}, "
                             "a local folder or a hub id")
    text = name_or_path.strip()
    key = DEFAULT_CAUSAL_LM if text.lower() == "default" else text.lower()
    if key in MODELS:
        spec = MODELS[key]
        if not spec.is_causal_lm:
            raise GotdInputError(
                f"'{spec.name}' is an encoder ({spec.source}), not a causal LM; pass one of "
                f"{', '.join(CAUSAL_LMS)}, a local folder or a hub id"
            )
        if is_fetched(spec.name):
            return model_dir(spec.name)
        if not fetch:
            raise GotdInputError(f"model '{spec.name}' is not fetched yet; run `gotd models fetch {spec.name}`")
        return fetch_model(spec.name)
    folder = Path(text).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise GotdInputError(f"model folder {folder} has no config.json; pass a folder written by save_pretrained")
        return folder.resolve()
    if _looks_like_local_path(text):
        raise GotdInputError(
            f"model folder {text} does not exist (or is not a folder); check the path, or pass one of "
            f"{', '.join(CAUSAL_LMS)}"
        )
    return text


def _hub_error(model: str, cause: Exception) -> GotdInputError:
    offline = any(os.environ.get(v, "") not in ("", "0") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    reason = "HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set" if offline else "the Hugging Face hub is unreachable"
    first_line = str(cause).splitlines()[0] if str(cause) else ""
    return GotdInputError(
        f"cannot load causal LM '{model}': it is not a registry name or a local folder, {reason}, and it is not "
        f"in the local hub cache ({type(cause).__name__}: {first_line}); use an offline model instead: "
        f"{', '.join(CAUSAL_LMS)} (`gotd models list`) or a local folder saved with save_pretrained"
    )


def resolve_device(device: str | None = None) -> str:
    """The device name for ``device`` (``None``/``"auto"``: cuda when visible); see :func:`gotd.devices.resolve_device`."""
    from gotd.devices import resolve_device as _resolve

    return str(_resolve(device))


def resolve_dtype(dtype: Any, device: str | None = None) -> Any:
    """The torch dtype for ``dtype`` on ``device`` (auto: bf16 on a GPU that has it, else float32).

    See :func:`gotd.devices.resolve_dtype`; model loading never picks bf16 automatically on a CPU.
    """
    from gotd.devices import resolve_dtype as _resolve

    return _resolve(dtype, device, cpu_bf16=False, allowed=("float32", "bfloat16", "float16"))


def load_causal_lm(
    name_or_path: str | os.PathLike[str] = DEFAULT_CAUSAL_LM,
    *,
    device: str | None = None,
    dtype: Any = None,
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer, ready to use.

    Parameters
    ----------
    name_or_path : str or path
        See :func:`resolve_causal_lm`; a registry model is fetched and converted on first use.
    device : str, optional
        ``None``/``"auto"``: CUDA when present, else CPU.
    dtype : str or torch.dtype, optional
        ``None``/``"auto"``: bfloat16 on a GPU that supports it, float32 otherwise (CPU included).

    Returns
    -------
    (model, tokenizer)
        The model in eval mode on ``device``; the tokenizer always has a pad token (its eos token when
        it had none; ``model.config.pad_token_id`` is set to match).

    Raises
    ------
    GotdInputError
        Bad name, path, device or dtype; a hub id that cannot be loaded offline (names the alternatives).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gotd.devices import resolve_device as _resolve_device

    resolved = resolve_causal_lm(name_or_path)
    place = _resolve_device(device)
    torch_dtype = resolve_dtype(dtype, place)
    local = isinstance(resolved, Path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved)
        model = AutoModelForCausalLM.from_pretrained(resolved, dtype=torch_dtype)
    except (OSError, ValueError) as exc:
        if local:
            raise GotdInputError(f"cannot load a causal LM and tokenizer from {resolved}: {exc}") from exc
        raise _hub_error(str(resolved), exc) from exc
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise GotdInputError(f"the tokenizer of {resolved} has neither a pad nor an eos token; add a pad token "
                                 "(tokenizer.add_special_tokens) and save the folder again")
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(place).eval(), tokenizer


def load_causal_lm_and_tokenizer(model: Any, tokenizer: Any = None, *, device: str | None = None,
                                 dtype: Any = None) -> tuple[Any, Any, str]:
    """Return ``(model, tokenizer, name)`` for a registry name, a folder, a hub id or loaded objects.

    Names and folders are loaded by :func:`load_causal_lm` (registry models are fetched and converted on
    first use; ``device``/``dtype`` default to the GPU with bf16 when there is one, else the CPU in fp32).
    A loaded model is returned as it is and needs its tokenizer passed as well.
    """
    if not isinstance(model, (str, os.PathLike)):
        if tokenizer is None:
            raise GotdInputError("pass the tokenizer together with a loaded model (tokenizer=...)")
        name = getattr(getattr(model, "config", None), "name_or_path", None) or type(model).__name__
        return model, tokenizer, str(name)
    name = os.fspath(model)
    loaded, tok = load_causal_lm(name, device=device, dtype=dtype)
    return loaded, (tokenizer if tokenizer is not None else tok), name


def resolve_model_location(name: str | os.PathLike[str]) -> str:
    """A folder or hub id for ``name`` as ``from_pretrained`` takes it (registry names fetched or built)."""
    return os.fspath(resolve_causal_lm(name))
