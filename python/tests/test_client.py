"""WardenClient against a real `warden run` (started through Sidecar): the calls a controller makes, and their errors."""

from __future__ import annotations

import time
from typing import Any, Dict, Iterator

import pytest
from conftest import cmdline, fake_instance, pids_of_instance, warden_command, write_config

from warden_client import Sidecar, WardenClient, WardenError


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Any]]:
    """One sidecar for the module, over one fake WebUI (1 worker)."""
    tmp = tmp_path_factory.mktemp("client")
    instance = fake_instance(tmp, per_test=False)
    sidecar = Sidecar(str(write_config(tmp, [instance])), warden=warden_command()).start()
    try:
        yield {"sidecar": sidecar, "client": sidecar.client, "id": instance["id"], "port": instance["port"]}
    finally:
        sidecar.stop(timeout=30)
        assert pids_of_instance(instance["id"]) == []


def test_status_config_and_instance_describe_the_configured_webui(warden: Dict[str, Any]) -> None:
    client: WardenClient = warden["client"]
    status = client.status()
    assert [entry["id"] for entry in status["instances"]] == [warden["id"]]
    assert status["watchdog"]["level"] in ("ok", "warning", "critical", "emergency")
    assert client.instance(warden["id"])["id"] == warden["id"]
    assert [entry["id"] for entry in client.config()["instances"]] == [warden["id"]]
    with pytest.raises(WardenError) as refused:
        client.instance("no-such-webui")
    assert refused.value.code == "UNKNOWN_INSTANCE"


def test_ensure_running_is_idempotent_and_is_running_pid_check_health_agree_with_proc(warden: Dict[str, Any]) -> None:
    client: WardenClient = warden["client"]
    entry = client.ensure_running(warden["id"], timeout=30)
    assert entry["state"] == "running"
    assert client.is_running(warden["id"]) is True
    assert client.check_health(warden["id"]) is True
    pid = client.pid(warden["id"])
    assert isinstance(pid, int)
    # The root pid is the wrapper (bash webui.sh), and it carries the instance's marker.
    assert pid in pids_of_instance(warden["id"])
    assert any(part.endswith("webui.sh") for part in cmdline(pid))
    # A second call changes nothing: the same tree keeps running.
    assert client.ensure_running(warden["id"], timeout=30)["pid"] == pid
    assert client.pid(warden["id"]) == pid


def test_restart_with_wait_ready_stops_the_old_tree_confirmed_before_the_new_one(warden: Dict[str, Any]) -> None:
    client: WardenClient = warden["client"]
    client.ensure_running(warden["id"], timeout=30)
    old_pids = set(pids_of_instance(warden["id"]))
    old_root = client.pid(warden["id"])
    assert old_pids and old_root in old_pids
    reply = client.restart(warden["id"], wait_ready=True, max_attempts=2)
    instance = reply["instance"]
    assert instance["state"] == "running"
    report = instance["lastReport"]
    assert report["survivors"] == []
    assert old_root in {entry["pid"] for entry in report["killed"]}
    assert client.pid(warden["id"]) != old_root
    # Not one process of the old tree is left; the new tree is a different set of pids.
    new_pids = set(pids_of_instance(warden["id"]))
    assert new_pids and not (new_pids & old_pids)


def test_stop_returns_a_report_with_no_survivors_and_nothing_carries_the_marker(warden: Dict[str, Any]) -> None:
    client: WardenClient = warden["client"]
    client.ensure_running(warden["id"], timeout=30)
    reply = client.stop(warden["id"])
    assert reply["instance"]["state"] == "idle"
    assert reply["report"]["survivors"] == []
    assert len(reply["report"]["killed"]) >= 3  # bash, launch.py, its worker
    assert pids_of_instance(warden["id"]) == []
    assert client.is_running(warden["id"]) is False
    assert client.check_health(warden["id"]) is False
    assert client.pid(warden["id"]) is None


def test_bad_arguments_are_refused_before_anything_is_sent(warden: Dict[str, Any]) -> None:
    client: WardenClient = warden["client"]
    cases = {
        "both": lambda: client.start(warden["id"], args=["--api"], launch_profile="lowvram"),
        "args_string": lambda: client.start(warden["id"], args="--api"),  # type: ignore[arg-type]
        "empty_profile": lambda: client.restart(warden["id"], launch_profile=""),
        "attempts": lambda: client.restart(warden["id"], max_attempts=0),
        "tail_zero": lambda: client.tail(warden["id"], 0),
        "tail_huge": lambda: client.tail(warden["id"], 10001),
    }
    before = client.instance(warden["id"])["state"]
    for name, call in cases.items():
        with pytest.raises(WardenError) as refused:
            call()
        assert refused.value.code == "BAD_REQUEST", name
        assert refused.value.status is None, name  # the client's own refusal: no request was made
    assert client.instance(warden["id"])["state"] == before


def test_a_wrong_token_and_a_dead_url_arrive_as_codes(warden: Dict[str, Any]) -> None:
    client: WardenClient = warden["client"]
    with pytest.raises(WardenError) as unauthorized:
        WardenClient(url=client.url, token="0" * 64).status()
    assert (unauthorized.value.code, unauthorized.value.status) == ("UNAUTHORIZED", 401)
    with pytest.raises(WardenError) as unreachable:
        WardenClient(url="http://127.0.0.1:9", token="t", timeout=2).status()
    assert unreachable.value.code == "UNREACHABLE"


def test_restart_max_attempts_tries_a_failing_start_again_then_raises_start_failed(tmp_path: Any, make_sidecar: Any) -> None:
    # A WebUI that dies at once: every start fails. The auto-restart backoff is long, so only the client retries.
    instance = fake_instance(tmp_path, args=["--exit-immediately"], restart={"baseDelayMs": 120000, "maxDelayMs": 120000})
    sidecar = make_sidecar(write_config(tmp_path, [instance]))
    launches = lambda: sidecar.output().count(f"{instance['id']} launched pid")  # noqa: E731
    deadline = time.monotonic() + 20
    while sidecar.client.instance(instance["id"])["state"] != "crashed" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sidecar.client.instance(instance["id"])["state"] == "crashed"
    before = launches()
    with pytest.raises(WardenError) as failed:
        sidecar.client.restart(instance["id"], max_attempts=2, timeout=30)
    assert failed.value.code == "START_FAILED"
    # Each attempt was a real launch (stop-then-start), two in all.
    deadline = time.monotonic() + 5
    while launches() < before + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert launches() == before + 2
    assert sidecar.stop(timeout=30) == 0
    assert pids_of_instance(instance["id"]) == []
