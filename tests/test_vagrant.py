"""vagrant/Vagrantfile without a VM: its Ruby parses, and loading it under a stand-in for Vagrant's
configuration API shows three Debian 12 machines on a private network, each provisioned with the
project README's install command, one `pyswarm init` and two `pyswarm join`s."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
VAGRANTFILE = ROOT / "vagrant" / "Vagrantfile"

# Vagrant.configure yields a recorder: every call (`vm.box=`, `vm.define "x"`, `vm.provision`) is logged
# with its path, so the test sees the configuration as Vagrant would, loops and conditionals applied.
RECORDER = r"""
require "json"
class Recorder
  def initialize(log, path) = (@log, @path = log, path)
  def respond_to_missing?(*) = true
  def method_missing(name, *args, **kw, &block)
    path = [@path, name.to_s].reject(&:empty?).join(".")
    path += "[#{args.first}]" if name == :define
    @log << { "call" => path, "args" => args.map(&:to_s), "kw" => kw.to_h { |k, v| [k.to_s, v.to_s] } }
    child = Recorder.new(@log, path)
    block&.call(child, Recorder.new(@log, "#{path}.override"))
    child
  end
end
module Vagrant
  LOG = []
  def self.configure(_version) = yield(Recorder.new(LOG, ""))
  def self.require_version(*) = nil
end
load ARGV.fetch(0)
puts JSON.generate(Vagrant::LOG)
"""

MACHINES = ("manager1", "worker1", "worker2")


def _ruby() -> str:
    ruby = shutil.which("ruby")
    if ruby is None:
        pytest.skip("ruby is not installed (scripts/install.sh installs it): cannot check the Vagrantfile")
    return ruby


def _calls() -> list[dict[str, Any]]:
    result = subprocess.run([_ruby(), "-e", RECORDER, str(VAGRANTFILE)], capture_output=True, text=True,
                            check=True, cwd=VAGRANTFILE.parent)
    calls: list[dict[str, Any]] = json.loads(result.stdout)
    return calls


def _provisions(calls: list[dict[str, Any]], machine: str) -> list[str]:
    return [c["kw"]["inline"] for c in calls if c["call"] == f"vm.define[{machine}].vm.provision"]


def readme_install_command() -> str:
    """The first command of the first ```sh block of the project's README (`./scripts/install.sh`)."""
    block = re.search(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "README.md has no ```sh code block"
    first_line = next(line for line in block.group(1).splitlines() if line.strip())
    return first_line.split("#")[0].split("&&")[0].strip()


def test_vagrantfile_is_valid_ruby() -> None:
    result = subprocess.run([_ruby(), "-c", str(VAGRANTFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "Syntax OK" in result.stdout, result.stderr


def test_three_debian_12_machines_on_a_private_network() -> None:
    calls = _calls()
    assert {"call": "vm.box=", "args": ["debian/bookworm64"], "kw": {}} in calls
    addresses = {}
    for machine in MACHINES:
        [network] = [c for c in calls if c["call"] == f"vm.define[{machine}].vm.network"]
        assert network["args"] == ["private_network"]
        addresses[machine] = network["kw"]["ip"]
    assert len(set(addresses.values())) == 3


def test_every_machine_runs_the_readmes_install_command() -> None:
    command = readme_install_command()
    assert command == "./scripts/install.sh"
    calls = _calls()
    for machine in MACHINES:
        first = _provisions(calls, machine)[0]
        lines = [line.strip() for line in first.splitlines()]
        assert command in lines, f"{machine} does not run {command}:\n{first}"
        assert lines.index(command) > lines.index("cd /opt/pyswarm")


def test_one_manager_inits_and_two_workers_join_with_its_token() -> None:
    calls = _calls()
    manager_ip = next(c["kw"]["ip"] for c in calls if c["call"] == "vm.define[manager1].vm.network")
    init = _provisions(calls, "manager1")[-1]
    assert f"pyswarm init --advertise-addr {manager_ip}" in init
    token_file = re.search(r"pyswarm join-token worker -q > (\S+?)(\.tmp)?\n", init)
    assert token_file, init
    shared = [c for c in calls if c["call"] == "vm.synced_folder" and token_file.group(1).startswith(c["args"][1])]
    assert shared and shared[0]["kw"].get("type") != "rsync", "the token needs a two-way synced folder"
    for worker in ("worker1", "worker2"):
        join = _provisions(calls, worker)[-1]
        assert f"pyswarm join --token $(cat {token_file.group(1)}) {manager_ip}:2377" in join
