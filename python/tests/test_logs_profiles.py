"""The client side of the output-capture, per-start-args and profile API, against a real `warden run`:
GET /api/instances/:id/logs?tail=N, the ?follow=1 SSE stream (event: line), start/restart bodies with "args" or
"launchProfile", and the status fields profile, port, url, ready.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, Iterator, List

import pytest
from conftest import cmdline, fake_instance, pids_of_instance, warden_command, write_config

from warden_client import Sidecar, WardenClient

RUNNING_LINE = "Running on local URL:"


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("logs")
    instance = fake_instance(tmp, per_test=False)
    sidecar = Sidecar(str(write_config(tmp, [instance])), warden=warden_command()).start()
    try:
        sidecar.client.ensure_running(instance["id"], timeout=30)
        yield {"sidecar": sidecar, "client": sidecar.client, "id": instance["id"], "port": instance["port"], "args": instance["args"]}
    finally:
        sidecar.stop(timeout=30)
        assert pids_of_instance(instance["id"]) == []


def launcher_args(instance_id: str) -> List[str]:
    """The argv of the instance's launch.py, read from /proc."""
    for pid in pids_of_instance(instance_id):
        argv = cmdline(pid)
        if any(part.endswith("launch.py") for part in argv):
            return argv[argv.index(next(part for part in argv if part.endswith("launch.py"))) + 1 :]
    return []


def test_tail_returns_the_last_lines_with_time_and_stream(warden: Dict[str, Any]) -> None:
    client: WardenClient = warden["client"]
    lines = client.tail(warden["id"], 200)
    assert 0 < len(lines) <= 200
    for line in lines:
        assert set(line) >= {"at", "stream", "text"}
        assert line["stream"] in ("stdout", "stderr")
    assert any(RUNNING_LINE in line["text"] for line in lines if line["stream"] == "stdout")
    assert len(client.tail(warden["id"], 2)) == 2


def test_follow_logs_streams_the_lines_of_a_relaunch_as_they_are_written(warden: Dict[str, Any]) -> None:
    client: WardenClient = warden["client"]
    seen: List[Dict[str, Any]] = []
    errors: List[BaseException] = []
    stream = client.follow_logs(warden["id"])

    def read() -> None:
        try:
            for line in stream:
                seen.append(line)
                if RUNNING_LINE in line["text"]:
                    return
        except BaseException as error:  # reported by the test thread below
            errors.append(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.5)
    client.restart(warden["id"])
    reader.join(timeout=30)
    stream.close()
    assert errors == []
    assert any(RUNNING_LINE in line["text"] for line in seen)
    assert all(set(line) >= {"at", "stream", "text"} for line in seen)


def test_start_and_restart_take_per_start_args(warden: Dict[str, Any]) -> None:
    client: WardenClient = warden["client"]
    configured = warden["args"]
    client.stop(warden["id"])
    override = ["-f", "--port", str(warden["port"]), "--workers", "2"]
    client.start(warden["id"], args=override)
    assert launcher_args(warden["id"]) == override
    again = ["-f", "--port", str(warden["port"]), "--workers", "0"]
    client.restart(warden["id"], args=again)
    assert launcher_args(warden["id"]) == again
    # A plain restart goes back to the configured argv.
    client.restart(warden["id"])
    assert launcher_args(warden["id"]) == configured


def test_status_reports_profile_port_url_and_ready(warden: Dict[str, Any]) -> None:
    client: WardenClient = warden["client"]
    entry = client.ensure_running(warden["id"], timeout=30)
    assert entry["profile"] in ("a1111", "forge", "comfyui", "generic")
    assert entry["port"] == warden["port"]
    assert entry["url"].startswith("http://127.0.0.1:")
    assert entry["ready"] is True
    assert client.check_health(warden["id"]) is True
