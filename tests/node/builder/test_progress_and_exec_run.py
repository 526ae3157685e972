"""`pynode build --progress plain|auto` as BuildKit prints it, and an exec-form RUN whose result is in the image."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.node.builder.conftest import write_context
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.privileged
Unique = Callable[[str], str]

DOCKERFILE = """\
FROM busybox
RUN echo first step
COPY a.txt /a.txt
RUN ["sh", "-c", "echo hi > /f"]
CMD ["cat", "/f"]
"""
INSTRUCTIONS = ["FROM busybox", "RUN echo first step", "COPY a.txt /a.txt", 'RUN ["sh", "-c", "echo hi > /f"]',
                'CMD ["cat", "/f"]']


def vertices(output: str) -> dict[int, list[str]]:
    """Each `#N` vertex's lines (without the `#N `), in the order printed."""
    found: dict[int, list[str]] = {}
    for line in output.splitlines():
        match = re.fullmatch(r"#(\d+) (.*)", line)
        assert match or line == "", f"not a BuildKit plain line: {line!r}"
        if match:
            found.setdefault(int(match[1]), []).append(match[2])
    return found


def steps(output: str) -> list[tuple[int, int, int, str, list[str]]]:
    """(vertex number, k, n, instruction, the vertex's further lines) for each `#N [k/n] INSTRUCTION`."""
    out = []
    for number, (first, *rest) in vertices(output).items():
        match = re.fullmatch(r"\[(\d+)/(\d+)\] (.*)", first)
        if match:
            out.append((number, int(match[1]), int(match[2]), match[3], rest))
    return out


def test_plain_progress_numbers_each_step_with_its_output_time_and_status(busybox_engine: EngineProcess,
                                                                         unique: Unique, tmp_path: Path) -> None:
    e = busybox_engine
    tag = unique("plain") + ":1"
    ctx = write_context(tmp_path, {"Dockerfile": DOCKERFILE, "a.txt": "a\n"})
    cold = e.cli("build", "--progress", "plain", "--no-cache", "-t", tag, str(ctx), timeout=300)
    assert cold.stdout == "", "progress goes to stderr, as docker build prints it"
    numbers = list(vertices(cold.stderr))
    assert numbers == list(range(1, len(numbers) + 1)), "vertices are not numbered #1, #2, ... in order"
    found = steps(cold.stderr)
    assert [(k, n, text) for _, k, n, text, _ in found] == [(k, 5, text) for k, text in enumerate(INSTRUCTIONS, 1)]
    (_, _, _, _, base), *executed = found
    assert base == ["CACHED"]  # the base image is already here, as BuildKit reports a local base
    for number, _, _, text, rest in executed:
        assert re.fullmatch(r"DONE \d+\.\ds", rest[-1]), f"#{number} {text} ended {rest[-1]!r}"
    first_step = executed[0][4]
    assert re.fullmatch(r"\d+\.\d{3} first step", first_step[0]), first_step  # output, seconds into the step
    assert any(re.fullmatch(r"naming to .*plain-\w+:1 done", line) for line in vertices(cold.stderr)[numbers[-1]])

    again = e.cli("build", "--progress", "plain", "-t", tag, str(ctx), timeout=300)
    assert [(text, rest) for _, _, _, text, rest in steps(again.stderr)] == [(t, ["CACHED"]) for t in INSTRUCTIONS]
    e.cli("rmi", tag)


def test_auto_progress_off_a_terminal_is_plain(busybox_engine: EngineProcess, unique: Unique,
                                               tmp_path: Path) -> None:  # fmt: skip
    # buildx's auto picks its live display only when stderr is a terminal, else the plain one; here it's a pipe.
    e = busybox_engine
    tag = unique("auto")
    ctx = write_context(tmp_path, {"Dockerfile": DOCKERFILE, "a.txt": "a\n"})
    auto = e.cli("build", "--progress", "auto", "--no-cache", "-t", tag, str(ctx), timeout=300).stderr
    default = e.cli("build", "--no-cache", "-t", tag, str(ctx), timeout=300).stderr  # auto is the default
    plain = e.cli("build", "--progress", "plain", "--no-cache", "-t", tag, str(ctx), timeout=300).stderr
    assert "\x1b" not in auto + default and "\r" not in auto + default, "terminal control codes on a pipe"

    def shape(output: str) -> list[tuple[int, int, str, str]]:
        """Each step's k, n, instruction and how it ended, its time left out."""
        return [(k, n, text, re.sub(r" \d+\.\ds$", "", rest[-1])) for _, k, n, text, rest in steps(output)]

    expected = [(k, 5, text, "CACHED" if k == 1 else "DONE") for k, text in enumerate(INSTRUCTIONS, 1)]
    assert shape(auto) == shape(default) == shape(plain) == expected
    assert any(re.fullmatch(r"#\d+ \d+\.\d{3} first step", line) for line in auto.splitlines()), auto
    e.cli("rmi", tag)


def test_exec_form_run_runs_without_a_shell_and_its_result_is_in_the_image(busybox_engine: EngineProcess,
                                                                          unique: Unique, tmp_path: Path) -> None:
    e = busybox_engine
    tag = unique("exec")
    dockerfile = ('FROM busybox\nENV WHO=nobody\nRUN ["sh", "-c", "echo hi > /f"]\n'
                  'RUN ["echo", "$WHO is not expanded"]\nRUN ["sh", "-c", "echo $WHO > /who"]\n')
    ctx = write_context(tmp_path, {"Dockerfile": dockerfile})
    out = e.cli("build", "--progress", "plain", "-t", tag, str(ctx), timeout=300).stderr
    assert re.search(r"^#\d+ \d+\.\d{3} \$WHO is not expanded$", out, re.M), out  # no shell: no expansion
    assert e.cli("run", "--rm", tag, "cat", "/f").stdout == "hi\n"
    assert e.cli("run", "--rm", tag, "cat", "/who").stdout == "nobody\n"  # the shell it runs sees the ENV
    e.cli("rmi", tag)
