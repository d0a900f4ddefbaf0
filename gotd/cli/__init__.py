"""The ``gotd`` command line: select pre-fine-tuning data, embed texts, run the notebooks, train, evaluate.

Every error that comes from bad input is printed as one line (``gotd: error: ...``) with exit code 2; so is
an OT solve that did not converge (``--allow-unconverged`` keeps such a selection, and says so).

Layout: :mod:`gotd.cli._parser` (every command and option), :mod:`gotd.cli._select` (select, embed,
select-demo, methods: doors onto :func:`gotd.stages.select_stage`), :mod:`gotd.cli._commands` (data, models, run, train,
evaluate).
"""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from gotd.cli._commands import cmd_data, cmd_evaluate, cmd_models, cmd_run, cmd_train
from gotd.cli._parser import build_parser
from gotd.cli._select import cmd_embed, cmd_methods, cmd_renamed_demo, cmd_select, cmd_select_demo

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gotd`` console script; returns the exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:  # the renamed command: its old options must not hide the line naming the new one
        argv = ["demo"]
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from gotd.errors import GotdError

    handlers = {"select": cmd_select, "embed": cmd_embed, "methods": cmd_methods,
                "select-demo": cmd_select_demo, "demo": cmd_renamed_demo,
                "data": cmd_data, "run": cmd_run, "models": cmd_models, "train": cmd_train,
                "evaluate": cmd_evaluate}
    try:
        return handlers[args.command](args)
    except GotdError as exc:  # bad input and unconverged solves alike: one line, exit 2
        print(f"gotd: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        print(f"gotd: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a disk that filled up or went read-only mid-way: one line, not a traceback
        from gotd.outputs import write_error

        where = exc.filename if exc.filename is not None else "an output"
        print(f"gotd: error: {write_error(where, exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gotd: interrupted; finished files are complete, nothing half-written was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
