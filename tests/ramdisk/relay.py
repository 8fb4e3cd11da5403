"""One guest TCP connection, relayed to a loopback port: qemu's user-mode network runs this
(`guestfwd=...-cmd:`) per connection with the connection on stdin/stdout (and stderr, so
nothing is written there). The guest thus reaches only the test's own servers."""

import os
import socket
import sys
import threading


def main() -> None:
    peer = socket.create_connection((sys.argv[1], int(sys.argv[2])))

    def upstream() -> None:
        while data := os.read(0, 65536):
            peer.sendall(data)
        peer.shutdown(socket.SHUT_WR)

    threading.Thread(target=upstream, daemon=True).start()
    while data := peer.recv(65536):
        os.write(1, data)


if __name__ == "__main__":
    main()
