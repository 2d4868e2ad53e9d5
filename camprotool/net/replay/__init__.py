"""Replay a recorded conversation: client playback and server playback.

The question replay answers is "does this server still answer as the recorded
one did?" (client playback), and "what does this client do when the server
answers as recorded?" (server playback). Recordings are pcapng/pcap files, or
a :class:`~camprotool.analysis.capture.Capture` already read.

Client playback (:func:`replay_client`), like mitmproxy's ``clientplayback``
------------------------------------------------------------------------------

Every recorded *main* connection becomes a new connection to the target, and
its client messages are sent again, in the recorded order:

* One timeline holds, across the replayed connections, each connection's
  opening, each client message, each recorded server reply and each close,
  ordered by recorded time. The driver walks it once, so a message is sent
  only after every reply that was recorded before it has arrived live (or
  been given up as missing). That keeps the causal order between connections
  too: a download recorded after another connection's upload is replayed
  after the live upload was answered.
* Delays: the gap between a step and the previous one in the recording is
  kept, divided by ``speed``, counted from when the previous step happened
  *live* (for a reply: when the live reply arrived). So a client's "think
  time" is kept even when the live server is slower or faster; the server's
  own latency is not imitated. ``speed=0`` sends as fast as the answers come.
* Answers (PROTOCOL.md s.2): Login -> LoginOk/LoginError, CreatDataSocket ->
  ReturnDataSocketPort/LoginError, CheckCaramerOnlineStatus ->
  ReturnCaramerOnlineStatus/LoginError, UploadCaramer -> UploadSucess/Fail,
  DownLoadCaramer -> DownloadSucess/Fail. A live reply is paired with the
  oldest unanswered request it can answer on its connection; one that arrives
  after ``timeout`` is no longer paired (it shows as ``extra``).
* Data connections open to the port the *live* server just returned, from the
  main connection's local address (servers check it). No live port (an empty
  answer, a LoginError, no answer) means the data connection is not opened
  and its recorded replies are ``missing``, with the reason.
* Downloads echo the live server's ``current`` (the protocol's rule), not the
  recorded one, and stop when the live server says current == total or
  answers DownloadFail; recorded requests past that are not sent. If the
  recorded client completed its download but the live server has more
  cameras, replay keeps asking, as the client would: those replies are
  ``extra``.

The comparison has one row per recorded server message and per unexpected
live one: ``same``, ``different`` (``detail`` names the fields),
``missing`` (``detail`` says why) or ``extra``. Volatile fields are not
compared: ``LoginOk``'s last login time and IP by default (``volatile=``),
and a ``ReturnDataSocketPort``'s port only for presence (a port vs an empty
answer). Pushes (``kind == "push"``) come from events outside the
conversation (a camera going offline), which replay cannot cause, so they
are compared (as a multiset per connection) but left out of
:attr:`ReplayResult.ok`.

Server playback (:class:`ReplayServer`), like mitmproxy's ``serverplayback``
------------------------------------------------------------------------------

Each accepted main connection is given one recorded main connection, chosen
at its first request (the one whose requests match best; unused ones first;
``reuse=False`` serves each recording once). A request is answered with the
recorded reply of the first unused recorded request with the same command and
parameters, else the same command; a request with no such recorded request
is answered with nothing and reported in :attr:`ReplayServer.unanswered`
(heartbeats excepted). Pushes are sent at their recorded times relative to
the first request (divided by ``speed``). A replayed ``ReturnDataSocketPort``
is rewritten to a one-shot listener of the server's own (one connection, from
the main connection's address, within ``data_port_timeout``) that plays back
the data connection the recorded port announced.

Both record to pcapng with ``record=`` (through :mod:`camprotool.net.recording`)
and keep a live ``messages`` table with the columns of ``Capture.messages``.
"""

from __future__ import annotations

from camprotool.net.replay.client import replay_client, replay_client_async
from camprotool.net.replay.compare import DEFAULT_VOLATILE, MATCHES, ReplayResult, compare_replies
from camprotool.net.replay.plan import ANSWERS
from camprotool.net.replay.server import ReplayServer

__all__ = [
    "ANSWERS",
    "DEFAULT_VOLATILE",
    "MATCHES",
    "ReplayResult",
    "ReplayServer",
    "compare_replies",
    "replay_client",
    "replay_client_async",
]
