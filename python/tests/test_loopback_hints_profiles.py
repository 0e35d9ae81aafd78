"""The token goes to loopback only (NOT_LOOPBACK before any connection, no redirect followed), launch profiles
through start()/restart() against a real `warden run`, and crash hints from a fake WebUI that fails with CUDA OOM.
"""

from __future__ import annotations

import http.server
import socket
import threading
from pathlib import Path
from typing import Any, Dict, List

import pytest
from conftest import cmdline, fake_instance, pids_of_instance, write_config

from warden_client import WardenClient, WardenError


def _listener(host: str) -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, 0))
    server.listen(8)
    server.settimeout(0.5)
    return server


def _accepted(server: socket.socket) -> bool:
    try:
        connection, _ = server.accept()
    except socket.timeout:
        return False
    connection.close()
    return True


@pytest.mark.parametrize("host", ["0.0.0.0", "10.11.12.13", "example.com", "localhost", "localhost.", "[::]", "128.0.0.1"])
def test_a_non_loopback_url_is_refused_before_anything_is_sent(host: str) -> None:
    # 0.0.0.0 reaches a listener on every address on Linux: the listener proves no connection was even tried.
    listener = _listener("0.0.0.0")
    port = listener.getsockname()[1]
    try:
        with pytest.raises(WardenError) as refused:
            WardenClient(url=f"http://{host}:{port}", token="secret-token")
        assert refused.value.code == "NOT_LOOPBACK"
        assert f"{host}:{port}" in refused.value.message and refused.value.details["url"] == f"http://{host}:{port}"
        assert not _accepted(listener)
    finally:
        listener.close()


@pytest.mark.parametrize("url,code", [("https://127.0.0.1:7870", "BAD_URL"), ("ftp://127.0.0.1:7870", "BAD_URL"), ("http://user:pw@127.0.0.1:7870", "NOT_LOOPBACK")])
def test_only_plain_http_to_loopback_carries_the_token(url: str, code: str) -> None:
    # The same rule as `warden status`: http:// with no credentials in the URL.
    with pytest.raises(WardenError) as refused:
        WardenClient(url=url, token="secret-token")
    assert refused.value.code == code and url in refused.value.message


def test_a_url_changed_after_construction_is_refused_too() -> None:
    listener = _listener("0.0.0.0")
    port = listener.getsockname()[1]
    try:
        client = WardenClient(url=f"http://127.0.0.1:{port}", token="secret-token")
        client.url = f"http://0.0.0.0:{port}"
        with pytest.raises(WardenError) as refused:
            client.status()
        assert refused.value.code == "NOT_LOOPBACK"
        with pytest.raises(WardenError) as refused_stream:
            next(client.events(reconnect=False))
        assert refused_stream.value.code == "NOT_LOOPBACK"
        assert not _accepted(listener)
    finally:
        listener.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "[::1]", "[::ffff:127.0.0.1]"])
def test_loopback_urls_are_accepted(host: str) -> None:
    assert WardenClient(url=f"http://{host}:7870", token="t").url == f"http://{host}:7870"


def test_a_redirect_is_not_followed() -> None:
    target = _listener("127.0.0.1")
    target_port = target.getsockname()[1]
    seen: List[str] = []

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            seen.append(self.headers.get("Authorization", ""))
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{target_port}/api/status")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = WardenClient(url=f"http://127.0.0.1:{server.server_address[1]}", token="secret-token")
        with pytest.raises(WardenError) as failed:
            client.status()
        assert failed.value.status == 302 and failed.value.code == "BAD_RESPONSE"
        assert seen == ["Bearer secret-token"]
        assert not _accepted(target)
    finally:
        server.shutdown()
        server.server_close()
        target.close()


def _launcher_args(instance_id: str) -> List[str]:
    for pid in pids_of_instance(instance_id):
        argv = cmdline(pid)
        for index, part in enumerate(argv):
            if part.endswith("launch.py"):
                return argv[index + 1 :]
    return []


def _environ(pid: int) -> Dict[str, str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            items = handle.read().decode(errors="replace").split("\0")
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in items if "=" in item)


def test_start_and_restart_take_a_launch_profile(tmp_path: Path, make_sidecar: Any) -> None:
    instance = fake_instance(tmp_path)
    port = instance["port"]
    instance["launchProfiles"] = {
        # Flags the fake WebUI knows (it refuses unknown ones), standing in for --lowvram / --disable-all-extensions.
        "lowvram": {"args": ["-f", "--port", str(port), "--workers", "1", "--verbose"], "env": {"WARDEN_TEST_PROFILE": "lowvram"}},
        "safe": {"args": ["-f", "--port", str(port), "--workers", "1", "--autolaunch"]},
    }
    client: WardenClient = make_sidecar(write_config(tmp_path, [instance])).client
    # `warden run` starts every instance with its configured args; a start with other args needs it stopped.
    client.ensure_running(instance["id"], timeout=30)
    client.stop(instance["id"])
    client.start(instance["id"], launch_profile="lowvram", timeout=30)
    assert _launcher_args(instance["id"]) == ["-f", "--port", str(port), "--workers", "1", "--verbose"]
    assert any(_environ(pid).get("WARDEN_TEST_PROFILE") == "lowvram" for pid in pids_of_instance(instance["id"]))
    client.restart(instance["id"], launch_profile="safe", timeout=30)
    argv = _launcher_args(instance["id"])
    assert argv == ["-f", "--port", str(port), "--workers", "1", "--autolaunch"]
    assert all("WARDEN_TEST_PROFILE" not in _environ(pid) for pid in pids_of_instance(instance["id"]))
    client.restart(instance["id"], timeout=30)
    argv = _launcher_args(instance["id"])
    assert argv == instance["args"]  # a restart without a profile goes back to the configured argv
    with pytest.raises(WardenError) as refused:
        client.restart(instance["id"], launch_profile="turbo", timeout=30)
    assert refused.value.code == "UNKNOWN_LAUNCH_PROFILE" and refused.value.status == 400
    assert "turbo" in refused.value.message and "lowvram" in refused.value.message
    # Refused before anything happened: the same tree still runs.
    assert client.instance(instance["id"])["state"] == "running"
    client.stop(instance["id"])


def test_a_cuda_oom_crash_names_its_cause(tmp_path: Path, make_sidecar: Any) -> None:
    instance = fake_instance(tmp_path, args=["--workers", "1", "--fail-with", "cuda-oom"], restart={"onCrash": False})
    client: WardenClient = make_sidecar(write_config(tmp_path, [instance])).client
    with pytest.raises(WardenError) as failed:
        client.start(instance["id"], timeout=30)
    assert failed.value.code == "START_FAILED"
    hints: List[Dict[str, Any]] = failed.value.details["hints"]
    assert [hint["cause"] for hint in hints] == ["cuda-oom"]
    assert any("CUDA out of memory" in line for line in hints[0]["lines"])
    assert "VRAM" in hints[0]["message"]
    assert client.crash_hints(instance["id"]) == hints


def test_crash_hints_are_empty_without_a_crash(tmp_path: Path, make_sidecar: Any) -> None:
    instance = fake_instance(tmp_path)
    client: WardenClient = make_sidecar(write_config(tmp_path, [instance])).client
    assert client.crash_hints(instance["id"]) == []
    client.start(instance["id"], timeout=30)
    client.stop(instance["id"])
    assert client.crash_hints(instance["id"]) == []
