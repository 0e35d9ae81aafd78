"""Fixtures for the warden-client suite: real `warden run` processes over copies of the fake WebUI.

The warden command is $WARDEN_BIN (test/python/pytest.test.ts sets it), else `node --import tsx src/cli.ts` from
this checkout. Every instance id is unique to this run; teardown kills only processes carrying those ids' markers
(WARDEN_INSTANCE=<id>:...) and the sidecars the tests started, by handle.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import socket
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
FAKE_WEBUI = REPO / "examples" / "fake-webui"
# Test this checkout's package, never an installed copy.
sys.path.insert(0, str(REPO / "python" / "src"))

from warden_client import Sidecar  # noqa: E402


#: Ids of the current test's instances (swept after each test) and of every instance (swept at the end).
_TEST_IDS: List[str] = []
_ALL_IDS: List[str] = []


def warden_command() -> str:
    """The warden command line the suite runs."""
    env = os.environ.get("WARDEN_BIN", "").strip()
    if env:
        return env
    node = shutil.which("node")
    tsx = REPO / "node_modules" / "tsx" / "dist" / "loader.mjs"
    if node is None or not tsx.is_file():
        pytest.fail("Set WARDEN_BIN to the warden command, or run `npm ci` in the repository (node and tsx are needed).")
    return f"{node} --import {tsx.as_uri()} {REPO / 'src' / 'cli.ts'}"


def free_port() -> int:
    """A free port below the kernel's ephemeral range and the vitest workers' bands (20000-31999)."""
    for _ in range(200):
        port = random.randint(12000, 19999)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 12000-19999")


def unique_id(prefix: str = "py", per_test: bool = True) -> str:
    """A fresh instance id; `per_test=False` for a module fixture's instance (not swept between its tests)."""
    instance_id = f"{prefix}-{secrets.token_hex(3)}"
    _ALL_IDS.append(instance_id)
    record_id(instance_id)
    if per_test:
        _TEST_IDS.append(instance_id)
    return instance_id


def pids_of_instance(instance_id: str) -> List[int]:
    """Live (non-zombie) pids whose environment carries WARDEN_INSTANCE=<instance_id>:..."""
    found = []
    needle = f"WARDEN_INSTANCE={instance_id}:".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
            if stat[stat.rfind(b")") + 2 :].split()[0] == b"Z":
                continue
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if any(item.startswith(needle) for item in handle.read().split(b"\0")):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def cmdline(pid: int) -> List[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return [part.decode(errors="replace") for part in handle.read().split(b"\0") if part]
    except OSError:
        return []


def fake_instance(tmp: Path, *, per_test: bool = True, instance_id: Optional[str] = None, args: Optional[List[str]] = None, restart: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """One instance config running a private copy of the fake WebUI's webui.sh (-f: the suite runs as root)."""
    instance_id = instance_id or unique_id(per_test=per_test)
    port = free_port()
    cwd = tmp / f"cwd-{instance_id}"
    shutil.copytree(FAKE_WEBUI, cwd / "fake-webui", ignore=shutil.ignore_patterns("__pycache__", "tmp"))
    return {
        "id": instance_id,
        "command": str(cwd / "fake-webui" / "webui.sh"),
        "args": ["-f", "--port", str(port), *(args if args is not None else ["--workers", "1"])],
        "cwd": str(cwd),
        "env": {"FAKE_WEBUI_STATE_DIR": str(cwd), "python_cmd": sys.executable},
        "health": {"url": f"http://127.0.0.1:{port}/internal/ping", "intervalMs": 1000, "timeoutMs": 1000, "failureThreshold": 3},
        "startupTimeoutMs": 15000,
        "stopGraceMs": 2000,
        "restart": {"onCrash": True, "baseDelayMs": 100, "maxDelayMs": 400, "maxRestarts": 5, "windowMs": 60000, **(restart or {})},
        "port": port,
    }


def write_config(tmp: Path, instances: List[Dict[str, Any]], name: str = "warden.config.json") -> Path:
    """A warden.config.json in `tmp` (stateDir `state`, relative to it) over the given instances."""
    path = tmp / name
    path.write_text(
        json.dumps(
            {
                "stateDir": "state",
                "instances": [{key: value for key, value in instance.items() if key != "port"} for instance in instances],
                "watchdog": {"sampleIntervalMs": 250},
                "server": {"host": "127.0.0.1", "port": free_port()},
            }
        )
    )
    return path


_SIDECARS: List[Sidecar] = []


@pytest.fixture
def make_sidecar() -> Iterator[Callable[..., Sidecar]]:
    """Starts Sidecars that are stopped (then killed by handle, if need be) at teardown."""

    def make(config: Path, **kwargs: Any) -> Sidecar:
        kwargs.setdefault("warden", warden_command())
        sidecar = Sidecar(str(config), **kwargs)
        _SIDECARS.append(sidecar)
        return sidecar.start()

    yield make
    _stop_sidecars()


def _stop_sidecars() -> None:
    while _SIDECARS:
        sidecar = _SIDECARS.pop()
        if sidecar.running():
            sidecar.stop(timeout=20)


def kill_instance_processes(ids: List[str]) -> None:
    """SIGKILLs whatever still carries one of these (this run's own, unique) instance ids."""
    for instance_id in ids:
        for pid in pids_of_instance(instance_id):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture(autouse=True)
def _sweep_markers() -> Iterator[None]:
    """After each test: its sidecars stopped, nothing carrying its instance ids left alive (killed here if so)."""
    yield
    _stop_sidecars()
    kill_instance_processes(_TEST_IDS)
    _TEST_IDS.clear()


@pytest.fixture(autouse=True, scope="session")
def _sweep_at_end() -> Iterator[None]:
    yield
    _stop_sidecars()
    kill_instance_processes(_ALL_IDS)


def record_id(instance_id: str) -> None:
    """Appends an id to $WARDEN_PYTEST_IDS_FILE as soon as it exists, so even a killed run can be swept."""
    ids_file = os.environ.get("WARDEN_PYTEST_IDS_FILE")
    if ids_file:
        with open(ids_file, "a", encoding="utf-8") as handle:
            handle.write(instance_id + "\n")
