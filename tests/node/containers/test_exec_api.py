"""`exec start` without hijacking (what pycompose exec uses): the output comes as the response body, and the
exit code is Docker's, as on the hijacked path: 127 for a command not found, 126 for one that cannot run."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.engine import EngineProcess

pytestmark = pytest.mark.privileged


@pytest.fixture
def running(busybox_engine: EngineProcess, unique: Callable[[str], str]) -> Iterator[str]:
    name = unique("execapi")
    cid = busybox_engine.cli("run", "-d", "--name", name, "busybox", "sleep", "100").stdout.strip()
    try:
        yield cid
    finally:
        busybox_engine.cli("rm", "-f", name, check=False)


def _exec_unhijacked(engine: EngineProcess, cid: str, cmd: list[str]) -> tuple[int, bytes]:
    client = engine.client
    eid = client.post(f"/containers/{cid}/exec", json={"Cmd": cmd, "AttachStdout": True,
                                                       "AttachStderr": True})["Id"]
    body = client.request("POST", f"/exec/{eid}/start", json={"Detach": False, "Tty": False}).content
    return client.get(f"/exec/{eid}/json")["ExitCode"], body


def test_exit_codes_of_a_command_that_cannot_start(busybox_engine: EngineProcess, running: str) -> None:
    code, output = _exec_unhijacked(busybox_engine, running, ["nosuchcmd"])
    assert code == 127, output
    assert b"nosuchcmd" in output  # the runtime's reason reaches the client
    assert _exec_unhijacked(busybox_engine, running, ["/etc/passwd"])[0] == 126
    code, output = _exec_unhijacked(busybox_engine, running, ["sh", "-c", "echo out; exit 3"])
    assert (code, output) == (3, b"\x01\x00\x00\x00\x00\x00\x00\x04out\n")
