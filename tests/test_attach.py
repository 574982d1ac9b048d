"""Windows attached to a running capture: a real `proxycap record` in its own process, TUIs on its control socket
(pilot), a real client through the proxy."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest
from conftest import Proxy
from origins import OriginServer, TestPKI
from test_cli import PROXYCAP, Recording, assert_one_line_error, run
from test_tui_app import listed, until

from proxycap.control.api import Outcome
from proxycap.control.remote import RemoteControl, find
from proxycap.control.server import ControlError, answers, socket_path
from proxycap.tui.app import ProxycapApp

pytestmark = pytest.mark.timeout(90)


def _windows(rec: Recording) -> tuple[ProxycapApp, ProxycapApp]:
    address = find(str(rec.port))
    return tuple(ProxycapApp(Path(c.store_path()), c) for c in (RemoteControl(address), RemoteControl(address)))  # type: ignore[return-value]


async def test_two_windows_follow_a_running_capture_act_on_it_and_outlive_it(
    tmp_path: Path, confdir: Path, pki: TestPKI, origin: OriginServer
) -> None:
    rec = Recording(tmp_path, confdir, pki, "-q")
    try:
        one, two = _windows(rec)
        async with one.run_test(size=(120, 36)) as p1, two.run_test(size=(120, 36)) as p2:
            with rec.client() as c:
                c.get(f"{origin.url}/json")
            for app, pilot in ((one, p1), (two, p2)):
                await until(
                    pilot,
                    lambda app=app: len(app.view) == 1 and listed(app)[0]["state"] == "done",
                    what="the flow in both windows",
                )
            assert not one.readonly and one.status.listen == [["127.0.0.1", rec.port]]

            await p1.press("R")  # replayed by the running proxy, on the first window's word
            for app, pilot in ((one, p1), (two, p2)):
                await until(pilot, lambda app=app: len(app.view) == 2, what="the replay in both windows")
                assert listed(app)[1]["replay_of"] == listed(app)[0]["id"]

            rec.proc.kill()  # no goodbye: the windows see their channel end
            rec.proc.wait()
            for app, pilot in ((one, p1), (two, p2)):
                await until(pilot, lambda app=app: app.readonly, what="read-only once the proxy is gone")
                assert "proxy stopped" in str(app.status_bar.content)
                assert not app.check_action("replay", ())
            await p1.press("R")  # offered no more: nothing happens, nothing breaks
            assert len(one.view) == 2
    finally:
        if rec.proc.poll() is None:
            rec.proc.kill()
            rec.proc.wait()


def test_attach_without_a_running_capture_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port no proxycap runs on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = run("tui", "--attach", str(port), check=False)
    assert_one_line_error(p, "no proxycap answers")


def test_the_control_socket_is_private_and_goes_with_the_capture(proxy: Proxy) -> None:
    path = socket_path(proxy.port)
    assert answers(path) and os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(path.parent).st_mode & 0o777 == 0o700
    control = RemoteControl(str(path))
    try:
        assert control.store_path() == str(proxy.store_path)
        assert isinstance(control.set_label("127.0.0.9", "phone"), Outcome)
        with pytest.raises(AttributeError):
            control.no_such_call  # noqa: B018  # only the Control protocol's calls cross the channel
    finally:
        control.close()
    proxy.session.stop()
    assert not path.exists()


def test_the_tcp_control_port_wants_its_token(
    tmp_path: Path, confdir: Path, pki: TestPKI, origin: OriginServer
) -> None:
    rec = Recording(tmp_path, confdir, pki, "-q", "--control-port", "0")
    try:
        line = next(line for line in iter(rec.proc.stderr.readline, "") if "attach" in line)
        token = line.split("PROXYCAP_TOKEN=")[1].split()[0]
        address = line.rsplit("--attach ", 1)[1].strip(" )\n")
        os.environ["PROXYCAP_TOKEN"] = "wrong"
        with pytest.raises(ControlError, match="token"):
            RemoteControl(address)
        os.environ["PROXYCAP_TOKEN"] = token
        control = RemoteControl(address)
        assert control.store_path() == str(rec.store)
        control.close()
    finally:
        os.environ.pop("PROXYCAP_TOKEN", None)
        rec.stop()


def test_attach_finds_the_one_capture_running_or_says_there_is_none(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}  # a user with no capture running
    p = subprocess.run([*PROXYCAP, "tui", "--attach"], env=env, capture_output=True, text=True, timeout=30)
    assert_one_line_error(p, "no proxycap is running")
