"""Bad input gets a one-line error that says what to do, and no guest."""

import json
import os
import socket

import pytest

from conftest import kill_leftovers


@pytest.mark.parametrize("args, words", [
    (["up", "--vms", "0"], "--vms"),
    (["up", "--vms", "17"], "--vms"),
    (["up", "--mem", "1"], "--mem"),
    (["up", "--accel", "warp"], "--accel"),
    (["up", "--net", "carrier-pigeon"], "--net"),
    (["up", "--vms", "3", "--net", "virtio-socket"], "virtio-socket"),
    (["up", "--fabric-config", "/nonexistent/fabric.json"], "--fabric-config"),
    (["up", "--net", "virtio-tap", "--fabric-config", "/etc/hostname"], "--net partlink"),
    (["up", "--policy", "/nonexistent/policy.json"], "--policy"),
    (["wlm"], "wlm needs a command"),
    (["wlm", "frobnicate"], "unknown wlm command 'frobnicate'"),
    (["wlm", "log", "--bogus"], "--bogus"),
    (["frobnicate"], "frobnicate"),
])
def test_usage_errors(new_cluster, args, words):
    c = new_cluster()
    proc = c.partlink(*args, check=False)
    assert proc.returncode == 2, proc
    assert words in proc.stderr, proc.stderr
    assert not kill_leftovers(c.run_dir)


POLICY_2 = {"privileged": "vm2", "partitions": [{"name": "vm1", "entitlement": 0.1},
                                                {"name": "vm2", "entitlement": 0.1}]}


@pytest.mark.parametrize("policy, args, words", [
    (POLICY_2, ["--no-cgroups"], "--no-cgroups"),
    (POLICY_2, ["--vms", "3"], "vm3 has no entry"),
    ({"privileged": "vm1", "partitions": [{"name": "vm1", "entitlement": 0.1},
                                          {"name": "vm7", "entitlement": 0.1}]},
     [], "partition 'vm7' is not one of this run's"),
    ({"privileged": "vm1", "partitions": [{"name": "vm1", "entitlement": 0.1, "max": 0.05},
                                          {"name": "vm2", "entitlement": 0.1}]},
     [], "invalid capacity policy"),
    ("{ not json", [], "invalid capacity policy"),
    (POLICY_2, ["--fabric-config", "FABRIC"], "makes vm2 the WLM partition"),
])
def test_policy_usage_errors(new_cluster, tmp_path, policy, args, words):
    """A policy that cannot be used is refused before anything starts."""
    c = new_cluster()
    file = tmp_path / "policy.json"
    file.write_text(policy if isinstance(policy, str) else json.dumps(policy))
    fabric = tmp_path / "fabric.json"
    fabric.write_text(json.dumps({"wlm": "vm1"}))
    args = [str(fabric) if a == "FABRIC" else a for a in args]
    proc = c.partlink("up", "--policy", file, *args, check=False)
    assert proc.returncode == 2, proc
    assert words in proc.stderr, proc.stderr
    assert not kill_leftovers(c.run_dir)
    assert not (c.run_dir / "state.json").exists()


@pytest.mark.parametrize("command", [["wlm", "log"], ["wlm", "log", "--json"],
                                     ["wlm", "chart"]])
def test_wlm_when_nothing_is_up(new_cluster, command):
    c = new_cluster()
    proc = c.partlink("--run-dir", c.run_dir / "never-up", *command, check=False)
    assert proc.returncode == 1, proc
    assert "nothing is up" in proc.stderr and "partlink up" in proc.stderr, proc.stderr


def test_ssh_when_nothing_is_up(new_cluster):
    proc = new_cluster().partlink("ssh", "vm1", "--", "true", check=False)
    assert proc.returncode != 0
    assert "partlink up" in proc.stderr, proc.stderr


def test_status_when_nothing_is_up(new_cluster):
    c = new_cluster()
    assert c.status()["partitions"] == []
    assert c.partlink("down").returncode == 0


def test_missing_qemu_build(new_cluster):
    c = new_cluster()
    env = dict(os.environ, PARTLINK_QEMU="/nonexistent/qemu-system-x86_64")
    proc = c.partlink("up", "--vms", "1", check=False, env=env)
    assert proc.returncode == 1
    assert "/nonexistent/qemu-system-x86_64" in proc.stderr and "make qemu" in proc.stderr


def test_missing_images(new_cluster, tmp_path):
    c = new_cluster()
    env = dict(os.environ, PARTLINK_IMAGES=str(tmp_path / "no-images"))
    proc = c.partlink("up", "--vms", "1", check=False, env=env)
    assert proc.returncode == 1
    assert "make images" in proc.stderr, proc.stderr


def test_missing_partlinkd(new_cluster):
    c = new_cluster()
    env = dict(os.environ, PARTLINK_PARTLINKD="/nonexistent/partlinkd")
    proc = c.partlink("up", "--vms", "1", check=False, env=env)
    assert proc.returncode == 1
    assert "/nonexistent/partlinkd" in proc.stderr and "make shim" in proc.stderr, proc.stderr
    assert not kill_leftovers(c.run_dir)


def test_ssh_port_in_use(new_cluster):
    c = new_cluster()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = c.partlink("up", "--vms", "1", "--ssh-port", port, check=False)
    assert proc.returncode != 0
    assert f"{port}" in proc.stderr and "in use" in proc.stderr, proc.stderr
    assert not kill_leftovers(c.run_dir)
