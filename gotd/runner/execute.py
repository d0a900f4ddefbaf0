"""Executing one grid point with papermill: kernel, parameter checks, completion markers, failures.

Points run one after another in this process: papermill executes a notebook in a working directory that
is process-wide, so notebooks must never run in threads.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from gotd._io import provenance, write_json_atomic
from gotd.errors import GotdInputError
from gotd.runner.grid import Point

MARKER_FILE = ".gotd-done.json"
"""Written into a point's folder after its notebook ran to the end: the point is then skipped on resume."""

ATTEMPT_FILE = ".gotd-attempt.json"
"""Written into a point's folder when its notebook starts: which parameters and code the files come from."""

KERNEL_NAME = "python3"

_TYPE_CHECKS: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
    "list": (list,), "dict": (dict,), "tuple": (list,),
}


@dataclass
class PointResult:
    """What happened to one point: ``done``, ``skipped`` (done earlier), ``failed`` or ``blocked``."""

    name: str
    stage: str
    status: str
    seconds: float = 0.0
    error: dict[str, Any] | None = None


def ensure_kernel(name: str = KERNEL_NAME) -> str:
    """Return a kernel name whose kernel runs *this* Python interpreter, registering one if needed.

    ``python3`` is used when its kernel spec starts this interpreter (or plain ``python``, which
    jupyter_client replaces by ``sys.executable``). Otherwise (e.g. a user-wide ``python3`` spec pointing at
    another Python without gotd) a spec named ``gotd-<hash of sys.executable>`` is installed into this
    environment with ipykernel and returned.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(name)
        argv0 = spec.argv[0] if spec.argv else ""
        if argv0 in {"python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"} or (
                Path(argv0).exists() and Path(argv0).resolve() == Path(sys.executable).resolve()):
            return name
    except NoSuchKernel:
        pass
    try:
        from ipykernel.kernelspec import install
    except ImportError as exc:  # pragma: no cover - ipykernel is a declared dependency of the notebooks extra
        raise GotdInputError("ipykernel is not installed: pip install 'gotd[notebooks]'") from exc
    own = "gotd-" + hashlib.sha256(sys.executable.encode()).hexdigest()[:8]
    try:
        install(kernel_name=own, display_name=f"Python ({sys.executable})", prefix=sys.prefix)
    except PermissionError:
        install(kernel_name=own, display_name=f"Python ({sys.executable})", user=True)
    return own


def kernel_options() -> dict[str, Any]:
    """Keywords for papermill that make the kernel's connection encrypted (CurveZMQ) where it can be.

    ipykernel 7 warns at every start that its TCP sockets carry code and outputs in plain text unless the
    kernel manager provisions CurveZMQ keys. jupyter_client's ``transport_encryption="auto"`` does that for
    kernel specs that declare ``supported_encryption`` (ipykernel 7's own specs do, and so the kernel of
    :func:`ensure_kernel`); a jupyter_client without the setting gets nothing here.
    """
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    if "transport_encryption" not in KernelManager.class_trait_names():
        return {}
    return {"config": Config({"KernelManager": {"transport_encryption": "auto"}})}


def notebook_parameters(path: Path) -> dict[str, dict[str, Any]]:
    """The notebook's ``parameters`` cell as papermill reads it: name -> {inferred_type_name, default, help}.

    Raises
    ------
    GotdInputError
        If the notebook does not exist or has no cell tagged ``parameters``.
    """
    import papermill

    if not path.is_file():
        raise GotdInputError(f"notebook {path} does not exist; check stages[].notebook and notebook_dir")
    read_notebook(path)  # not JSON, or not a notebook: one line naming the file, before papermill's traceback
    try:
        params = papermill.inspect_notebook(str(path))
    except Exception as exc:  # nbformat's validation errors and papermill's own: the file is not a usable notebook
        raise GotdInputError(f"notebook {path} cannot be read as a Jupyter notebook ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}); restore it, e.g. with "
                             f"`jupytext --sync {path.with_suffix('.py')}`") from None
    if not params:
        raise GotdInputError(f"notebook {path} has no cell tagged 'parameters' (or it is empty); tag the cell "
                             "that holds the notebook's knobs")
    return params


def read_notebook(path: Path) -> dict[str, Any]:
    """The notebook's JSON; GotdInputError naming the file when it is not a notebook (bad JSON, no cells)."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GotdInputError(f"notebook {path} is not a valid notebook file ({exc}); restore it, e.g. with "
                             f"`jupytext --sync {path.with_suffix('.py')}` or from git") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise GotdInputError(f"notebook {path} is JSON but not a notebook (no list of cells); restore it, e.g. "
                             f"with `jupytext --sync {path.with_suffix('.py')}` or from git")
    return nb


OUTPUT_PARAMETERS: dict[str, str] = {"checkpoint_name": "models"}
"""Notebook parameters that name an output inside the point's folder, and the sub-folder they belong in."""


def check_kernel(name: str | None) -> None:
    """Refuse a ``--kernel`` that Jupyter does not know, naming the installed ones (None: the default)."""
    if name is None:
        return
    from jupyter_client.kernelspec import KernelSpecManager

    known = sorted(KernelSpecManager().find_kernel_specs())
    if name not in known:
        raise GotdInputError(f"--kernel {name!r} is not an installed Jupyter kernel (installed: "
                             f"{', '.join(known) or 'none'}); leave --kernel out to use this Python, or install "
                             "it with `python -m ipykernel install --user --name NAME`")


def check_parameters(point: Point, declared: dict[str, dict[str, Any]]) -> None:
    """Check the point's parameter names (and simple types) against the notebook's ``parameters`` cell.

    papermill accepts unknown names with only a warning; a typo in a config would then silently run the
    notebook's default. Types are checked where the notebook annotates a plain builtin type. A parameter
    of :data:`OUTPUT_PARAMETERS` must name an entry inside its sub-folder of the point's folder
    (:func:`gotd.outputs.check_output`).
    """
    from gotd.outputs import check_output

    nb = point.stage.notebook.name
    unknown = [k for k in point.parameters if k not in declared]
    if unknown:
        raise GotdInputError(f"stage {point.stage.name}: notebook {nb} has no parameter {unknown[0]!r} "
                             f"(its parameters: {', '.join(declared)}); fix the config's params")
    for key, value in point.parameters.items():
        typename = str(declared[key].get("inferred_type_name") or "None")
        base, optional = _base_type(typename)
        allowed = _TYPE_CHECKS.get(base)
        if allowed is None or (value is None and optional):
            continue
        wrong = not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)
        if wrong:
            raise GotdInputError(f"stage {point.stage.name}: parameter {key} of {nb} is annotated {typename} but "
                                 f"the config gives {value!r} ({type(value).__name__}); fix the value in params")
    for key, sub in OUTPUT_PARAMETERS.items():
        if isinstance(point.parameters.get(key), str):
            try:
                check_output(point.parameters[key], flag=key, inside=point.run_dir / sub, folder=True, probe=False)
            except GotdInputError as exc:
                raise GotdInputError(f"stage {point.stage.name}: {exc}") from None


def _base_type(typename: str) -> tuple[str | None, bool]:
    """``"Optional[int]"`` -> ("int", True); ``"list[str] | None"`` -> ("list", True); unions -> (None, ...)."""
    t = typename.replace(" ", "")
    optional = False
    if t.startswith("Optional[") and t.endswith("]"):
        t, optional = t[len("Optional["):-1], True
    parts = t.split("|")
    if "None" in parts:
        optional = True
        parts.remove("None")
    if len(parts) != 1:
        return None, optional
    return parts[0].split("[")[0].lower(), optional


def notebook_fingerprint(path: Path) -> str:
    """SHA-256 of the notebook's code cells (sources and tags): outputs and metadata do not count."""
    nb = read_notebook(path)
    digest = hashlib.sha256()
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        digest.update(("".join(source) if isinstance(source, list) else source).encode("utf-8"))
        digest.update(json.dumps(cell.get("metadata", {}).get("tags", [])).encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


def parameters_fingerprint(parameters: dict[str, Any]) -> str:
    """SHA-256 of the parameters as canonical JSON."""
    return hashlib.sha256(json.dumps(parameters, sort_keys=True).encode("utf-8")).hexdigest()


HASHED_BYTES = 64 << 20
"""Files up to this size are proved by their SHA-256 in the completion marker; bigger ones (model weights)
by their size, so that checking a finished run stays quick."""


def outputs_proof(folder: Path) -> dict[str, dict[str, Any]]:
    """Every file the point wrote, by path relative to ``folder``: its size in bytes and, up to
    :data:`HASHED_BYTES`, its SHA-256 (the markers themselves are left out)."""
    from gotd._io import file_sha256

    proof: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in (MARKER_FILE, ATTEMPT_FILE)):
        size = path.stat().st_size
        entry: dict[str, Any] = {"bytes": size}
        if size <= HASHED_BYTES:
            entry["sha256"] = file_sha256(path)
        proof[path.relative_to(folder).as_posix()] = entry
    return proof


def outputs_intact(folder: Path, proof: Any) -> bool:
    """True when every file of ``proof`` (see :func:`outputs_proof`) is in ``folder`` unchanged."""
    from gotd._io import file_sha256

    if not isinstance(proof, dict) or not proof:
        return False
    for name, entry in proof.items():
        path = folder / name
        try:
            if not path.is_file() or path.stat().st_size != entry.get("bytes"):
                return False
            if "sha256" in entry and file_sha256(path) != entry["sha256"]:
                return False
        except (OSError, AttributeError):
            return False
    return True


def is_done(point: Point, notebook_sha: str) -> bool:
    """True if the point's completion marker matches its current parameters and notebook code, and every
    output it records is still there unchanged (a truncated ``results.csv`` makes the point run again)."""
    marker = point.run_dir / MARKER_FILE
    if not marker.is_file() or not point.output_notebook.is_file():
        return False
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return (isinstance(record, dict)
            and record.get("parameters_sha256") == parameters_fingerprint(point.parameters)
            and record.get("notebook_sha256") == notebook_sha
            and outputs_intact(point.run_dir, record.get("outputs")))


def _prepare_run_dir(point: Point, notebook_sha: str, keep_partial: bool) -> None:
    attempt = {"parameters_sha256": parameters_fingerprint(point.parameters), "notebook_sha256": notebook_sha}
    attempt_file = point.run_dir / ATTEMPT_FILE
    resumable = False
    if keep_partial and attempt_file.is_file() and not (point.run_dir / MARKER_FILE).exists():
        try:
            resumable = json.loads(attempt_file.read_text(encoding="utf-8")) == attempt
        except (OSError, json.JSONDecodeError):
            resumable = False
    if point.run_dir.exists() and not resumable:
        shutil.rmtree(point.run_dir)
    point.run_dir.mkdir(parents=True, exist_ok=True)
    for stale in (MARKER_FILE, "results.csv"):
        (point.run_dir / stale).unlink(missing_ok=True)
    write_json_atomic(attempt_file, attempt)


class _Tee:
    """A write-only stream that copies to several streams (the point's log file and, optionally, stderr)."""

    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for s in self.streams:
            s.write(text)
        return len(text)

    def flush(self) -> None:
        for s in self.streams:
            s.flush()


def execute_point(point: Point, *, kernel_name: str, notebook_sha: str, cwd: Path, progress: bool = True,
                  stream_output: bool = True, keep_partial: bool = True) -> PointResult:
    """Run the point's notebook with papermill and write its completion marker on success.

    The point's folder is emptied first, so it holds the files of one execution only, with one exception:
    when ``keep_partial`` is set and the folder holds an unfinished attempt with the same parameters and
    notebook code (an interrupted or failed run), its files stay, so that a notebook that resumes its own
    work (training checkpoints under ``models/``) can pick up where it stopped; only its ``results.csv``
    goes. The executed
    notebook goes to ``point.output_notebook`` (also on failure: papermill adds an error banner), the
    kernel's stdout and stderr to ``<run>/logs/<point>.log``; stderr (progress bars) is also copied to this
    process's stderr when ``stream_output`` is set.

    Returns
    -------
    PointResult
        ``done``, or ``failed`` with ``error`` = {notebook, cell_index, exec_count, ename, evalue, source,
        output_notebook, log}.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    _prepare_run_dir(point, notebook_sha, keep_partial)
    log_path = point.run_dir.parent / "logs" / f"{point.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    error: dict[str, Any] | None = None
    with open(log_path, "w", encoding="utf-8") as log:
        err_stream = _Tee(log, sys.stderr) if stream_output else log
        try:
            kwargs: dict[str, Any] = kernel_options()
            if point.stage.timeout is not None:
                kwargs["execution_timeout"] = point.stage.timeout
            papermill.execute_notebook(
                str(point.stage.notebook), str(point.output_notebook), parameters=point.parameters,
                kernel_name=kernel_name, progress_bar=progress, cwd=str(cwd), stdout_file=log,
                stderr_file=err_stream, **kwargs)
        except PapermillExecutionError as exc:
            error = {"cell_index": exc.cell_index, "exec_count": exc.exec_count, "ename": exc.ename,
                     "evalue": exc.evalue, "source": exc.source}
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # kernel death, timeouts, unreadable notebooks: record and go on
            error = {"cell_index": None, "exec_count": None, "ename": type(exc).__name__, "evalue": str(exc),
                     "source": None}
    seconds = time.perf_counter() - start
    if error is not None:
        error.update({"notebook": str(point.stage.notebook), "output_notebook": str(point.output_notebook),
                      "log": str(log_path)})
        return PointResult(point.name, point.stage.name, "failed", seconds, error)
    write_json_atomic(point.run_dir / MARKER_FILE, {
        "point": point.name, "stage": point.stage.name, "notebook": str(point.stage.notebook),
        "notebook_sha256": notebook_sha, "parameters": point.parameters,
        "parameters_sha256": parameters_fingerprint(point.parameters), "axes": point.axes,
        "seconds": round(seconds, 3), "kernel": kernel_name, "outputs": outputs_proof(point.run_dir),
        **provenance()})
    return PointResult(point.name, point.stage.name, "done", seconds)
