"""Record ``captures/emulator.pcapng`` through the real emulator, client and proxy.

    python captures/record_emulator.py [OUT_DIR]

Unlike ``make_samples.py`` (scripted bytes, reproducible byte for byte), this
capture is what camprotool's own pieces put on the wire: the embedded
:class:`~camprotool.net.EmulatorServer` with the demo scenario, a
:class:`~camprotool.net.Client` syncing through a recording
:class:`~camprotool.net.Proxy`, and pushes and alarms raised while it runs.
Ports and timestamps differ on every run.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

from camprotool.net import Client, EmulatorServer, LoginFailed, Proxy


def record(path: Path) -> Path:
    with EmulatorServer() as srv, Proxy(listen=("127.0.0.1", 0), upstream=srv.address,
                                        record=str(path)) as px:
        # alice has no camera: of three uploads one binds, one has the wrong password and
        # DEMO0001 is already bound to its maximum of accounts.
        with Client(*px.address) as c:
            with contextlib.suppress(LoginFailed):  # a wrong password first, on purpose
                c.login("alice", "wrong")
            c.login("alice", "alice")
            c.upload([("CAM00001", "1234"), ("CAM00002", "0000"), ("DEMO0001", "1234")])
        # demo downloads its three cameras, queries them and sees pushes and alarms.
        with Client(*px.address) as c:
            c.login("demo", "demo")
            c.sync([])
            c.check_status(["DEMO0001", "DEMO0002", "DEMO0003", "CAM00009"])
            srv.set_online("DEMO0002", True)
            srv.raise_alarm("DEMO0001", "motion")
            srv.set_online("DEMO0001", False)
            srv.raise_alarm("DEMO0003", "video_loss")
            for _ in range(4):
                c.next_push(timeout=5)
            c.heartbeat()
            time.sleep(0.05)
    return path


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    out.mkdir(parents=True, exist_ok=True)
    path = record(out / "emulator.pcapng")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
