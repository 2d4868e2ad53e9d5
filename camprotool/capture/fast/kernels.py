"""Compiled per-packet loops of the fast capture engine (numba, cached on disk).

Why compiled: a capture is hundreds of thousands of variable-length records;
NumPy cannot walk them without one Python step per record, and that step is
what made decoding slower than the file read. Each kernel here is a plain
loop over ``uint8`` views of the file and fixed-size NumPy arrays: no Python
objects, no allocation per packet.

What each kernel promises is exactly what the reference code does for the
same input (``records.RecordReader._pcap_records``, ``packets.iter_tcp_segments``
fast path, ``reassembly.Reassembler`` on in-order flows); anything the kernels
do not cover is *routed*, never guessed: a packet they cannot parse is marked
for :func:`camprotool.capture.packets.decode_tcp`, a flow that leaves the
in-order subset is marked for the exact reassembler.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from camprotool.protocol.detect import DETECT_AT as _DETECT_AT

# packet status after parse_packets
PKT_TCP = 0  # parsed here: a TCP segment
PKT_PYTHON = 1  # decode with packets.decode_tcp (other link layers, options, damage)

# flow status
FLOW_OPEN = 0  # in-order so far, not closed
FLOW_CLOSED = 1  # closed by FIN/FIN or RST, in order
FLOW_SLOW = 2  # left the in-order subset: the exact reassembler takes the whole 4-tuple

# close reasons (CLOSE_NONE: still open at end of capture)
CLOSE_NONE, CLOSE_FIN, CLOSE_RST = 0, 1, 2

_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10
_MASK32 = 0xFFFFFFFF
# per-direction thresholds at which the sink tries dialect detection (detect.DETECT_AT)
DETECT_AT = np.array(_DETECT_AT, dtype=np.int64)
SAMPLE = _DETECT_AT[3]  # detect.SAMPLE_SIZE: past it, only samples naming commands go on
LONG = _DETECT_AT[-1]  # detect.LONG_SAMPLE: the most any sample holds


@intrinsic
def copy_exact(typingctx, data, src, out, dst, size):
    """``out[dst:dst + size] = data[src:src + size]`` (a ``memmove``), writing nothing past
    ``dst + size``; ``data`` and ``out`` are byte arrays or their :func:`_address`. No
    bounds check: the callers' ranges lie inside both (a slice would have raised).

    Why an intrinsic: in a compiled loop, a slice assignment builds two array views
    and a helper function taking arrays is passed them the same way, each view or
    argument an atomic reference count up and down per call. An intrinsic reads the
    arrays' data pointers where they are. (It lives here, beside its callers: numba's
    cache knows a function's own module only, so a compiled helper imported from
    another module would stay stale in this one's cache when only that one changed.)
    """
    def _bytes(a, mutable=False):
        if isinstance(a, types.CPointer):  # an address from _address
            return a.dtype == types.uint8
        return (isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C"
                and a.dtype == types.uint8 and (a.mutable or not mutable))

    if not (_bytes(data) and _bytes(out, mutable=True) and isinstance(src, types.Integer)
            and isinstance(dst, types.Integer) and isinstance(size, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        a_data, a_src, a_out, a_dst, a_size = args
        t_data, t_src, t_out, t_dst, t_size = signature.args
        source = a_data if isinstance(t_data, types.CPointer) else \
            context.make_array(t_data)(context, builder, a_data).data
        target = a_out if isinstance(t_out, types.CPointer) else \
            context.make_array(t_out)(context, builder, a_out).data
        at = context.cast(builder, a_src, t_src, types.intp)
        to = context.cast(builder, a_dst, t_dst, types.intp)
        count = context.cast(builder, a_size, t_size, types.intp)
        cgutils.raw_memmove(builder, builder.gep(target, [to]), builder.gep(source, [at]),
                            count, 1)
        return context.get_dummy_value()

    return types.none(data, src, out, dst, size), codegen


@intrinsic
def _address(typingctx, array):
    """A C-contiguous array's data pointer, indexed like the flat array.

    Why: a helper given arrays costs an atomic reference count up and down per array
    per call wherever the compiler cannot prove the pair redundant, as in a probe
    loop called per packet (two arrays: 4 % of a capture's decoding); one given
    their addresses costs nothing. Only for arrays the kernel was passed (its
    Python caller holds them): an array made in the kernel may be freed right
    after its last use by name, its address left dangling.
    """
    if not (isinstance(array, types.Array) and array.layout == "C"):
        return None

    def codegen(context, builder, signature, args):
        return context.make_array(signature.args[0])(context, builder, args[0]).data

    return types.CPointer(array.dtype)(array), codegen


@njit(cache=True, nogil=True, inline="always")
def _u32(buf, at, big):
    if big:
        return ((np.int64(buf[at]) << 24) | (np.int64(buf[at + 1]) << 16)
                | (np.int64(buf[at + 2]) << 8) | np.int64(buf[at + 3]))
    return ((np.int64(buf[at + 3]) << 24) | (np.int64(buf[at + 2]) << 16)
            | (np.int64(buf[at + 1]) << 8) | np.int64(buf[at]))


@njit(cache=True, nogil=True, inline="always")
def _be16(buf, at):
    return (np.int64(buf[at]) << 8) | np.int64(buf[at + 1])


@njit(cache=True, nogil=True, inline="always")
def _tcp_at(buf, o, clen):
    """Where the TCP header and payload of the Ethernet record at ``o`` (``clen`` bytes
    captured) are, as :func:`parse_packets` reads them: (TCP header offset, payload
    offset from ``o``, IP end from ``o``), or (-1, 0, 0) if it is not for us."""
    if clen < 54:
        return -1, 0, 0
    if buf[o + 12] != 0x08 or buf[o + 13] != 0x00 or buf[o + 14] != 0x45:
        return -1, 0, 0
    if buf[o + 23] != 6:
        return -1, 0, 0
    frag = _be16(buf, o + 20)
    if frag & 0x3FFF:
        return -1, 0, 0
    total = _be16(buf, o + 16)
    if total < 40:
        return -1, 0, 0
    t = o + 34
    start = 34 + (np.int64(buf[t + 12]) >> 4) * 4
    ip_end = 14 + total
    if not (54 <= start <= ip_end and start <= clen):
        return -1, 0, 0
    return t, start, ip_end


@njit(cache=True, nogil=True, inline="always")
def _tcp_fields(buf, o, t):
    """The addresses (big-endian integers), ports, sequence and acknowledgement numbers
    and flags of the IPv4 record at ``o`` whose TCP header is at ``t``."""
    return (_u32(buf, o + 26, True), _u32(buf, o + 30, True), _be16(buf, t),
            _be16(buf, t + 2), _u32(buf, t + 4, True), _u32(buf, t + 8, True),
            ((np.int64(buf[t + 12]) & 1) << 8) | np.int64(buf[t + 13]))


@njit(cache=True, nogil=True, inline="always")
def _payload(o, start, ip_end, clen):
    """(payload offset, bytes captured, bytes the snaplen cut) of a TCP packet at ``o``
    whose payload starts ``start`` bytes in and whose IP datagram ends at ``ip_end``."""
    if ip_end <= clen:
        return o + start, ip_end - start, 0
    return o + start, clen - start, ip_end - clen


@njit(cache=True, nogil=True)
def parse_packets(buf, linktype, rec_off, cap_len, n, status, src, dst, sport, dport,
                  seq, ack, flags, pay_off, pay_len, missing):
    """Ethernet + IPv4 (no options, no fragment) + TCP, as ``iter_tcp_segments``' fast path.

    ``linktype`` is per packet. Everything else is ``PKT_PYTHON``.
    IPv4 addresses land in ``src``/``dst`` as big-endian integers.
    """
    for i in range(n):
        status[i] = PKT_PYTHON
        if linktype[i] != 1:
            continue
        o = rec_off[i]
        clen = cap_len[i]
        t, start, ip_end = _tcp_at(buf, o, clen)
        if t < 0:
            continue
        status[i] = PKT_TCP
        src[i], dst[i], sport[i], dport[i], seq[i], ack[i], flags[i] = _tcp_fields(buf, o, t)
        pay_off[i], pay_len[i], missing[i] = _payload(o, start, ip_end, clen)


@njit(cache=True, nogil=True)
def index_pcap(buf, off, size, big, mult, limit, linktype, rec_off, cap_len, orig_len, ts,
               status, src, dst, sport, dport, seq, ack, flags, pay_off, pay_len, missing,
               half):
    """Index classic pcap records from ``off`` until ``size`` or ``limit`` records and
    parse each as :func:`parse_packets` does, in one pass.

    Fills ``rec_off`` (offset of the packet bytes), ``cap_len``, ``orig_len`` and ``ts``
    (ns), the parsed columns (0 where not parsed here), and ``half`` with -1 (for
    :func:`ipv4_halves`). Why one pass: each record is parsed while its bytes are in
    the cache. Returns (records, offset reached, bytes the next record needs: 16 + its
    captured length, or 16 when its header is cut).
    """
    n = 0
    need = 16
    is_ether = linktype == 1
    while n < limit and off + 16 <= size:
        sec = _u32(buf, off, big)
        frac = _u32(buf, off + 4, big)
        clen = _u32(buf, off + 8, big)
        olen = _u32(buf, off + 12, big)
        end = off + 16 + clen
        if end > size:
            need = 16 + clen
            break
        o = off + 16
        t = -1
        if is_ether:
            t, start, ip_end = _tcp_at(buf, o, clen)
        if t >= 0:
            status[n] = PKT_TCP
            src[n], dst[n], sport[n], dport[n], seq[n], ack[n], flags[n] = _tcp_fields(
                buf, o, t)
            pay_off[n], pay_len[n], missing[n] = _payload(o, start, ip_end, clen)
        else:
            status[n] = PKT_PYTHON
            src[n] = 0
            dst[n] = 0
            sport[n] = 0
            dport[n] = 0
            seq[n] = 0
            ack[n] = 0
            flags[n] = 0
            pay_off[n] = 0
            pay_len[n] = 0
            missing[n] = 0
        half[n] = -1
        rec_off[n] = o
        cap_len[n] = clen
        orig_len[n] = olen
        ts[n] = sec * 1_000_000_000 + frac * mult
        n += 1
        off = end
    return n, off, need


@njit(cache=True, nogil=True)
def ipv4_halves(status, src, sport, dst, dport, start, n, half, table, keys, nflows):
    """:func:`lookup_halves` for the packets :func:`index_pcap` parsed (IPv4), from
    ``start``, up to the first one left to Python (``PKT_PYTHON``: it may be a TCP
    segment too, and flows are numbered in capture order) or the first new flow that
    does not fit (``full``: the caller grows the table and goes on from there).

    Why a loop of its own, not in the walk: where the table is out of the cache
    (200,000 flows) independent lookups overlap their misses; behind the walk's
    chain of records they wait one by one (walk, parse and lookups fused: 0.70 s
    there, against 0.49 s for the three as loops of their own).
    Returns (flows now, packets looked up to, full).
    """
    zero = np.uint64(0)
    tp, kp, cap, rows = _address(table), _address(keys), len(table), keys.shape[0]
    for i in range(start, n):
        if status[i] != PKT_TCP:
            return nflows, i, False
        h, nflows = _find_half(tp, kp, cap, rows, zero, zero, np.uint64(src[i]),
                               np.uint64(sport[i]), zero, np.uint64(dst[i]),
                               np.uint64(dport[i]), nflows)
        if h < 0:
            return nflows, i, True
        half[i] = h
    return nflows, n, False


@njit(cache=True, nogil=True, inline="always")
def _hash(fam, s_hi, s_lo, sp, d_hi, d_lo, dp):
    h = np.uint64(0x9E3779B97F4A7C15)
    for v in (np.uint64(fam), np.uint64(s_hi), np.uint64(s_lo), np.uint64(sp),
              np.uint64(d_hi), np.uint64(d_lo), np.uint64(dp)):
        h = (h ^ v) * np.uint64(0xBF58476D1CE4E5B9)
        h = h ^ (h >> np.uint64(31))
    return h


@njit(cache=True, nogil=True)
def lookup_halves(table, keys, fam, s_hi, s_lo, sp, d_hi, d_lo, dp, idx, start, half,
                  nflows):
    """Find (or add) the half-connection of each packet's 4-tuple as the sender sees it.

    ``table``: open addressing over half ids (-1 empty), capacity a power of two.
    ``keys[h]``: (fam, s_hi, s_lo, sp, d_hi, d_lo, dp) of half ``h``; a new
    4-tuple adds two halves: ``2*f`` (as first seen) and ``2*f+1`` (reversed).
    Packets ``idx[start:]`` are looked up; ``half[i]`` gets packet ``i``'s half.
    Returns (flows now, position in ``idx`` reached); stops early when the table
    is a quarter full or ``keys`` is full, so the caller can grow them and go on.
    """
    tp, kp, cap, rows = _address(table), _address(keys), len(table), keys.shape[0]
    for q in range(start, len(idx)):
        i = idx[q]
        found, nflows = _find_half(tp, kp, cap, rows, np.uint64(fam[i]), np.uint64(s_hi[i]),
                                   np.uint64(s_lo[i]), np.uint64(sp[i]), np.uint64(d_hi[i]),
                                   np.uint64(d_lo[i]), np.uint64(dp[i]), nflows)
        if found < 0:
            return nflows, q
        half[i] = found
    return nflows, len(idx)


@njit(cache=True, nogil=True, inline="always")
def _find_half(tp, kp, cap, rows, fam, s_hi, s_lo, sp, d_hi, d_lo, dp, nflows):
    """The half of one 4-tuple (all ``uint64``), added with its flow if new (see
    :func:`lookup_halves`; ``tp``, ``kp``: the addresses of ``table`` (``cap`` slots)
    and ``keys`` (``rows`` rows of 7)). Returns (half, flows now); half -1 if the
    table must grow."""
    mask = np.uint64(cap - 1)
    h = _hash(fam, s_hi, s_lo, sp, d_hi, d_lo, dp)
    slot = h & mask
    while True:
        cand = tp[slot]
        if cand < 0:
            break
        c = cand * 7
        if (kp[c + 2] == s_lo and kp[c + 5] == d_lo and kp[c + 3] == sp
                and kp[c + 6] == dp and kp[c] == fam and kp[c + 1] == s_hi
                and kp[c + 4] == d_hi):
            return cand, nflows
        slot = (slot + np.uint64(1)) & mask
    if 4 * (nflows + 1) > cap or 2 * nflows + 2 > rows:
        return -1, nflows
    a = 2 * nflows
    _put_key(kp, a * 7, fam, s_hi, s_lo, sp, d_hi, d_lo, dp)  # the half as first seen
    _put_key(kp, a * 7 + 7, fam, d_hi, d_lo, dp, s_hi, s_lo, sp)  # and the other
    tp[slot] = a
    slot2 = _hash(fam, d_hi, d_lo, dp, s_hi, s_lo, sp) & mask
    while tp[slot2] >= 0:
        slot2 = (slot2 + np.uint64(1)) & mask
    tp[slot2] = a + 1
    return a, nflows + 1


@njit(cache=True, nogil=True, inline="always")
def _put_key(kp, at, fam, s_hi, s_lo, sp, d_hi, d_lo, dp):
    """Write a half's key (fam, s_hi, s_lo, sp, d_hi, d_lo, dp) at ``kp[at:at + 7]``."""
    kp[at] = fam
    kp[at + 1] = s_hi
    kp[at + 2] = s_lo
    kp[at + 3] = sp
    kp[at + 4] = d_hi
    kp[at + 5] = d_lo
    kp[at + 6] = dp


@njit(cache=True, nogil=True)
def rehash(table, keys, nflows):
    """Put halves ``0 .. 2*nflows`` into an empty (larger) ``table``."""
    mask = np.uint64(len(table) - 1)
    for half in range(2 * nflows):
        k = keys[half]
        slot = _hash(k[0], k[1], k[2], k[3], k[4], k[5], k[6]) & mask
        while table[slot] >= 0:
            slot = (slot + np.uint64(1)) & mask
        table[slot] = half


@njit(cache=True, nogil=True)
def track_flows(half, flags, seq, pay_len, missing, ts, frame, n, fstate, fa, hbase, hnxt,
                hfin, hisn, fclose, fclose_ts, fclose_frame, ffirst, slow_known,
                pkt_dir, emit):
    """Follow every flow through the in-order subset of TCP; mark those that leave it.

    Per flow ``f`` (halves ``2f``/``2f+1``): ``fstate`` (FLOW_*), ``fa`` the half
    that is side *a* (the SYN sender; -1 before the first packet). Per half
    (indexed ``2f + (0 if half is a->b else 1)`` once ``fa`` is known, i.e. by
    *direction* ``d``): ``hbase`` 1 once the stream started, ``hnxt`` next
    sequence number, ``hfin`` 1 once its FIN is delivered, ``hisn`` the SYN's
    sequence number.

    The subset is what the reassembler handles without buffering, gaps or
    problems: a flow whose first packet is a SYN without ACK or payload, a
    SYN-ACK (or retransmitted SYN) that starts the other direction, data only
    at the next expected sequence number and never cut by the snaplen, FINs
    in order, a RST anywhere before close (its payload ignored, as the
    reassembler ignores it), and after the close nothing but segments without
    payload or SYN. ``slow_known`` (second pass) marks flows the first pass
    found outside: their packets get ``pkt_dir = -1``.

    With ``emit``, per packet: ``pkt_dir`` (0 c2s, 1 s2c, -1 not delivered).
    ``ffirst`` gets the window index of each flow's first packet.
    """
    for i in range(n):
        hh = half[i]
        if hh < 0:
            continue
        f = hh >> 1
        if ffirst[f] < 0:
            ffirst[f] = i
        if emit:
            pkt_dir[i] = -1
        st = fstate[f]
        if st == FLOW_SLOW or (slow_known[f] if len(slow_known) else False):
            fstate[f] = FLOW_SLOW
            continue
        fl = flags[i]
        plen = pay_len[i]
        if fa[f] < 0:  # first packet of the 4-tuple
            if not (fl & _SYN) or fl & (_ACK | _FIN | _RST) or plen or missing[i]:
                fstate[f] = FLOW_SLOW
                continue
            fa[f] = hh
            d = 0
            hbase[2 * f] = 1
            hisn[2 * f] = seq[i]
            hnxt[2 * f] = (seq[i] + 1) & _MASK32
            continue
        d = 0 if hh == fa[f] else 1
        k = 2 * f + d
        if st == FLOW_CLOSED:
            if plen or missing[i] or (fl & _SYN and not fl & _ACK):
                fstate[f] = FLOW_SLOW  # data after close, or the 4-tuple reused
            continue
        if fl & _RST:
            fstate[f] = FLOW_CLOSED
            fclose[f] = CLOSE_RST
            fclose_ts[f] = ts[i]
            fclose_frame[f] = frame[i]
            continue
        if missing[i]:
            fstate[f] = FLOW_SLOW
            continue
        if fl & _SYN:
            if plen or fl & _FIN:
                fstate[f] = FLOW_SLOW
                continue
            if hbase[k] == 0:
                if d == 0 or not fl & _ACK:
                    fstate[f] = FLOW_SLOW
                    continue
                hbase[k] = 1
                hisn[k] = seq[i]
                hnxt[k] = (seq[i] + 1) & _MASK32
            elif seq[i] != hisn[k]:
                fstate[f] = FLOW_SLOW  # not a plain retransmission
            continue
        if plen:
            if hbase[k] == 0 or hfin[k] or seq[i] != hnxt[k]:
                fstate[f] = FLOW_SLOW
                continue
            hnxt[k] = (seq[i] + plen) & _MASK32
            if emit:
                pkt_dir[i] = d
        if fl & _FIN:
            if hfin[k]:
                continue  # retransmitted FIN: nothing for the reassembler
            if hbase[k] == 0 or (seq[i] + plen) & _MASK32 != hnxt[k]:
                fstate[f] = FLOW_SLOW
                continue
            hfin[k] = 1
            hnxt[k] = (hnxt[k] + 1) & _MASK32
            if hfin[2 * f + 1 - d]:
                fstate[f] = FLOW_CLOSED
                fclose[f] = CLOSE_FIN
                fclose_ts[f] = ts[i]
                fclose_frame[f] = frame[i]


@njit(cache=True, nogil=True)
def delivered_packets(pkt_dir, half, pay_off, pay_len, ts, frame, ignored, totals, at,
                      out_off, out_len, out_ts, out_frame, out_dir, out_flow):
    """The packets :func:`track_flows` delivered (``pkt_dir`` >= 0), in capture order,
    as columns from ``at`` on (what is before it, the caller's); each one's payload
    length is added to its flow's ``totals[flow, dir]``, and those of ``ignored``
    flows are counted but left out. Returns where the columns end.

    Why a loop: selecting, gathering six columns and ``np.add.at`` cost ten NumPy
    passes over the window (5 ms of 150 on 262,453 packets)."""
    k = at
    for i in range(len(pkt_dir)):
        d = pkt_dir[i]
        if d < 0:
            continue
        f = half[i] >> 1
        totals[f, d] += pay_len[i]
        if ignored[f]:
            continue
        out_off[k] = pay_off[i]
        out_len[k] = pay_len[i]
        out_ts[k] = ts[i]
        out_frame[k] = frame[i]
        out_dir[k] = d
        out_flow[k] = f
        k += 1
    return k


@njit(cache=True, nogil=True)
def scatter(src, starts, lengths, dest, out):
    """Copy ``src[starts[k]:starts[k]+lengths[k]]`` to ``out[dest[k]:]`` for every k.

    Reading in source order and writing anywhere is several times faster than
    the reverse when the source is a large file and the pieces are small.
    """
    for k in range(len(starts)):
        m = lengths[k]
        d = dest[k]
        copy_exact(src, starts[k], out, d, m)


@njit(cache=True, nogil=True)
def scatter_sided(src, side, starts, lengths, dest, out):
    """:func:`scatter` where a negative start is in ``side``, counted from its end."""
    ns = len(side)
    for k in range(len(starts)):
        m = lengths[k]
        d = dest[k]
        o = starts[k]
        if o < 0:
            copy_exact(side, ns + o, out, d, m)
        else:
            copy_exact(src, o, out, d, m)


@njit(cache=True, nogil=True, inline="always")
def _copy_waiting(src, side, ns, starts, lengths, prev, chain, newest, first, first_at, out,
                  o):
    """Copy a stream's waiting bytes to ``out`` at ``o``: from packet ``first`` (at
    ``first_at``) through ``newest``, following ``prev`` back and copying forward
    (``chain``: scratch). The arrays come as their :func:`_address` (a negative
    start counts back from ``side``'s end, ``ns``). Returns where the copy ended."""
    depth = 0
    j = newest
    while True:
        chain[depth] = j
        depth += 1
        if j == first:
            break
        j = prev[j]
    for d in range(depth - 1, -1, -1):
        j = chain[d]
        lo = first_at if j == first else 0
        a = starts[j]
        m = lengths[j] - lo
        if a < 0:
            copy_exact(side, ns + a + lo, out, o, m)
        else:
            copy_exact(src, a + lo, out, o, m)
        o += m
    return o


@njit(cache=True, nogil=True)
def stamp_rows(ends, c_end, c_pkt, c_offset, flow, direction, ts, frames, out_end, out_flow,
               out_dir, out_ts, out_frame):
    """Each decoded row of :func:`lines_in_time_order`'s output (``ends``: where each
    ends in it, ascending) with the contribution that holds its end (the first whose
    ``c_end`` reaches it): its stream offset there, and the flow, direction, time and
    frame of the packet that completed it.

    Why one walk: rows and contributions are both in output order, so a merge finds
    each row's contribution; a binary search per row and five gathers cost 5 ms on
    185,000 messages.
    """
    j = 0
    for i in range(len(ends)):
        e = ends[i]
        while c_end[j] < e:
            j += 1
        p = c_pkt[j]
        out_end[i] = c_offset[j] - (c_end[j] - e)
        out_flow[i] = flow[p]
        out_dir[i] = direction[p]
        out_ts[i] = ts[p]
        out_frame[i] = frames[p]


@njit(cache=True, nogil=True)
def lines_in_time_order(src, side, starts, lengths, stream, base, prev, chain, out, c_pkt,
                        c_end, c_offset, tail_out, t_stream, t_start, t_len, t_last):
    """Complete lines of many interleaved streams, in the order they complete.

    Packets come in capture order (``stream``: each one's stream; a negative
    start is in ``side``, counted from its end). A packet holding a newline
    completes every line up to its last one: the stream's bytes still waiting
    (from its earlier packets) and its own up to that newline go to ``out``
    as one contribution (``c_pkt``: the packet, ``c_end``: where it ends in
    ``out``, ``c_offset``: the stream offset there). ``base``: each stream's
    offset before this window, updated to where its waiting bytes start. The
    bytes still waiting at the end go to ``tail_out``, one range per stream
    (``t_stream``, ``t_start``, ``t_len``, ``t_last``: its last packet).
    ``prev``, ``chain``: scratch, one per packet (the caller's: the waiting-bytes walk
    reads ``chain`` by its address, and an array made here could be freed after its
    last use by name). Returns (bytes out, contributions, tails).
    """
    ns = len(side)
    n = len(starts)
    last = np.full(len(base), -1, np.int64)  # each stream's last packet so far
    wait_pkt = np.full(len(base), -1, np.int64)  # first packet with waiting bytes
    wait_at = np.zeros(len(base), np.int64)  # where they start in it
    run = np.zeros(len(base), np.int64)  # stream offset after the last packet
    touched = np.empty(n, np.int64)
    nt = 0
    o = 0
    c = 0
    p_src, p_side, p_out, p_tail = _address(src), _address(side), _address(out), \
        _address(tail_out)
    p_starts, p_lengths, p_prev, p_chain = _address(starts), _address(lengths), \
        _address(prev), _address(chain)
    for k in range(n):
        s = stream[k]
        if last[s] < 0:
            run[s] = base[s]
            touched[nt] = s
            nt += 1
        prev[k] = last[s]
        last[s] = k
        a = starts[k]
        m = lengths[k]
        nl = -1
        for q in range(m - 1, -1, -1):
            b = side[ns + a + q] if a < 0 else src[a + q]
            if b == 0x0A:
                nl = q
                break
        pkt_offset = run[s]
        run[s] += m
        if nl < 0:
            if wait_pkt[s] < 0:
                wait_pkt[s] = k
                wait_at[s] = 0
            continue
        if wait_pkt[s] >= 0:  # the waiting bytes first, oldest packet first
            o = _copy_waiting(p_src, p_side, ns, p_starts, p_lengths, p_prev, p_chain,
                              prev[k], wait_pkt[s], wait_at[s], p_out, o)
        if a < 0:
            copy_exact(side, ns + a, out, o, nl + 1)
        else:
            copy_exact(src, a, out, o, nl + 1)
        o += nl + 1
        c_pkt[c] = k
        c_end[c] = o
        c_offset[c] = pkt_offset + nl + 1
        c += 1
        if nl + 1 < m:
            wait_pkt[s] = k
            wait_at[s] = nl + 1
        else:
            wait_pkt[s] = -1
    t = 0
    w = 0
    for i in range(nt):
        s = touched[i]
        if wait_pkt[s] < 0:
            base[s] = run[s]
            continue
        t_start[t] = w
        w = _copy_waiting(p_src, p_side, ns, p_starts, p_lengths, p_prev, p_chain, last[s],
                          wait_pkt[s], wait_at[s], p_tail, w)
        t_stream[t] = s
        t_len[t] = w - t_start[t]
        t_last[t] = last[s]
        base[s] = run[s] - t_len[t]
        t += 1
    return o, c, t


@njit(cache=True, nogil=True)
def count_byte(data, byte):
    """How many times ``byte`` occurs in ``data``."""
    k = 0
    for q in range(len(data)):
        if data[q] == byte:
            k += 1
    return k


@njit(cache=True, nogil=True)
def sample_bytes(data, lo, hi):
    """Of ``data[lo:hi]``: does it hold a byte past ASCII, and does it hold a zero byte?"""
    high = False
    nul = False
    for i in range(lo, hi):
        b = data[i]
        if b >= 0x80:
            high = True
        elif b == 0:
            nul = True
    return high, nul


@njit(cache=True, nogil=True)
def _no_length_votes(nul, limit):
    """Can no hit get a length-prefix vote? A vote needs the four bytes before the hit to
    read as a length up to ``limit``: below 2**24 that takes a zero byte (the length's
    top byte, little- or big-endian), and ``nul`` says the sample has none."""
    return not nul and limit < (1 << 24)


@njit(cache=True, nogil=True)
def _is_space(c):
    return c == 0x20 or 0x09 <= c <= 0x0D


@njit(cache=True, nogil=True)
def _lp_vote(s, lo, hi, pos, big, limit):
    if pos - lo < 4:
        return False
    length = _u32(s, pos - 4, big)
    if not 0 < length <= limit:
        return False
    end = pos + length
    if end == hi:
        return True
    if end + 4 <= hi:
        following = _u32(s, end, big)
        return 0 < following <= limit
    return True


@njit(cache=True, nogil=True)
def detect_framing(s, lo, hi, names, name_len, prefix, limit, max_hits):
    """``detect.detect_framing`` of ``s[lo:hi]``: 0 none, 1 line, 2 lp32le, 3 lp32be."""
    order, b_lo, b_hi = name_buckets(names)
    line_suffices = _no_length_votes(sample_bytes(s, lo, hi)[1], limit)
    return _framing(s, lo, hi, names, name_len, order, b_lo, b_hi, prefix, limit, max_hits,
                    line_suffices)[0]


@njit(cache=True, nogil=True)
def name_buckets(names):
    """The command names grouped by first byte, each group in the names' own order:
    ``order[b_lo[c]:b_hi[c]]`` are the names starting with byte ``c``.

    Why: a hit is tried at every byte that can start one; trying only the names
    that start with that byte (one or two, not all of them) makes the framing
    vote several times cheaper, and keeping their order keeps the regex's
    leftmost-alternative choice."""
    n = names.shape[0]
    order = np.empty(n, np.int64)
    b_lo = np.zeros(256, np.int64)
    b_hi = np.zeros(256, np.int64)
    t = 0
    for c in range(256):
        b_lo[c] = t
        for k in range(n):
            if names[k, 0] == c:
                order[t] = k
                t += 1
        b_hi[c] = t
    return order, b_lo, b_hi


@njit(cache=True, nogil=True)
def _framing(s, lo, hi, names, name_len, order, b_lo, b_hi, prefix, limit, max_hits,
             line_suffices):
    """(framing code as ``detect_framing``, number of command-name hits).

    The hits are those of ``detect._HIT_RE`` (``SocketCommand\\s*\\.`` or a
    command name followed by ``|`` or ``\\r?\\n``), found left to right without
    overlap; each votes as ``detect._line_vote`` / ``_lp_vote`` do. ``order``,
    ``b_lo``, ``b_hi``: :func:`name_buckets` of ``names``. ``line_suffices``: no hit
    can vote for a length prefix (:func:`_no_length_votes`), so the first line vote
    settles it: (1, the hits so far) at once, where a text sample's first line is
    read instead of the whole sample.
    """
    v_line = 0
    v_le = 0
    v_be = 0
    hits = 0
    p = lo
    plen = len(prefix)
    lead = prefix[0] if plen else -1
    newline = lo - 1  # the first newline at or after the last line-start hit (hi: none)
    while p < hi and hits < max_hits:
        c0 = s[p]
        if b_lo[c0] == b_hi[c0] and c0 != lead:
            p += 1
            continue
        end = -1
        if c0 == lead and p + plen <= hi:
            ok = True
            for j in range(plen):
                if s[p + j] != prefix[j]:
                    ok = False
                    break
            if ok:
                q = p + plen
                while q < hi and _is_space(s[q]):
                    q += 1
                if q < hi and s[q] == 0x2E:
                    end = q + 1
        if end < 0:
            for t in range(b_lo[c0], b_hi[c0]):
                k = order[t]
                m = name_len[k]
                if p + m >= hi:
                    continue
                ok = True
                for j in range(m):
                    if s[p + j] != names[k, j]:
                        ok = False
                        break
                if not ok:
                    continue
                c = s[p + m]
                if c == 0x7C or c == 0x0A or (c == 0x0D and p + m + 1 < hi
                                               and s[p + m + 1] == 0x0A):
                    end = p + m
                    break
        if end < 0:
            p += 1
            continue
        hits += 1
        if _lp_vote(s, lo, hi, p, False, limit):
            v_le += 1
        if _lp_vote(s, lo, hi, p, True, limit):
            v_be += 1
        if p == lo or s[p - 1] == 0x0A:
            if newline < p:  # the first newline from p (hits only move on: one scan)
                newline = p
                while newline < hi and s[newline] != 0x0A:
                    newline += 1
            if newline <= p + limit or hi - p <= limit:  # a newline within the limit
                v_line += 1
                if line_suffices:
                    return 1, hits
        p = end
    best = 1
    votes = v_line
    if v_le > votes:
        best, votes = 2, v_le
    if v_be > votes:
        best, votes = 3, v_be
    return (best if votes else 0), hits


@njit(cache=True, nogil=True)
def detection_attempts(flow, pdir, plen, n, out_flow, out_c2s, out_s2c, totals):
    """Where the sink tries detection: each packet that takes a direction's sample past
    one of DETECT_AT, with both samples' lengths then (capped at LONG).

    Packets are given grouped by flow, each flow's in capture order; ``totals``
    gets each flow's final (c2s, s2c) stream lengths. Returns the attempt count.
    """
    k = 0
    i = 0
    while i < n:
        f = flow[i]
        c = np.int64(0)
        s = np.int64(0)
        while i < n and flow[i] == f:
            before = c if pdir[i] == 0 else s
            after = before + plen[i]
            if pdir[i] == 0:
                c = after
            else:
                s = after
            if before < LONG:
                crossed = False
                for t in DETECT_AT:
                    if before < t <= min(after, LONG):
                        crossed = True
                if crossed:
                    out_flow[k] = f
                    out_c2s[k] = min(c, LONG)
                    out_s2c[k] = min(s, LONG)
                    k += 1
            i += 1
        totals[f, 0] = c
        totals[f, 1] = s
    return k


@njit(cache=True, nogil=True)
def first_attempt_packets(slot, pdir, plen, n_flows, threshold, sel, more):
    """The packets that come no later than their flow's first detection attempt (the
    one taking either direction to ``threshold`` bytes, and those before it), in
    capture order: one walk of the window, no sort by flow.

    ``slot[i]``: position of packet ``i``'s flow among the ``n_flows`` flows being
    detected (-1: not one of them). Fills ``sel`` with the packets' indices and
    sets ``more[k]`` where flow ``k`` has packets after its first attempt (only
    those flows can need a second look). Returns how many packets ``sel`` holds.
    """
    c = np.zeros(n_flows, np.int64)
    s = np.zeros(n_flows, np.int64)
    k = 0
    for i in range(len(slot)):
        f = slot[i]
        if f < 0:
            continue
        if c[f] < threshold and s[f] < threshold:
            sel[k] = i
            k += 1
        else:
            more[f] = True
        if pdir[i] == 0:
            c[f] += plen[i]
        else:
            s[f] += plen[i]
    return k


@njit(cache=True, nogil=True)
def last_newlines(data, starts, stops, out):
    """Per range ``data[starts[g]:stops[g]]``: the offset (from its start) just past
    its last ``\\n``, or 0."""
    for g in range(len(starts)):
        out[g] = 0
        for q in range(stops[g] - 1, starts[g] - 1, -1):
            if data[q] == 0x0A:
                out[g] = q + 1 - starts[g]
                break


@njit(cache=True, nogil=True)
def copy_ranges(data, starts, lengths, out):
    """Concatenate ``data[starts[g]:starts[g]+lengths[g]]`` into ``out``."""
    at = 0
    for g in range(len(starts)):
        m = lengths[g]
        copy_exact(data, starts[g], out, at, m)
        at += m


@njit(cache=True, nogil=True)
def sample_lines(data, starts, stops, long_, limit, quoted, first_start, first_end,
                 c_start, c_end, c_group):
    """What detection reads of each range ``data[starts[g]:stops[g]]``, without decoding
    it all: the rows (as ``line_frames`` frames them) that end within its first
    ``long_`` bytes (a sample never holds more). Sets ``first_start``/``first_end`` to
    its first row (-1: none), and lists the rows that may be decoded as "invalid
    utf-8" (``c_*``, with the range of each): those holding a byte past ASCII or the
    bytes ``quoted`` (an error message quotes a line's text). Returns their count.
    """
    k = 0
    m = len(quoted)
    for g in range(len(starts)):
        lo = starts[g]
        hi = min(stops[g], lo + long_)
        first_start[g] = -1
        first_end[g] = -1
        start = lo
        odd = False
        for q in range(lo, hi):
            b = data[q]
            if b != 0x0A:
                if b >= 0x80:
                    odd = True
                elif b == quoted[0] and q + m <= hi:
                    same = True
                    for i in range(1, m):
                        if data[q + i] != quoted[i]:
                            same = False
                            break
                    if same:
                        odd = True
                continue
            body_end = q - 1 if q > start and data[q - 1] == 0x0D else q
            if body_end > start or q - start > limit:
                if first_start[g] < 0:
                    first_start[g] = start
                    first_end[g] = q + 1
                if odd:
                    c_start[k] = start
                    c_end[k] = q + 1
                    c_group[k] = g
                    k += 1
            start = q + 1
            odd = False
    return k


# verdicts of detect_flows (bulkflows.DECODE ...); V_NEED: the flow's verdict hangs on a
# stream's first clean row that was not decoded (its end given as UNKNOWN_END)
V_DECODE, V_IGNORE, V_FALLBACK, V_DECODE_UTF8, V_NONE, V_NEED = 0, 1, 2, 3, -1, -2
UNKNOWN_END = -1


@njit(cache=True, nogil=True)
def _attempt(data, g_start, good_end, bad_end, j0, j1, c, s, final, names, name_len, order,
             b_lo, b_hi, prefix, limit, max_hits):
    found = False
    unsure = False  # a sample whose first clean row was not decoded could settle it
    ascii_only = True
    for d in range(2):
        size = c if d == 0 else s
        j = j0 if d == 0 else j1
        if size == 0:
            continue
        lo = g_start[j]
        high, nul = sample_bytes(data, lo, lo + size)
        if high:
            ascii_only = False
            if bad_end[j] <= size:
                return V_FALLBACK
        text = _no_length_votes(nul, limit)
        if found and text:
            continue  # its framing is none or line: it changes nothing now
        framing = _framing(data, lo, lo + size, names, name_len, order, b_lo, b_hi, prefix,
                           limit, max_hits, text)[0]
        if framing == 2 or framing == 3:
            return V_FALLBACK
        if framing == 1 and not found:
            if final:
                found = True
            elif good_end[j] == UNKNOWN_END:
                unsure = True
            elif good_end[j] <= size:
                found = True
    if not found:
        return V_NEED if unsure else V_NONE
    return V_DECODE if ascii_only else V_DECODE_UTF8


@njit(cache=True, nogil=True)
def _named(data, g_start, j0, j1, c, s, names, name_len, order, b_lo, b_hi, prefix, limit):
    """Does either sample hold a command name (``detect.names_a_command``)?"""
    for d in range(2):
        size = c if d == 0 else s
        j = j0 if d == 0 else j1
        if size and _framing(data, g_start[j], g_start[j] + size, names, name_len, order, b_lo,
                             b_hi, prefix, limit, 1, False)[1]:
            return True
    return False


@njit(cache=True, nogil=True)
def detect_flows(flows, whole, group_of, a_pos, a_c2s, a_s2c, n_attempts, totals, data,
                 g_start, good_end, bad_end, names, name_len, prefix, limit, max_hits, out):
    """``MessageSink``'s detection for every flow at once (see ``bulkflows``).

    ``group_of[k]``: the group of flow ``flows[k]``'s (c2s, s2c) stream (-1: none);
    ``a_pos``: position in ``flows`` of each attempt's flow, attempts grouped by
    flow in order. A flow detection gives up on while its samples name commands
    is left to the sink (V_FALLBACK), which reports it. ``whole[k]``: the flow has
    closed (or the capture ends), so the sink's last attempt, at the close, is made;
    a flow still open that no attempt decided stays V_NONE (undecided). A flow whose
    verdict hangs on a ``good_end`` given as UNKNOWN_END is V_NEED (the caller decodes
    that row and asks again).
    """
    order, b_lo, b_hi = name_buckets(names)
    a = 0
    for k in range(len(flows)):
        f = flows[k]
        j0 = group_of[k, 0]
        j1 = group_of[k, 1]
        verdict = V_NONE
        while a < n_attempts and a_pos[a] < k:
            a += 1
        while a < n_attempts and a_pos[a] == k:
            if verdict == V_NONE:
                c, s = a_c2s[a], a_s2c[a]
                verdict = _attempt(data, g_start, good_end, bad_end, j0, j1, c, s, False,
                                   names, name_len, order, b_lo, b_hi, prefix, limit, max_hits)
                longest = max(c, s)
                if verdict == V_NONE and longest >= SAMPLE:
                    named = _named(data, g_start, j0, j1, c, s, names, name_len, order, b_lo,
                                   b_hi, prefix, limit)
                    if named and longest >= LONG:
                        verdict = V_FALLBACK
                    elif not named:
                        verdict = V_IGNORE
            a += 1
        if verdict == V_NONE and whole[k]:
            c, s = min(totals[f, 0], LONG), min(totals[f, 1], LONG)
            verdict = _attempt(data, g_start, good_end, bad_end, j0, j1, c, s, True,
                               names, name_len, order, b_lo, b_hi, prefix, limit, max_hits)
            if verdict == V_NONE:
                named = _named(data, g_start, j0, j1, c, s, names, name_len, order, b_lo, b_hi,
                               prefix, limit)
                verdict = V_FALLBACK if named else V_IGNORE
        out[k] = verdict


_warm = False


def warm_up() -> None:
    """Load every kernel (from numba's disk cache, or compile it once) on tiny inputs.

    Called before any capture is read, empty or not, so that loading the
    compiled code is a start-up cost like an import, paid once per process.
    """
    global _warm
    if _warm:
        return
    i64 = np.zeros(1, np.int64)
    u8 = np.zeros(64, np.uint8)
    ro = np.zeros(64, np.uint8)  # a capture's map is read-only: its own signature
    ro.flags.writeable = False
    u64 = np.zeros(1, np.uint64)
    for b in (ro, u8):
        index_pcap(b, 0, 0, False, 1000, 1, 1, i64, i64, i64, i64, np.zeros(1, np.int8), i64,
                   i64, i64, i64, i64, i64, i64, i64, i64, i64, i64)
        parse_packets(b, i64, i64, i64, 0, np.zeros(1, np.int8), i64, i64, i64, i64, i64, i64,
                      i64, i64, i64, i64)
    table = np.full(4, -1, np.int64)
    keys = np.zeros((2, 7), np.uint64)
    lookup_halves(table, keys, u64, u64, u64, i64, u64, u64, i64, i64[:0], 0, i64, 0)
    rehash(table, keys, 0)
    ipv4_halves(np.zeros(0, np.int8), i64, i64, i64, i64, 0, 0, i64, table, keys, 0)
    i8 = np.zeros(1, np.int8)
    track_flows(i64, i64, i64, i64, i64, i64, i64, 0, i8, i64, i8, i64, i8, i64, i8, i64, i64,
                i64, i8, i8, True)
    delivered_packets(i8, i64, i64, i64, i64, i64, np.zeros(1, np.bool_),
                      np.zeros((1, 2), np.int64), 0, i64, i64, i64, i64, i64, i64)
    sample_bytes(u8, 0, 0)
    count_byte(u8, 10)
    names = np.zeros((1, 2), np.uint8)
    detect_framing(u8, 0, 0, names, np.ones(1, np.int64), u8[:2], 16, 32)
    detection_attempts(i64, i64, i64, 0, i64, i64, i64, np.zeros((1, 2), np.int64))
    first_attempt_packets(i64[:0], i64[:0], i64[:0], 0, 128, i64, np.zeros(0, np.bool_))
    last_newlines(u8, i64[:0], i64[:0], i64[:0])
    copy_ranges(u8, i64[:0], i64[:0], u8)
    line_frames(u8, 16, i64, i64)
    scatter(ro, i64[:0], i64[:0], i64[:0], u8)
    scatter(u8, i64[:0], i64[:0], i64[:0], u8)
    scatter_sided(ro, u8, i64[:0], i64[:0], i64[:0], u8)
    ends = np.zeros(0, np.int64)  # a decoded table's column: read-only
    ends.flags.writeable = False
    stamp_rows(ends, i64, i64, i64, i64, i64, i64, i64, i64[:0], i64[:0], i8[:0], i64[:0],
               i64[:0])
    for b in (ro, u8):
        lines_in_time_order(b, u8, i64[:0], i64[:0], i64[:0], i64, i64[:0], i64[:0], u8, i64,
                            i64, i64, u8, i64, i64, i64, i64)
    detect_flows(i64[:0], i8[:0], np.zeros((0, 2), np.int64), i64, i64, i64, 0,
                 np.zeros((1, 2), np.int64), u8, i64, i64, i64, names, np.ones(1, np.int64),
                 u8[:2], 16, 32, i64)
    sample_lines(u8, i64[:0], i64[:0], 16, 16, u8[:2], i64[:0], i64[:0], i64, i64, i64)
    from camprotool.protocol.packing import pack_ranges

    for b in (u8, ro):  # Arrow buffers come read-only
        pack_ranges(b, i64[:0], i64[:0])
        pack_ranges(b, i64[:0], i64[:0], i64[:0], np.zeros(0, np.bool_))
    from camprotool.protocol import bulk_kernels

    bulk_kernels.warm_up()  # the bulk decoder's kernels
    _warm = True


@njit(cache=True, nogil=True)
def line_frames(data, limit, starts, ends):
    """The frames ``bulk._walk_lines`` finds in ``data`` (which ends with ``\\n``):
    lines that carry bytes (not just ``\\r``) or are longer than ``limit``.
    Fills ``starts``/``ends`` (just past the ``\\n``); returns how many."""
    k = 0
    start = 0
    for q in range(len(data)):
        if data[q] != 0x0A:
            continue
        body_end = q - 1 if q > start and data[q - 1] == 0x0D else q
        if body_end > start or q - start > limit:
            starts[k] = start
            ends[k] = q + 1
            k += 1
        start = q + 1
    return k
