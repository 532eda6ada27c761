"""Tables: printed to the terminal and written, with the machine they ran on, to bench/RESULTS.md."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

#: Packages whose versions decide the figures (the SDK, its transport, the host shim, storage).
PACKAGES = (
    "azure-functions",
    "azure-communication-identity",
    "azure-core",
    "azure-data-tables",
    "azure-identity",
    "aiohttp",
    "PyJWT",
)


@dataclass
class Table:
    """One benchmark's result: a title, columns, rows of cells and notes (targets, what dominates)."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([c if isinstance(c, str) else _fmt(c) for c in cells])

    def text(self) -> str:
        widths = [max(len(c), *(len(r[i]) for r in self.rows)) if self.rows else len(c) for i, c in enumerate(self.columns)]
        line = lambda cells: "  ".join(  # noqa: E731
            cell.ljust(width) if i == 0 else cell.rjust(width) for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        out = [f"\n== {self.title}", line(self.columns), line(["-" * w for w in widths])]
        out += [line(row) for row in self.rows]
        out += [f"  * {note}" for note in self.notes]
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in self.rows]
        if self.notes:
            out.append("")
            out += [f"- {note}" for note in self.notes]
        return "\n".join(out) + "\n"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if value < 100 else f"{value:.0f}"
    return str(value)


def verdict(met: bool, gap: str = "") -> str:
    return "met" if met else f"**missed** ({gap})" if gap else "**missed**"


def machine() -> dict[str, str]:
    """Cores, CPU model, RAM, OS, Python and package versions: what a reader needs to compare figures."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    node = "unknown"
    try:
        node = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10).stdout.strip() or node
    except (OSError, subprocess.SubprocessError):
        pass
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "ram": ram,
        "os": platform.platform(),
        "load average (1/5/15 min) when written": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": sys.version.split()[0],
        "node (Azurite)": node,
        "packages": ", ".join(versions),
    }


def write_results(path: Path, tables: list[Table], *, command: str, quick: bool) -> None:
    info = machine()
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{command}`{' (quick mode: counts scaled down)' if quick else ''}. Everything ran on one machine,",
        "against the ACS emulator and Azurite on loopback, sharing its cores with the benchmark itself;",
        "every figure is compared with a baseline measured in the same run. Regenerate with `make bench`.",
        "",
        "| machine | |",
        "|---|---|",
    ]
    lines += [f"| {key} | {value} |" for key, value in info.items()]
    lines.append("")
    for table in tables:
        lines.append(table.markdown())
    path.write_text("\n".join(lines), encoding="utf-8")
