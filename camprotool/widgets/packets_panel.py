"""The explorer's drill-down: from a message (or a frame, or a connection) to its packets.

What a Wireshark user does with a click: a message's row leads to the TCP
segments that carried it, with their flags, sequence numbers and bytes, and
to the command line that opens the capture at that packet in Wireshark. The
packets come from :mod:`camprotool.analysis.drilldown` (which reads the
capture again), so the lookup runs on the explorer's worker thread; this
module only holds the widgets and turns a choice into a
:class:`~camprotool.analysis.hexview.PacketList`, shown through the one HTML
rendering path (:mod:`camprotool.analysis.render`): the packets table is
rendered like the explorer's messages table and the report's tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from camprotool.analysis import render
from camprotool.analysis.hexview import SHOWN, wireshark_command
from camprotool.widgets._ipywidgets import widgets

if TYPE_CHECKING:
    from camprotool.analysis.capture import Capture
    from camprotool.analysis.hexview import PacketList

KINDS = (("message #", "message"), ("frame", "frame"), ("connection", "connection"))
HINT = ("<i>pick a message (its # in the table), a frame or a connection and press "
        "<b>Packets</b></i>")


class PacketsPanel:
    """A kind (message, frame, connection), a number, a **Packets** button and the view."""

    def __init__(self) -> None:
        W = widgets
        self.kind = W.Dropdown(options=KINDS, value="message", description="packets of",
                               layout=W.Layout(width="230px"))
        self.number = W.IntText(value=0, layout=W.Layout(width="110px"))
        self.button = W.Button(description="Packets", icon="search",
                               tooltip="the packets that carried it: flags, numbers, bytes")
        self.view = W.HTML(HINT)
        self.packets: PacketList | None = None
        self.widget = W.VBox([W.HBox([self.kind, self.number, self.button]), self.view])

    @property
    def children(self) -> list[Any]:
        return [self.kind, self.number, self.button, self.view, *self.widget.children,
                self.widget]

    def suggest(self, message: int | None) -> None:
        """Offer a message of the selection (only while the choice is a message)."""
        if message is not None and self.kind.value == "message":
            self.number.value = int(message)

    def find(self, cap: Capture) -> PacketList:
        """The packets of the current choice (reads the capture: run it on a worker)."""
        from camprotool.analysis import drilldown

        kind, n = self.kind.value, int(self.number.value)
        if kind == "message":
            m = cap.messages
            if n not in m.index:
                raise ValueError(f"no message {n}: the # column of the table runs 0-{len(m) - 1}")
            return drilldown.packets(cap, m.loc[n])
        if kind == "frame":
            return drilldown.packets(cap, n)
        return drilldown.follow(cap, n)

    def show(self, packets: PacketList | None) -> None:
        self.packets = packets
        self.view.value = HINT if packets is None else packets_html(packets)

    def clear(self) -> None:
        self.show(None)


def packets_html(packets: PacketList, limit: int = SHOWN) -> str:
    """The packets as the panel shows them: :meth:`PacketList.to_html` (one HTML path)."""
    return packets.to_html(limit)


def wireshark_hint(source: Any, frame: int | None) -> str:
    """A line under the table: the command that opens the capture at a message's frame."""
    cmd = None if frame is None else wireshark_command(source, frame)
    if cmd is None:
        return ""
    return render.fragment("wireshark_hint", cmd)
