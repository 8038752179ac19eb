"""CPU time of a ``pamcore`` command, side by side with importing what any Flask, SQLAlchemy
and click program imports: the start-up cost a scripted setup pays once per command.

A fresh instance is made with ``pamcore init`` in a temporary folder (SQLite, or the
PostgreSQL database given with ``--pg-url``); each command then runs ``--runs`` times as a
child process, and its user + system CPU time (``RUSAGE_CHILDREN``) is reported as a median.

    .venv/bin/python bench/cli_startup.py
    .venv/bin/python bench/cli_startup.py --runs 9 --pg-url postgresql+psycopg://...

Figures, not a pass/fail test (tests/test_cli_startup.py checks what is imported).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BASELINE = "import flask, sqlalchemy, click"


def cpu_seconds(argv: list[str], env: dict[str, str]) -> float:
    """User + system CPU of one child process run to completion."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def median_cpus(commands: list[list[str]], env: dict[str, str], runs: int) -> list[float]:
    """Each command's median, the commands taking turns so that the load of a shared
    machine weighs on all of them alike."""
    times: list[list[float]] = [[] for _ in commands]
    for _ in range(runs):
        for argv, found in zip(commands, times, strict=True):
            found.append(cpu_seconds(argv, env))
    return [statistics.median(found) for found in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per command (median)")
    parser.add_argument("--pg-url", help="an empty PostgreSQL database for the instance")
    args = parser.parse_args()

    python = sys.executable
    pamcore = [str(Path(python).parent / "pamcore")]  # the installed script, as people run it
    with tempfile.TemporaryDirectory(prefix="pamcore-cli-bench-") as tmp:
        env = {**os.environ, "PAMCORE_INSTANCE": str(Path(tmp) / "instance")}
        env.pop("PAMCORE_LOG_LEVEL", None)
        if args.pg_url:
            env["PAMCORE_DATABASE_URL"] = args.pg_url
        subprocess.run([*pamcore, "init"], env=env, check=True, stdout=subprocess.DEVNULL)
        commands = {
            f"python -c '{BASELINE}'": [python, "-c", BASELINE],
            "pamcore sessions list": [*pamcore, "sessions", "list"],
            "pamcore --help": [*pamcore, "--help"],
        }
        medians = median_cpus(list(commands.values()), env, args.runs)
    rows = list(zip(commands, medians, strict=True))
    baseline = rows[0][1]
    database = "PostgreSQL" if args.pg_url else "SQLite"
    print(f"CPU seconds, median of {args.runs} runs ({database} instance)")
    print("| command | CPU s | x baseline |\n| --- | --- | --- |")
    for name, seconds in rows:
        print(f"| `{name}` | {seconds:.3f} | {seconds / baseline:.2f} |")


if __name__ == "__main__":
    main()
