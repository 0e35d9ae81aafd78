"""Sidecar: finding warden, starting `warden run` itself, finding its URL and token, and shutting it down."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, fake_instance, pids_of_instance, warden_command, write_config

from warden_client import Sidecar, WardenError, find_warden, state_dir_of


def test_find_warden_prefers_the_argument_then_warden_bin_then_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "controller"
    bin_dir = project / "node_modules" / ".bin"
    bin_dir.mkdir(parents=True)
    local = bin_dir / "warden"
    local.write_text("#!/bin/sh\n")
    local.chmod(0o755)
    monkeypatch.setenv("WARDEN_BIN", "/opt/node/bin/node /opt/warden/bin/warden.js")
    assert find_warden(["node", "cli.js"], str(project)) == ["node", "cli.js"]
    assert find_warden(str(local)) == [str(local)]
    assert find_warden(None, str(project)) == ["/opt/node/bin/node", "/opt/warden/bin/warden.js"]
    monkeypatch.delenv("WARDEN_BIN")
    assert find_warden(None, str(project)) == [str(local)]


def test_find_warden_falls_back_to_npx_in_a_node_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    npx = shutil.which("npx")
    assert npx is not None, "npx must be on PATH for this test (it comes with node)"
    monkeypatch.delenv("WARDEN_BIN", raising=False)
    (tmp_path / "package.json").write_text("{}")
    assert find_warden(None, str(tmp_path)) == [npx, "--no-install", "warden"]


def test_find_warden_names_everything_it_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WARDEN_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(WardenError) as missing:
        find_warden(None, str(tmp_path))
    message = missing.value.message
    assert missing.value.code == "WARDEN_NOT_FOUND"
    for tried in ("warden= argument", "$WARDEN_BIN (unset)", str(tmp_path / "node_modules" / ".bin" / "warden"), "npx is not on PATH", "warden on PATH"):
        assert tried in message


def test_state_dir_of_resolves_against_the_config_file_and_refuses_bad_json(tmp_path: Path) -> None:
    config = tmp_path / "cfg" / "warden.config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"instances": []}))
    assert state_dir_of(str(config)) == str(tmp_path / "cfg" / ".warden")
    config.write_text(json.dumps({"stateDir": "../state", "instances": []}))
    assert state_dir_of(str(config)) == str(tmp_path / "state")
    config.write_text("{not json")
    with pytest.raises(WardenError) as bad:
        state_dir_of(str(config))
    assert bad.value.code == "BAD_CONFIG"
    assert str(config) in bad.value.message


def test_a_sidecar_serves_the_api_runs_the_webui_and_stop_leaves_nothing(tmp_path: Path) -> None:
    instance = fake_instance(tmp_path)
    config = write_config(tmp_path, [instance])
    # A server.json left by an earlier, killed run: the sidecar must wait for its own run's, not trust this one.
    state = tmp_path / "state"
    state.mkdir()
    (state / "server.json").write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": 1}))
    with Sidecar(str(config), warden=warden_command()) as sidecar:
        assert sidecar.url.startswith("http://127.0.0.1:") and sidecar.url != "http://127.0.0.1:9"
        assert len(sidecar.token) >= 32
        assert sidecar.client.ensure_running(instance["id"], timeout=30)["state"] == "running"
        assert pids_of_instance(instance["id"])
        assert f"--owner-pid {os.getpid()}" in " ".join(sidecar.command) and "--lifeline" in sidecar.command
    assert sidecar.running() is False
    assert sidecar.process is not None and sidecar.process.returncode == 0
    assert pids_of_instance(instance["id"]) == []
    assert not (state / "server.json").exists()
    assert "shutdown: 1 tree stopped" in sidecar.output()


def test_a_sidecar_whose_warden_refuses_the_config_raises_with_wardens_own_message(tmp_path: Path, make_sidecar: Any) -> None:
    config = tmp_path / "warden.config.json"
    config.write_text(json.dumps({"stateDir": "state", "instances": []}))
    with pytest.raises(WardenError) as exited:
        make_sidecar(config)
    assert exited.value.code == "SIDECAR_EXITED"
    assert exited.value.details["exitCode"] == 64
    assert "instances" in exited.value.message and "at least one instance" in exited.value.message


def test_the_stablenew_controller_example_runs_its_session_through_a_sidecar(tmp_path: Path) -> None:
    instance = fake_instance(tmp_path)
    config = write_config(tmp_path, [instance])
    controller = REPO / "examples" / "stablenew" / "controller.py"
    environment = {**os.environ, "WARDEN_BIN": warden_command(), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([sys.executable, str(controller), "--sidecar", str(config), "--instance", instance["id"]], capture_output=True, text=True, timeout=120, env=environment, cwd=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: every tree was confirmed dead" in result.stdout
    assert "sidecar: warden run exited 0" in result.stdout
    assert pids_of_instance(instance["id"]) == []
