"""Regenerate the bundled sample captures: ``python captures/make_samples.py``.

The conversations follow the built-in demo scenario (PROTOCOL.md flows, the
demo accounts and cameras of DESIGN.md) and are scripted packet by packet
with camprotool's capture writer, so the files are reproducible byte for byte:

* ``sample.pcapng`` — user ``demo`` logs in, queries statuses, uploads six
  cameras over a data connection (two fail: a wrong camera password, and
  DEMO0001 already bound to its maximum of accounts) while the server pushes
  status changes and alarms; heartbeats keep the main connection alive.
* ``sample.pcap`` — the same conversation as a classic nanosecond pcap.
* ``download.pcapng`` — user ``bob`` (no local cameras) downloads his camera,
  then ``alice`` logs in with a wrong password, retries, and her download
  fails (no camera bound); the server speaks ``lp32le:gbk`` here.
* ``failed_sync.pcapng`` — a misbehaving client: ``alice`` uploads five
  cameras but skips a step and drops the data connection before the end, a
  capture packet is lost mid-frame, the client falls silent past the
  heartbeat timeout, asks for 22 statuses at once, and then uploads on a data
  port nobody announced. The notebook ``02-debug-a-failed-sync`` takes it
  apart.
"""

from __future__ import annotations

import sys
from pathlib import Path

from camprotool.capture.writer import PcapngWriter, PcapWriter, TcpConversation
from camprotool.protocol.codec import encode

T0 = 1_764_320_400_000_000_000  # 2025-11-28 09:00:00 UTC
MS = 1_000_000
S = 1_000 * MS
SERVER = "192.0.2.10"
NAMES = ("sample.pcapng", "sample.pcap", "download.pcapng", "failed_sync.pcapng")


class Script:
    """Send protocol messages on scripted TCP conversations, advancing a clock."""

    def __init__(self, writer, dialect: str) -> None:
        self.writer = writer
        self.dialect = dialect
        self.now = T0

    def at(self, ts: int) -> Script:
        self.now = ts
        return self

    def send(self, conn: TcpConversation, direction: str, command: str, params: str = "",
             delay: int = 2 * MS) -> None:
        self.now += delay
        conn.send(direction, encode(command, params, self.dialect), self.now)


def upload_session(writer) -> None:
    s = Script(writer, "line")
    main = writer.tcp(("198.51.100.7", 51514), (SERVER, 9000), s.now)
    s.send(main, "c2s", "Login", "demo|demo", 5 * MS)
    s.send(main, "s2c", "LoginOk", "3|2025-11-27 18:02:11|198.51.100.7")
    s.send(main, "c2s", "CheckCaramerOnlineStatus", "DEMO0001;DEMO0002;DEMO0003")
    s.send(main, "s2c", "ReturnCaramerOnlineStatus", "DEMO0001;true|DEMO0002;false|DEMO0003;null")
    s.send(main, "c2s", "CreatDataSocket", "demo|demo", 40 * MS)
    s.send(main, "s2c", "ReturnDataSocketPort", "9001")
    data = writer.tcp(("198.51.100.7", 51515), (SERVER, 9001), s.now + MS)
    cameras = [("CAM00001", "1234", "UploadSucess", "true"),
               ("CAM00002", "1234", "UploadSucess", "false"),
               ("CAM00003", "9999", "UploadFail", "ID和密码不匹配"),
               ("DEMO0001", "1234", "UploadFail", "该摄像头绑定账号已满"),
               ("CAM00004", "1234", "UploadSucess", "true"),
               ("CAM00005", "1234", "UploadSucess", "null")]
    total = len(cameras)
    for i, (cam, pw, answer, value) in enumerate(cameras, 1):
        s.send(data, "c2s", "UploadCaramer", f"{cam}|{pw}|{i}|{total}", 30 * MS)
        s.send(data, "s2c", answer, f"{cam}|{value}|{i}|{total}", 15 * MS)
        if i == 3:
            s.send(main, "s2c", "PrushCaramerAlarmInfo", "DEMO0002:motion", MS)
    data.close(s.now + 5 * MS)
    s.at(s.now + 20 * S)
    s.send(main, "c2s", "Heartbeat", "", 0)
    s.send(main, "s2c", "PrushCaramerOnlineStatus", "DEMO0002:true", 4 * S)
    s.send(main, "s2c", "PrushCaramerAlarmInfo", "DEMO0001:video_loss", 3 * S)
    s.send(main, "c2s", "Heartbeat", "", 23 * S)
    s.send(main, "s2c", "PrushCaramerOnlineStatus", "DEMO0001:false", 11 * S)
    s.send(main, "s2c", "PrushCaramerAlarmInfo", "CAM00001:io_alarm", 9 * S)
    s.send(main, "c2s", "CheckCaramerOnlineStatus", "DEMO0001;DEMO0002;CAM00001", 2 * S)
    s.send(main, "s2c", "ReturnCaramerOnlineStatus",
           "DEMO0001;false|DEMO0002;true|CAM00001;true")
    s.send(main, "c2s", "Heartbeat", "", 8 * S)
    s.send(main, "s2c", "PrushCaramerOnlineStatus", "DEMO0001:true", 12 * S)
    s.send(main, "s2c", "PrushCaramerAlarmInfo", "DEMO0002:motion", 5 * S)
    main.close(s.now + 10 * S)


def download_session(writer) -> None:
    s = Script(writer, "lp32le:gbk")
    s.at(T0 + 3600 * S)
    main = writer.tcp(("203.0.113.20", 40100), (SERVER, 7000), s.now)
    s.send(main, "c2s", "Login", "bob|bob", 5 * MS)
    s.send(main, "s2c", "LoginOk", "1|2025-11-26 07:45:00|203.0.113.20")
    s.send(main, "c2s", "CreatDataSocket", "bob|bob")
    s.send(main, "s2c", "ReturnDataSocketPort", "7001")
    data = writer.tcp(("203.0.113.20", 40101), (SERVER, 7001), s.now + MS)
    s.send(data, "c2s", "DownLoadCaramer", "0", 10 * MS)
    s.send(data, "s2c", "DownloadSucess", "DEMO0001|1234|true|1|1")
    data.close(s.now + 3 * MS)
    s.send(main, "c2s", "CheckCaramerOnlineStatus", "DEMO0001", 50 * MS)
    s.send(main, "s2c", "ReturnCaramerOnlineStatus", "DEMO0001;true")
    s.send(main, "s2c", "PrushCaramerAlarmInfo", "DEMO0001:motion", 6 * S)
    s.send(main, "c2s", "Heartbeat", "", 24 * S)
    main.close(s.now + 2 * S)

    s.at(T0 + 3700 * S)
    other = writer.tcp(("203.0.113.77", 40500), (SERVER, 7000), s.now)
    s.send(other, "c2s", "Login", "alice|alcie", 5 * MS)
    s.send(other, "s2c", "LoginError", "用户名或者密码错误!")
    s.send(other, "c2s", "Login", "alice|alice", 4 * S)
    s.send(other, "s2c", "LoginOk", "0|2025-11-20 21:13:09|203.0.113.77")
    s.send(other, "c2s", "CreatDataSocket", "alice|alice")
    s.send(other, "s2c", "ReturnDataSocketPort", "7002")
    data = writer.tcp(("203.0.113.77", 40501), (SERVER, 7002), s.now + MS)
    s.send(data, "c2s", "DownLoadCaramer", "0", 10 * MS)
    s.send(data, "s2c", "DownloadFail", "该账号下没有绑定任何摄像头")
    data.close(s.now + 3 * MS)
    other.close(s.now + S)


def failed_sync_session(writer) -> None:
    s = Script(writer, "line")
    s.at(T0 + 7200 * S)
    main = writer.tcp(("198.51.100.40", 50200), (SERVER, 9000), s.now)
    s.send(main, "c2s", "Login", "alice|alice", 5 * MS)
    s.send(main, "s2c", "LoginOk", "0|2025-11-27 22:10:05|198.51.100.40")
    s.send(main, "c2s", "CreatDataSocket", "alice|alice")
    s.send(main, "s2c", "ReturnDataSocketPort", "9003")
    data = writer.tcp(("198.51.100.40", 50201), (SERVER, 9003), s.now + MS)
    s.send(data, "c2s", "UploadCaramer", "CAM00011|1234|1|5", 20 * MS)
    s.send(data, "s2c", "UploadSucess", "CAM00011|true|1|5")
    s.send(data, "c2s", "UploadCaramer", "CAM00012|4321|2|5", 20 * MS)
    s.send(data, "s2c", "UploadFail", "CAM00012|ID和密码不匹配|2|5")
    # The client skips camera 3 and announces camera 4 as the 4th...
    s.send(data, "c2s", "UploadCaramer", "CAM00014|1234|4|5", 20 * MS)
    s.send(data, "s2c", "UploadSucess", "CAM00014|false|3|5")
    # ...then drops the connection before the 5th.
    data.close(s.now + 5 * MS, how="rst")
    # A status query whose answer loses a segment on the way to the capture.
    s.send(main, "c2s", "CheckCaramerOnlineStatus", "CAM00011;CAM00014", 100 * MS)
    answer = encode("ReturnCaramerOnlineStatus", "CAM00011;true|CAM00014;false")
    s.now += 2 * MS
    main.send("s2c", answer[:20], s.now)
    main.skip("s2c", 15)  # lost by the capture, not by the network
    main.send("s2c", answer[35:], s.now + MS)
    s.send(main, "s2c", "PrushCaramerOnlineStatus", "CAM00014:true", 5 * S)
    # The client stays silent for two minutes (heartbeat timeout: 90 s).
    s.send(main, "c2s", "Heartbeat", "", 120 * S)
    s.send(main, "c2s", "CheckCaramerOnlineStatus",
           ";".join(f"CAM{i:05d}" for i in range(1, 23)), 2 * S)
    s.send(main, "s2c", "ReturnCaramerOnlineStatus",
           "|".join(f"CAM{i:05d};null" for i in range(1, 21)))
    main.close(s.now + S, how="rst")

    # The same client then uploads on a data port nobody announced to it.
    rogue = writer.tcp(("198.51.100.40", 50202), (SERVER, 9004), s.now + 3 * S)
    s.send(rogue, "c2s", "UploadCaramer", "CAM00020|1234|1|1", 4 * S)
    s.send(rogue, "s2c", "UploadSucess", "CAM00020|null|1|1")
    rogue.close(s.now + MS)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with PcapngWriter(out / "sample.pcapng") as w:
        upload_session(w)
    with PcapWriter(out / "sample.pcap", nanosecond=True) as w:
        upload_session(w)
    with PcapngWriter(out / "download.pcapng") as w:
        download_session(w)
    with PcapngWriter(out / "failed_sync.pcapng") as w:
        failed_sync_session(w)
    for name in NAMES:
        print(f"wrote {out / name} ({(out / name).stat().st_size} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
