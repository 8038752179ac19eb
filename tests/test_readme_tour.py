"""The README's CLI tour, run exactly as written with the real ``pamcore`` command on a
fresh instance with demo data: if the README and the product drift apart, this fails."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pamcore.testing.sshd import free_port

README = Path(__file__).resolve().parents[1] / "README.md"
PAMCORE = Path(sys.executable).parent / "pamcore"


def tour_steps() -> list[tuple[str, list[str]]]:
    """(command, expected output lines) from the tour's code block."""
    text = README.read_text()
    block = text.split("## A five-minute CLI tour", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    steps: list[tuple[str, list[str]]] = []
    pending = ""
    for raw in block.splitlines():
        line = raw.rstrip()
        if line.startswith("#   ") and steps:
            steps[-1][1].append(line[4:].strip())
            continue
        if pending or line.startswith("pamcore "):
            code = (pending + " " + line).strip() if pending else line
            if code.endswith("\\"):
                pending = code[:-1]
                continue
            pending = ""
            steps.append((code.split("  #", 1)[0].strip(), []))
    return steps


def expected_pattern(line: str) -> str:
    return re.escape(line).replace("N", r"\d+")


def test_tour_has_the_story() -> None:
    verbs = [cmd.split()[1:3] for cmd, _ in tour_steps()]
    assert verbs == [
        ["sessions", "create"],
        ["sessions", "queue"],
        ["sessions", "approve"],
        ["worker", "--once"],
        ["sessions", "show"],
        ["sessions", "extend"],
        ["sessions", "password"],
        ["sessions", "end"],
        ["audit", "list"],
        ["audit", "verify"],
    ]


@pytest.mark.slow  # a dozen `pamcore` processes, each importing the whole app
@pytest.mark.e2e  # as root, the demo's SSH target (sshd) runs as with `make run`
def test_tour_runs_as_written(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAMCORE_")}
    env.update(
        PAMCORE_INSTANCE=str(tmp_path / "instance"),
        PATH=f"{PAMCORE.parent}:{env['PATH']}",
        PAMCORE_LOG_LEVEL="DEBUG",  # the logs of the whole run are checked for the secret
    )
    # what `make run` does before `pamcore run`, the target on a free port (a real `make run`
    # may be going); `pamcore demo clean` removes the target and the accounts it made
    setups = ("pamcore init", f"pamcore demo --target-port {free_port()}", "pamcore demo start")
    try:
        for setup in setups:
            done = subprocess.run(
                setup.split(), env=env, capture_output=True, text=True, timeout=120
            )
            assert done.returncode == 0, done.stderr
        run_tour(env)
    finally:
        subprocess.run(["pamcore", "demo", "clean"], env=env, capture_output=True, timeout=60)


def run_tour(env: dict[str, str]) -> None:
    outputs = {}
    logs = []
    for command, expected in tour_steps():
        done = subprocess.run(
            ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr
        logs.append(done.stderr)
        for line in expected:
            assert re.search(expected_pattern(line), done.stdout), (command, line, done.stdout)
        outputs[command.split()[2]] = done.stdout
    show = outputs["show"]
    assert "Available" in show and re.search(r"login account\s+pamdemo-alice-[0-9a-f]{6}", show)
    assert "extended until" in outputs["extend"]
    assert len(outputs["password"].strip()) == 24  # the ephemeral password, printed once
    secret = outputs["password"].strip()
    assert secret not in outputs["list"]  # never in the audit log
    assert logs and secret not in "".join(logs)  # nor in any log line of the run
