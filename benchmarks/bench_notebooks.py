"""How long each notebook takes at its default size, stepped through in order as a reader would.

Every notebook runs with papermill at its own defaults; only the folders are set, so that each notebook
reads what the one before it wrote (02 trains on 01's GOT-D selection, 03 evaluates 02's checkpoint
against the base model, 05b and 05c read 05a and 05b, 06 reads 03). The built-in data sets are fetched
first into ``--data-dir`` and timed apart; the embedding and model caches start empty in the work folder
(``GOTD_CACHE_DIR``, ``GOTD_MODEL_DIR``), so each time includes its first-run costs (embedding the pool,
converting the GGUF checkpoint, pre-training the testbed LM). Printed and written per notebook: wall and
kernel CPU seconds, the load average before and after (the machine may be shared), and the CPU.

Usage::

    python benchmarks/bench_notebooks.py                       # every notebook -> results/notebooks_cpu.json
    python benchmarks/bench_notebooks.py --only 00 01          # some of them (the chain's inputs must exist)
    GOTD_CPU_BF16=0 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 \\
        python benchmarks/bench_notebooks.py --tag avx2        # a CPU without bf16, emulated

Writes ``benchmarks/results/notebooks_cpu[_<tag>].json`` atomically after every notebook.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from gotd._io import provenance, write_json_atomic
from gotd.runner.execute import kernel_options

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "benchmarks" / "results"
EMULATION_VARS = ("GOTD_CPU_BF16", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA")


def chain(work: Path, data_dir: Path) -> dict[str, dict[str, Any]]:
    """Each notebook's parameters: its defaults, with the run folders of the chain and the data folder."""
    run = {name: str(work / name) for name in (
        "00_ot_gradients_explained", "01_select", "02_prefinetune", "03_evaluate", "04_ablations",
        "05a_testbed_prepare", "05b_testbed_warmup", "05c_testbed_compare", "06_compare_real")}
    data = {"data_dir": str(data_dir)}
    params = {
        "00_ot_gradients_explained": {},
        "01_select": data,
        "02_prefinetune": {"selection_path": f"{run['01_select']}/selections/gotd.jsonl"},
        "03_evaluate": {**data, "model_dirs": {"gotd": f"{run['02_prefinetune']}/models"}},
        "04_ablations": data,
        "05a_testbed_prepare": {**data, "cache_dir": str(work / "cache")},
        "05b_testbed_warmup": {"prepared_dir": run["05a_testbed_prepare"]},
        "05c_testbed_compare": {"prepared_dirs": {"task": run["05a_testbed_prepare"]},
                                "warmup_dirs": {"task": {"0": run["05b_testbed_warmup"]}}},
        "06_compare_real": {"evaluate_dirs": {"0": run["03_evaluate"]}},
    }
    return {name: {"run_dir": run[name], **extra} for name, extra in params.items()}


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def fetch_data(data_dir: Path) -> float:
    """Build the built-in data sets the notebooks read (already built ones are kept); the seconds taken."""
    from gotd import assets

    start = time.perf_counter()
    names = assets.default_names("pool") + assets.default_names("task")
    for name in dict.fromkeys(names):
        assets.fetch(name, data_dir)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="notebook name prefixes, e.g. 00 01 (default: all)")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the run folders and caches (default: a new temp folder)")
    parser.add_argument("--data-dir", type=Path, default=REPO / "data",
                        help="where the built-in data sets are fetched to")
    parser.add_argument("--tag", default="", help="suffix of the results file, e.g. avx2")
    parser.add_argument("--kernel", default="python3")
    args = parser.parse_args()

    import papermill

    work = args.work or Path(tempfile.mkdtemp(prefix="gotd-bench-notebooks-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GOTD_CACHE_DIR", str(work / "cache"))
    os.environ.setdefault("GOTD_MODEL_DIR", str(work / "models"))
    out = RESULTS_DIR / f"notebooks_cpu{'_' + args.tag if args.tag else ''}.json"
    record: dict[str, Any] = {
        "cpu": cpu_model(), "cores": os.cpu_count(), "emulation": {v: os.environ.get(v) for v in EMULATION_VARS},
        "work": str(work), "caches": {"GOTD_CACHE_DIR": os.environ["GOTD_CACHE_DIR"],
                                      "GOTD_MODEL_DIR": os.environ["GOTD_MODEL_DIR"]},
        "data_fetch": {"load_before": load()}, "notebooks": {}, **provenance()}
    record["data_fetch"]["seconds"] = round(fetch_data(args.data_dir), 1)
    record["data_fetch"]["load_after"] = load()
    fetch = record["data_fetch"]
    print(f"data sets ready in {fetch['seconds']} s (load {fetch['load_after']})", flush=True)
    write_json_atomic(out, record)
    for name, params in chain(work, args.data_dir).items():
        if args.only and not any(name.startswith(p) for p in args.only):
            continue
        before, cpu0, start = load(), resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        error = None
        try:
            papermill.execute_notebook(str(REPO / "notebooks" / f"{name}.ipynb"), str(work / f"{name}.out.ipynb"),
                                       parameters=params, kernel_name=args.kernel, progress_bar=False,
                                       cwd=str(REPO / "notebooks"), **kernel_options())
        except Exception as exc:  # record the failure and go on: later notebooks may not need this one
            error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
        wall = time.perf_counter() - start
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        entry = {"wall_s": round(wall, 1), "kernel_cpu_s": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime
                                                                  - cpu0.ru_stime, 1),
                 "load_before": before, "load_after": load(), "parameters": params, "error": error}
        record["notebooks"][name] = entry
        write_json_atomic(out, record)
        print(f"{name}: {wall / 60:.1f} min wall, {entry['kernel_cpu_s'] / 60:.1f} min CPU, load {before} -> "
              f"{entry['load_after']}{'; FAILED ' + error if error else ''}", flush=True)
    print(f"written {out}")


if __name__ == "__main__":
    main()
