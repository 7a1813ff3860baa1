"""Start-up: what every `memes` command pays before it does its work.

Times whole processes, best of --runs each (the best is the least disturbed by other load):

1. baseline: `python -c pass` (the interpreter alone);
2. `python -c "import pipeline.config"` (pydantic and the settings classes);
3. the config parsed: `import pipeline.config; pipeline.config.parse({})`;
4. `memes --help`;
5. `memes list` in an empty library (config read, catalog made): a command's whole start.

Prints the wall time and the CPU time (user + system, which other load on the machine
disturbs far less) of each, and the CPU time each adds to the baseline.

    .venv/bin/python bench/startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cases() -> list[tuple[str, list[str]]]:
    python = [sys.executable]
    memes = [sys.executable, "-m", "pipeline.cli"]
    return [
        ("baseline: python -c pass", [*python, "-c", "pass"]),
        ("import pipeline.config", [*python, "-c", "import pipeline.config"]),
        ("config parsed", [*python, "-c", "import pipeline.config as c; c.parse({})"]),
        ("memes --help", [*memes, "--help"]),
        ("memes list (empty library)", [*memes, "list"]),
    ]


def best_of(argv: list[str], folder: Path, runs: int) -> tuple[float, float]:
    """The best wall time and the best CPU time (user + system: what the process itself
    spent, far less disturbed by other load on the machine) of ``runs`` runs."""
    wall = cpu = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        process = subprocess.Popen(argv, cwd=folder, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)  # fmt: skip
        _, status, usage = os.wait4(process.pid, 0)
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, usage.ru_utime + usage.ru_stime)
        process.returncode = os.waitstatus_to_exitcode(status)
        errors = process.stderr.read().decode() if process.stderr else ""
        if process.returncode != 0:
            sys.exit(f"{' '.join(argv[1:])} failed ({process.returncode}): {errors.strip()}")
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per case (default 7)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="memes-bench-startup-") as tmp:
        folder = Path(tmp)
        (folder / "config.yaml").write_text("library: memes\n", encoding="utf-8")
        env_path = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + env_path if env_path else "")
        base: tuple[float, float] | None = None
        for name, argv in cases():
            wall, cpu = best_of(argv, folder, args.runs)
            base = base or (wall, cpu)
            rows.append((name, f"{wall:.3f}s", f"{cpu:.3f}s",
                         f"+{cpu - base[1]:.3f}s CPU over baseline"))  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print(f"start-up, whole process, best of {args.runs} (wall, CPU user+system):")
    for name, wall_text, cpu_text, note in rows:
        print(f"  {name:<{width}}  {wall_text:>7}  {cpu_text:>7}  {note}")
    print(f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
