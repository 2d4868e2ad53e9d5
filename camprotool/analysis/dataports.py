"""Rule ``data_port_hijack``: a data session someone else may have taken.

The protocol gives a data connection no credentials (PROTOCOL.md section 1):
a server knows whom a connection on a data port is for only because it
announced that port (``ReturnDataSocketPort``) on a main connection. So a
capture shows a possible session theft in two ways, and this module finds
both, across connections (the per-connection session machines cannot):

* a data connection from an IP address other than the one its port was last
  announced to (on the same server address);
* a second connection to one announcement (the client may open one data
  connection per ``ReturnDataSocketPort``): another program on the client's
  host or behind its NAT, or a client reusing a port it was not given again.

Which announcement a data connection used is the one linking rule's
(:mod:`camprotool.protocol.linking`, the same as the connection table's
``main_conn``): the latest announcement of its port to its own IP address by
its server, at or before its opening, that no empty answer on that main
connection cleared since. Only a connection its own address holds no usable
announcement for is matched by the same rule among the announcements of its
server to anyone (which one it may have taken from another address). Why
not simply the latest announcement to anyone: a server with more clients
than data ports gives one port to many clients in turn, and client A may
connect after the port was also announced to B. Connections to a port
never announced are ``unannounced_data_port``'s business, not this rule's.
The finding is attached to the connection's first message, or, when it
carried none (a server that refused it), to the announcement it hit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from camprotool.analysis.judging import Found
from camprotool.protocol import linking

RULE = "data_port_hijack"
#: Ranks above every machine finding: a message's own violations come first, in RULES order.
RANK_BASE = 1 << 40


def data_port_findings(messages: pd.DataFrame, connections: pd.DataFrame) -> list[Found]:
    """``(message, rank, rule, detail)`` for every suspect data connection (module docstring)."""
    c = connections
    m = messages
    if not len(c) or not len(m):
        return []
    is_ann = ((m["command"] == "ReturnDataSocketPort") & (m["direction"] == "s2c")
              & m["error"].isna()).to_numpy(bool)  # empty answers too: they clear ports
    if not is_ann.any():
        return []
    by_conn = c.set_index("conn")
    pos = np.flatnonzero(is_ann)
    ann_conn = m["conn"].to_numpy(np.int64)[pos]
    mains = by_conn.reindex(ann_conn)
    on_main = (mains["channel"] == "main").to_numpy(bool)
    pos, ann_conn, mains = pos[on_main], ann_conn[on_main], mains[on_main]
    data = c[c["channel"].isin(("data", "unknown")).to_numpy(bool)]
    if not len(pos) or not len(data):
        return []
    ann_port = m["port"].to_numpy(np.int64, na_value=-1)[pos]
    ann_ts = np.asarray(m["ts"].array.asi8, np.int64)[pos]
    d_port = data["server_port"].to_numpy(np.int64, na_value=-1)
    d_open = np.asarray(data["start"].array.asi8, np.int64)
    client = _codes(mains["client_ip"], data["client_ip"])
    server = _codes(mains["server_ip"], data["server_ip"])
    # its own address's usable announcement (as the connection table links it) ...
    own = linking.link(client[1] * server[2] + server[1], d_port, d_open,
                       client[0] * server[2] + server[0], ann_port, ann_ts, ann_conn)
    # ... else the one it used among those its server made to anyone
    anyone = linking.link(server[1], d_port, d_open, server[0], ann_port, ann_ts, ann_conn)
    at = np.where(own != linking.NONE, own, anyone)
    hit = at != linking.NONE
    if not hit.any():
        return []
    which = at[hit]
    used = pd.DataFrame({
        "conn": data["conn"].to_numpy(np.int64)[hit],
        "client_ip": data["client_ip"].to_numpy(object)[hit],
        "client": data["client"].to_numpy(object)[hit],
        "port": d_port[hit],
        "at": d_open[hit],
        "ann_message": pos[which].astype(np.int64),
        "ann_conn": ann_conn[which],
        "ann_client": mains["client_ip"].to_numpy(object)[which],
    }).sort_values(["at", "conn"], kind="stable").reset_index(drop=True)
    used["nth"] = used.groupby("ann_message").cumcount()
    first_of = used.groupby("ann_message")["conn"].first()
    first_client = used.groupby("ann_message")["client"].first()
    foreign = (used["client_ip"] != used["ann_client"]).to_numpy(bool)
    again = (used["nth"] > 0).to_numpy(bool)
    conn_ids = m["conn"].to_numpy(np.int64)
    seen, first_row = np.unique(conn_ids, return_index=True)  # messages are in ts order
    first_message = dict(zip(seen.tolist(), first_row.tolist(), strict=True))
    suspect = np.flatnonzero(foreign | again)
    found: list[Found] = []
    for k, row in zip(suspect.tolist(), used.iloc[suspect].itertuples(index=False),
                      strict=True):
        said = []
        where = (f"data connection {row.conn} from {row.client} to port {row.port}, "
                 f"announced at message {row.ann_message} on main connection {row.ann_conn}")
        if foreign[k]:
            said.append(f"{where} to {row.ann_client}: from another address")
        if again[k]:
            first = int(first_of[row.ann_message])
            said.append(f"{'it' if said else where} is connection number {row.nth + 1} to "
                        f"that one announcement (the first: connection {first} from "
                        f"{first_client[row.ann_message]})")
        detail = "; ".join(said) + (": the protocol cannot tell who opened it, so it may "
                                    "be another program taking the session")
        message = first_message.get(row.conn)
        if message is None:
            detail += " (the connection carried no message; reported on the announcement)"
            message = row.ann_message
        found.append((int(message), RANK_BASE + k, RULE, detail))
    return found


def _codes(ann: pd.Series, data: pd.Series) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer codes of the announcements' and the data connections' addresses (equal
    addresses, equal codes), and how many addresses there are."""
    codes, uniq = pd.factorize(np.concatenate([ann.to_numpy(object), data.to_numpy(object)]))
    codes = codes.astype(np.int64)
    return codes[:len(ann)], codes[len(ann):], len(uniq)
