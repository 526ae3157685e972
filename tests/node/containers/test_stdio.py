"""Stdio as Docker's: `-i` feeds stdin, `-t` gives a real pty, `attach` carries input both ways, over the
hijacked (`Upgrade: tcp`) API connections; and `logs -f` of a container re-adopted after a daemon crash."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable

import pytest

from tests.node.containers.conftest import ensure_busybox
from tests.support.engine import PYNODE, EngineProcess

pytestmark = pytest.mark.privileged
Unique = Callable[[str], str]


class PtyCli:
    """`pynode ARGS` with a pty as its stdin, stdout and stderr and controlling terminal (as in a terminal
    window: SIGWINCH when it is resized), sized rows x cols."""

    def __init__(self, engine: EngineProcess, *args: str, rows: int = 24, cols: int = 80) -> None:
        self.master, self.slave = os.openpty()
        self.resize(rows, cols)
        self.mode_before = termios.tcgetattr(self.slave)
        # `setsid -c`: a new session whose controlling terminal is the pty (stdin)
        self.proc = subprocess.Popen(["setsid", "-c", PYNODE, *args], stdin=self.slave, stdout=self.slave,
                                     stderr=self.slave, env=engine.env)
        self.seen = b""

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def read_until(self, pattern: bytes, timeout: float = 30) -> bytes:
        deadline = time.monotonic() + timeout
        while pattern not in self.seen:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.master], [], [], max(left, 0))
            if not ready:
                raise AssertionError(f"no {pattern!r} within {timeout}s; the terminal showed {self.seen!r}")
            try:
                self.seen += os.read(self.master, 4096)
            except OSError:
                raise AssertionError(f"the terminal closed before {pattern!r}: {self.seen!r}") from None
        return self.seen

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait(self, timeout: float = 30) -> int:
        code = self.proc.wait(timeout)
        with_rest = self.seen
        while select.select([self.master], [], [], 0.1)[0]:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                break
            if not chunk:
                break
            with_rest += chunk
        self.seen = with_rest
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        os.close(self.slave)


def test_run_i_feeds_stdin(busybox_engine: EngineProcess) -> None:
    result = busybox_engine.cli("run", "-i", "--rm", "busybox", "cat", input="hi\n", timeout=60)
    assert (result.returncode, result.stdout) == (0, "hi\n")
    big = "x" * 300_000 + "\n"
    counted = busybox_engine.cli("run", "-i", "--rm", "busybox", "wc", "-c", input=big, timeout=60)
    assert counted.stdout.strip() == str(len(big))


def test_run_i_exit_code_and_stderr(busybox_engine: EngineProcess) -> None:
    result = busybox_engine.cli("run", "-i", "--rm", "busybox", "sh", "-c", "read x; echo got $x >&2; exit 7",
                                input="word\n", check=False, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (7, "", "got word\n")


def test_run_proxies_signals_to_the_container(busybox_engine: EngineProcess) -> None:
    proc = subprocess.Popen([PYNODE, "run", "--rm", "busybox", "sh", "-c",
                             "trap 'echo got INT; exit 42' INT; echo ready; while true; do sleep 0.1; done"],
                            stdout=subprocess.PIPE, env=busybox_engine.env, start_new_session=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 42
        assert proc.stdout.read() == b"got INT\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_run_it_without_a_terminal_is_refused(busybox_engine: EngineProcess, unique: Unique) -> None:
    name = unique("notty")
    result = busybox_engine.cli("run", "-it", "--name", name, "busybox", "true", input="", check=False)
    assert result.returncode == 1 and result.stderr.strip() == "Error: the input device is not a TTY"
    assert busybox_engine.cli("inspect", name, check=False).returncode == 1


def test_exec_i_feeds_stdin(busybox_engine: EngineProcess, unique: Unique) -> None:
    name = unique("execi")
    busybox_engine.cli("run", "-d", "--name", name, "busybox", "sleep", "100")
    try:
        result = busybox_engine.cli("exec", "-i", name, "sh", "-c", "cat; echo done >&2; exit 4",
                                    input="piped\n", check=False, timeout=60)
        assert (result.returncode, result.stdout, result.stderr) == (4, "piped\n", "done\n")
        no_stdin = busybox_engine.cli("exec", name, "cat", input="ignored\n", timeout=60)
        assert no_stdin.stdout == ""
    finally:
        busybox_engine.cli("rm", "-f", name)


def test_run_t_has_a_tty(busybox_engine: EngineProcess) -> None:
    result = busybox_engine.cli("run", "--rm", "-t", "busybox", "sh", "-c", "tty; test -t 0 && test -t 1 && echo both",
                                timeout=60)
    assert result.stdout.split() == ["/dev/pts/0", "both"]


def test_run_it_in_a_terminal(busybox_engine: EngineProcess) -> None:
    term = PtyCli(busybox_engine, "run", "-it", "--rm", "busybox", "sh", rows=33, cols=77)
    try:
        term.read_until(b"# ")
        term.write(b"stty size; tty; echo $((6*7))\r")
        out = term.read_until(b"42")
        assert b"33 77" in out and b"/dev/pts/0" in out
        term.write(b"exit 5\r")
        assert term.wait() == 5
        assert termios.tcgetattr(term.slave) == term.mode_before  # raw mode undone
    finally:
        term.close()


@pytest.mark.parametrize("how", ["run", "exec"])
def test_window_size_follows_the_terminal(busybox_engine: EngineProcess, unique: Unique, how: str) -> None:
    name = unique("winch")
    if how == "exec":
        busybox_engine.cli("run", "-d", "--name", name, "busybox", "sleep", "100")
        term = PtyCli(busybox_engine, "exec", "-it", name, "sh", rows=24, cols=80)
    else:
        term = PtyCli(busybox_engine, "run", "-it", "--name", name, "busybox", "sh", rows=24, cols=80)
    try:
        term.read_until(b"# ")
        term.resize(50, 120)  # the kernel sends SIGWINCH to the CLI, which sends the new size
        time.sleep(0.5)
        term.write(b"stty size\r")
        term.read_until(b"50 120", timeout=15)
        term.write(b"exit\r")
        assert term.wait() == 0
    finally:
        term.close()
        busybox_engine.cli("rm", "-f", name)


def test_start_ai_feeds_stdin(busybox_engine: EngineProcess, unique: Unique) -> None:
    name = unique("startai")
    busybox_engine.cli("create", "-i", "--name", name, "busybox", "sh", "-c", "cat; exit 3")
    try:
        result = busybox_engine.cli("start", "-ai", name, input="abc\n", check=False, timeout=60)
        assert (result.returncode, result.stdout) == (3, "abc\n")
    finally:
        busybox_engine.cli("rm", "-f", name)


def test_ctrl_p_ctrl_q_detaches(busybox_engine: EngineProcess, unique: Unique) -> None:
    name = unique("detach")
    term = PtyCli(busybox_engine, "run", "-it", "--name", name, "busybox", "sh")
    try:
        term.read_until(b"# ")
        term.write(b"\x10\x11")
        assert term.wait() == 0
        assert busybox_engine.cli("inspect", "-f", "{{.State.Status}}", name).stdout.strip() == "running"
        again = PtyCli(busybox_engine, "attach", name)
        try:
            again.write(b"echo back $((1+2))\r")
            again.read_until(b"back 3")
            again.write(b"exit 2\r")
            assert again.wait() == 2
        finally:
            again.close()
    finally:
        term.close()
        busybox_engine.cli("rm", "-f", name)


def test_hijack_errors_are_plain_answers(busybox_engine: EngineProcess) -> None:
    from node.errors import NotFound

    with pytest.raises(NotFound, match="No such exec instance"):
        with busybox_engine.client.hijack("/exec/nosuchexec/start", json_body={"Detach": False}):
            pass
    with pytest.raises(NotFound, match="No such container"):
        with busybox_engine.client.hijack("/containers/nosuchcontainer/attach", params={"stream": "1"}):
            pass


def test_exec_it_in_a_terminal(busybox_engine: EngineProcess, unique: Unique) -> None:
    name = unique("execit")
    busybox_engine.cli("run", "-d", "--name", name, "busybox", "sleep", "100")
    term = PtyCli(busybox_engine, "exec", "-it", name, "sh", rows=40, cols=100)
    try:
        term.read_until(b"# ")
        term.write(b"stty size; tty\r")
        out = term.read_until(b"/dev/pts/")
        assert b"40 100" in term.read_until(b"40 100") or b"40 100" in out
        term.write(b"exit 6\r")
        assert term.wait() == 6
        assert termios.tcgetattr(term.slave) == term.mode_before
    finally:
        term.close()
        busybox_engine.cli("rm", "-f", name)


def test_exec_of_what_cannot_run(busybox_engine: EngineProcess, unique: Unique) -> None:
    name = unique("execbad")
    busybox_engine.cli("run", "-d", "--name", name, "busybox", "sleep", "100")
    try:
        assert busybox_engine.cli("exec", name, "nosuchcmd", check=False, timeout=60).returncode == 127
        assert busybox_engine.cli("exec", "-t", name, "nosuchcmd", check=False, timeout=60).returncode == 127
        assert busybox_engine.cli("exec", name, "/etc/passwd", check=False, timeout=60).returncode == 126
        assert busybox_engine.cli("exec", name, "sh", "-c", "exit 255", check=False, timeout=60).returncode == 255
    finally:
        busybox_engine.cli("rm", "-f", name)


def test_exec_t_has_a_tty(busybox_engine: EngineProcess, unique: Unique) -> None:
    name = unique("exect")
    busybox_engine.cli("run", "-d", "--name", name, "busybox", "sleep", "100")
    try:
        assert busybox_engine.cli("exec", "-t", name, "tty", timeout=60).stdout.strip() == "/dev/pts/0"
        assert busybox_engine.cli("exec", name, "sh", "-c", "tty || true", timeout=60).stdout.strip() == "not a tty"
    finally:
        busybox_engine.cli("rm", "-f", name)


def test_resize_a_container_terminal(busybox_engine: EngineProcess, unique: Unique) -> None:
    name = unique("resize")
    cid = busybox_engine.cli("run", "-d", "-t", "--name", name, "busybox", "sh", "-c",
                             "while true; do stty size; sleep 0.1; done").stdout.strip()
    try:
        busybox_engine.client.post(f"/containers/{cid}/resize", params={"h": "51", "w": "132"})
        deadline = time.monotonic() + 15
        while "51 132" not in busybox_engine.cli("logs", name).stdout:
            assert time.monotonic() < deadline, "the terminal size did not change"
            time.sleep(0.2)
    finally:
        busybox_engine.cli("rm", "-f", name)


def test_attach_sends_input_and_gets_it_back(busybox_engine: EngineProcess, unique: Unique) -> None:
    name = unique("cat")
    busybox_engine.cli("run", "-d", "-i", "--name", name, "busybox", "cat")
    try:
        for word in (b"ping\n", b"again\n"):  # a second client after the first went away
            client = subprocess.Popen([PYNODE, "attach", "--no-sig-proxy", name], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, env=busybox_engine.env, start_new_session=True)
            assert client.stdin is not None and client.stdout is not None
            client.stdin.write(word)
            client.stdin.flush()
            ready, _, _ = select.select([client.stdout], [], [], 30)
            assert ready, "no echo from the container"
            assert os.read(client.stdout.fileno(), 4096) == word
            client.send_signal(signal.SIGINT)
            client.wait(30)
            assert busybox_engine.cli("inspect", "-f", "{{.State.Status}}", name).stdout.strip() == "running"
    finally:
        busybox_engine.cli("rm", "-f", name)


def test_attach_to_a_stopped_container_is_refused(busybox_engine: EngineProcess, unique: Unique) -> None:
    name = unique("stopped")
    busybox_engine.cli("create", "--name", name, "busybox", "true")
    try:
        result = busybox_engine.cli("attach", name, check=False)
        assert result.returncode == 1 and "start it first" in result.stderr
    finally:
        busybox_engine.cli("rm", name)


def test_attach_exit_code_is_the_containers(busybox_engine: EngineProcess, unique: Unique) -> None:
    name = unique("ends")
    busybox_engine.cli("run", "-d", "-i", "--name", name, "busybox", "sh", "-c", "read x; echo bye $x; exit 9")
    try:
        result = busybox_engine.cli("attach", name, input="now\n", check=False, timeout=60)
        assert (result.returncode, result.stdout) == (9, "bye now\n")
    finally:
        busybox_engine.cli("rm", "-f", name)


def test_logs_follow_after_daemon_sigkill(engine: EngineProcess, unique: Unique) -> None:
    ensure_busybox(engine)
    name, cat = unique("ticker"), unique("cat")
    engine.cli("run", "-d", "--name", name, "busybox", "sh", "-c",
               "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done")
    engine.cli("run", "-d", "-i", "--name", cat, "busybox", "sh", "-c", "read x; echo got $x; exit 8")
    time.sleep(1)
    engine.kill()
    time.sleep(1)
    engine.start()
    attached = engine.cli("attach", cat, input="after\n", check=False, timeout=60)  # stdin of a re-adopted one
    assert (attached.returncode, attached.stdout) == (8, "got after\n")
    follower = subprocess.Popen([PYNODE, "logs", "-f", name], stdout=subprocess.PIPE, env=engine.env,
                                start_new_session=True)
    try:
        assert follower.stdout is not None
        ticks: list[int] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (len(ticks) < 2 or ticks[-1] < 15):
            line = follower.stdout.readline()
            assert line, "logs -f ended"
            ticks.append(int(line.split()[1]))
        assert ticks[0] == 0 and ticks == list(range(len(ticks))), "lines lost or repeated across the restart"
        assert ticks[-1] >= 15
        engine.cli("stop", "-t", "1", name)
        assert follower.wait(20) == 0  # the stream ends with the container
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
