"""The far end of a veth pair for the live hook's tests (run inside the test's network namespace).

    python live_peer.py SEND_IF LISTEN_IF COUNT TIMEOUT FRAME_HEX...

Opens a raw packet socket on LISTEN_IF, sends every frame out of SEND_IF, then collects the frames
LISTEN_IF receives (not the ones it sends) until COUNT arrived or TIMEOUT seconds passed, and prints
them as a JSON list of hex strings. Standard library only.
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def main() -> int:
    send_if, ifname, count, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    frames = [bytes.fromhex(h) for h in sys.argv[5:]]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((ifname, ETH_P_ALL))
    out = s
    if send_if != ifname:
        out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        out.bind((send_if, ETH_P_ALL))
    for f in frames:
        out.send(f)
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([s], [], [], left)
        if not ready:
            continue
        data, addr = s.recvfrom(65536)
        if addr[2] == PACKET_OUTGOING or addr[0] != ifname:
            continue
        got.append(data.hex())
    print(json.dumps(got))
    return 0


if __name__ == "__main__":
    sys.exit(main())
