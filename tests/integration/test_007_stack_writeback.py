"""007: the stack's background-writeback setting (deploy/local/writeback.sh) is put back as
the machine had it, whatever setting the `up` and the `down` ran with, and across an upgrade
from a stack that set 8 MB. The knobs are files of the test's own (WB_DIR), not /proc."""
import os
import subprocess

import pytest

from conftest import TOP

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the stack tunes writeback only as root")


def _machine(tmp_path, bytes_, ratio):
    vm = tmp_path / "vm"
    vm.mkdir(exist_ok=True)
    (vm / "dirty_background_bytes").write_text(f"{bytes_}\n")
    (vm / "dirty_background_ratio").write_text(f"{ratio}\n")
    (tmp_path / "var").mkdir(exist_ok=True)
    return vm


def _knobs(vm):
    return ((vm / "dirty_background_bytes").read_text().strip(),
            (vm / "dirty_background_ratio").read_text().strip())


def _stack(tmp_path, fn, setting=None):
    vm = tmp_path / "vm"
    env = dict(os.environ, WB_DIR=str(vm))
    env.pop("KASIR_STACK_DIRTY_BACKGROUND_BYTES", None)
    if setting is not None:
        env["KASIR_STACK_DIRTY_BACKGROUND_BYTES"] = str(setting)
    script = (f'set -euo pipefail; var="{tmp_path}/var"; log() {{ printf "stack: %s\\n" "$*"; }}; '
              f'. "{TOP}/deploy/local/writeback.sh"; {fn}')
    before = _knobs(vm)
    p = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    # as the kernel does: writing one of the pair zeroes the other
    b, r = _knobs(vm)
    if b != before[0] and b != "0":
        (vm / "dirty_background_ratio").write_text("0\n")
    elif r != before[1] and r != "0":
        (vm / "dirty_background_bytes").write_text("0\n")
    return p.stdout


def test_up_then_down_puts_the_machines_ratio_back(tmp_path):
    vm = _machine(tmp_path, 0, 10)
    _stack(tmp_path, "writeback_tune")  # the stack's own setting
    assert _knobs(vm)[0] not in ("0", "")
    _stack(tmp_path, "writeback_tune")  # `up` twice: nothing more saved over the first
    _stack(tmp_path, "writeback_restore")
    assert _knobs(vm) == ("0", "10")
    assert not (tmp_path / "var" / "sysctl.saved").exists()


def test_upgrade_from_a_stack_that_set_8_mb(tmp_path):
    # an older stack's `up` set 8 MB (the kernel zeroed the ratio) and saved the machine's
    # pair in two fields
    vm = _machine(tmp_path, 8388608, 0)
    (tmp_path / "var" / "sysctl.saved").write_text("0 10\n")
    _stack(tmp_path, "writeback_tune", setting=1048576)
    assert _knobs(vm)[0] == "1048576"
    _stack(tmp_path, "writeback_restore", setting=1048576)
    assert _knobs(vm) == ("0", "10"), "the machine's 10 % back, not the old stack's 8 MB"
    # and a stack that sets 8 MB itself, over the older one's file
    vm = _machine(tmp_path, 8388608, 0)
    (tmp_path / "var" / "sysctl.saved").write_text("0 10\n")
    _stack(tmp_path, "writeback_tune", setting=8388608)
    _stack(tmp_path, "writeback_restore", setting=8388608)
    assert _knobs(vm) == ("0", "10")


def test_a_down_with_another_setting_still_restores(tmp_path):
    vm = _machine(tmp_path, 0, 10)
    _stack(tmp_path, "writeback_tune", setting=4194304)
    assert _knobs(vm)[0] == "4194304"
    _stack(tmp_path, "writeback_restore")  # a plain `make down`
    assert _knobs(vm) == ("0", "10")


def test_a_second_up_with_another_setting_keeps_the_machines_value(tmp_path):
    vm = _machine(tmp_path, 0, 10)
    _stack(tmp_path, "writeback_tune", setting=1048576)
    _stack(tmp_path, "writeback_tune", setting=2097152)
    assert _knobs(vm)[0] == "2097152"
    _stack(tmp_path, "writeback_restore", setting=2097152)
    assert _knobs(vm) == ("0", "10")


def test_a_value_changed_since_is_left_alone(tmp_path):
    vm = _machine(tmp_path, 33554432, 0)
    _stack(tmp_path, "writeback_tune", setting=1048576)
    (vm / "dirty_background_bytes").write_text("5000000\n")  # an admin, meanwhile
    _stack(tmp_path, "writeback_restore", setting=1048576)
    assert _knobs(vm)[0] == "5000000"
    assert not (tmp_path / "var" / "sysctl.saved").exists()
    # and a machine already at the stack's value keeps no file to restore from
    vm = _machine(tmp_path, 1048576, 0)
    _stack(tmp_path, "writeback_tune", setting=1048576)
    assert not (tmp_path / "var" / "sysctl.saved").exists()
    _stack(tmp_path, "writeback_restore", setting=1048576)
    assert _knobs(vm) == ("1048576", "0")


def test_an_older_checkouts_file_whatever_it_set(tmp_path):
    # an older checkout's `up` with KASIR_STACK_DIRTY_BACKGROUND_BYTES=1048576 left a file
    # of two fields while the knob is at 1 MB; a newer `up` with another setting, or with
    # the same one, and its `down` put the machine's 10 % back
    for setting in (8388608, 1048576):
        vm = _machine(tmp_path, 1048576, 0)
        (tmp_path / "var" / "sysctl.saved").write_text("0 10\n")
        _stack(tmp_path, "writeback_tune", setting=setting)
        assert _knobs(vm)[0] == str(setting)
        _stack(tmp_path, "writeback_restore", setting=setting)
        assert _knobs(vm) == ("0", "10"), setting


def test_a_setting_that_is_not_a_plain_byte_count_is_refused(tmp_path):
    for setting in ("01048576", "0", "1e6", "1048576 "):
        vm = _machine(tmp_path, 0, 10)
        out = _stack(tmp_path, "writeback_tune", setting=setting)
        assert "is not a byte count" in out, setting
        assert _knobs(vm) == ("0", "10")
        assert not (tmp_path / "var" / "sysctl.saved").exists()
