"""``make bench``: the service's speed, cold start and memory, each against a baseline from the same run.

Starts Azurite and the ACS emulator on loopback once, runs the selected benchmarks from
:data:`BENCHMARKS`, prints a table per benchmark and (for a full run of all of them) writes
``bench/RESULTS.md`` with the machine, Python and package versions and the date.

Usage: python -m bench [--quick] [--only overhead,concurrency,...] [--output PATH | --no-write]
(``fleet``: several instances behind HAProxy under a storm, a kill and an Azurite restart, minutes;
``sweep_scale``: the revocation sweep at 10,000 and 100,000 identities, peak memory of each, ~8 min;
``--only azurite_partition``: why sweep_scale does not sweep 100,000 ledger requests in Azurite; opt-in, ~8 min.)

Adding a benchmark: write ``run(ctx: BenchContext) -> list[Table]`` in a module of this package
(e.g. ``bench/sweep.py``) and add its name to :data:`BUILTIN` below.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench.common import EMULATOR_NO_LIMITS, ROOT, BenchContext, base_env
from bench.report import Table, write_results

Benchmark = Callable[[BenchContext], list[Table]]

#: name -> benchmark, run in this order. The lead's revocation sweep benchmark registers here.
BENCHMARKS: dict[str, Benchmark] = {}


def register(name: str, benchmark: Benchmark) -> None:
    """Add a benchmark to ``make bench`` (and to ``--only``)."""
    BENCHMARKS[name] = benchmark


#: Modules of this package with ``run(ctx) -> list[Table]``, imported only when selected.
BUILTIN = ("overhead", "concurrency", "latency", "coldstart", "memory", "sweep", "campaign", "fleet", "sweep_scale")
#: Like BUILTIN, but run only when named in ``--only``: azurite_partition times Azurite's point operations in one
#: partition of 10,000 and of 100,000 rows (about 8 minutes), the reason sweep_scale sweeps the identity map.
OPT_IN = ("azurite_partition",)


def _lazy(module: str) -> Benchmark:
    """The benchmark of ``bench.<module>``, imported only when it runs."""

    def benchmark(ctx: BenchContext) -> list[Table]:
        result: list[Table] = importlib.import_module(f"bench.{module}").run(ctx)
        return result

    return benchmark


def _load_builtin() -> None:
    for name in (*BUILTIN, *OPT_IN):
        register(name, _lazy(name))


def main(argv: list[str] | None = None) -> int:
    _load_builtin()
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="scale every count down (a smoke run in well under a minute each)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument(
        "--output", type=Path, default=None, help="write the results here (default: bench/RESULTS.md for a full run)"
    )
    parser.add_argument("--no-write", action="store_true", help="only print")
    args = parser.parse_args(argv)

    default = [name for name in BENCHMARKS if name not in OPT_IN]
    selected = [name.strip() for name in args.only.split(",") if name.strip()] or default
    unknown = [name for name in selected if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    output = args.output
    if output is None and not args.no_write and not args.quick and selected == default:
        output = ROOT / "bench" / "RESULTS.md"

    from localdev.azurite import start_azurite
    from localdev.emulator_process import start_emulator

    tables: list[Table] = []
    with (
        tempfile.TemporaryDirectory(prefix="acs-bench-") as tmp,
        start_azurite(location=Path(tmp) / "azurite") as azurite,
        start_emulator(*EMULATOR_NO_LIMITS, cert_dir=Path(tmp)) as emulator,
    ):
        ctx = BenchContext(azurite=azurite, emulator=emulator, quick=args.quick, env=base_env(azurite, emulator))
        for name in selected:
            started = time.perf_counter()
            print(f"-- {name} ...", flush=True)
            try:
                results = BENCHMARKS[name](ctx)
            except Exception as error:  # noqa: BLE001 - one failed benchmark must not lose the others' figures
                traceback.print_exc()
                failed = Table(f"{name}: FAILED", ["error"])
                failed.add(f"{type(error).__name__}: {str(error)[:200]}")
                results = [failed]
            for table in results:
                print(table.text(), flush=True)
            print(f"   ({name}: {time.perf_counter() - started:.0f} s)", flush=True)
            tables.extend(results)
    if output is not None and not args.no_write:
        command = "make bench" if not argv and len(sys.argv) == 1 else "python -m bench " + " ".join(argv or sys.argv[1:])
        write_results(output, tables, command=command, quick=args.quick)
        print(f"\nwrote {os.path.relpath(output, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
