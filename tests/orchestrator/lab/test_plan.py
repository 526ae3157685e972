"""What a lab will be, decided without the kernel: names, addresses, paths, and the state file's codec."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.lab.errors import LabError
from orchestrator.lab.plan import is_lab_object, plan_lab
from orchestrator.lab.state import decode_state, encode_state, load_state, save_state


def test_default_lab_names_sockets_and_addresses() -> None:
    state = plan_lab(name="lab", hosts=3, subnet="10.77.0.0/24", state_root=Path("/var/lib/pyswarm-lab"))
    assert state.bridge == "lab-br" and state.gateway == "10.77.0.1"
    h2 = state.host("h2")
    assert h2.netns == "lab-h2" and h2.address == "10.77.0.3"
    assert h2.socket == Path("/run/pynode-lab-h2.sock") and h2.url == "unix:///run/pynode-lab-h2.sock"
    assert h2.data_root == Path("/var/lib/pyswarm-lab/lab/h2/root")
    assert [h.name for h in state.hosts] == ["h1", "h2", "h3"]


def test_kernel_names_fit_in_15_characters() -> None:
    state = plan_lab(name="abcdefghij", hosts=250, subnet="10.77.0.0/16", state_root=Path("/tmp/x"))
    assert max(len(n) for h in state.hosts for n in (h.netns, h.veth)) <= 15 and len(state.bridge) <= 15


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "Lab"}, "lab name 'Lab'"),
    ({"name": "a-b"}, "lab name 'a-b'"),
    ({"name": "abcdefghijk"}, "15 characters"),
    ({"subnet": "10.77.0.1/24"}, "invalid subnet '10.77.0.1/24'"),
    ({"subnet": "banana"}, "invalid subnet 'banana'"),
    ({"subnet": "10.77.0.0/30"}, "has 2 usable addresses; 3 hosts and the bridge need 4"),
    ({"hosts": 0}, "1 to 250 hosts"),
])
def test_bad_input_is_refused_with_the_reason(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"name": "lab", "hosts": 3, "subnet": "10.77.0.0/24", "state_root": Path("/tmp/x")}
    with pytest.raises(LabError, match=message.replace("(", r"\(")):
        plan_lab(**{**args, **kwargs})  # type: ignore[arg-type]


def test_sweeps_recognise_only_this_labs_names() -> None:
    assert is_lab_object("lab", "lab-br") and is_lab_object("lab", "lab-h12")
    assert not is_lab_object("lab", "lab2-h1") and not is_lab_object("lab", "lab-h1x")
    assert not is_lab_object("lab", "lab-eth0")


def test_state_round_trips_through_its_file(tmp_path: Path) -> None:
    state = plan_lab(name="lab", hosts=2, subnet="10.77.0.0/24", state_root=tmp_path).with_pid("h1", 42)
    assert decode_state(encode_state(state)) == state
    save_state(state)
    assert load_state(state.state_dir) == state
    assert load_state(tmp_path / "nothing") is None
    state.state_file.write_text("{not json")
    with pytest.raises(LabError, match="unreadable lab state"):
        load_state(state.state_dir)


def test_unknown_host_names_the_known_ones(tmp_path: Path) -> None:
    state = plan_lab(name="lab", hosts=2, subnet="10.77.0.0/24", state_root=tmp_path)
    with pytest.raises(LabError, match=r"no host 'h9' \(hosts: h1, h2\)"):
        state.host("h9")
