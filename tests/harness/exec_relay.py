"""Carries TCP connections made to a container's loopback port to the controller's loopback, over `docker exec`.

The lab's agent (in the container) sends to Datadog's intake at 127.0.0.1:PORT inside the container;
the fake Datadog API listens on the controller's 127.0.0.1:PORT. No network joins the two (test
traffic stays on loopback): this relay runs `docker exec -i CONTAINER python3 -c <this file> inside PORT`,
whose copy listens on the container's 127.0.0.1:PORT and multiplexes every connection over the exec's
stdin/stdout; this side opens the matching connection to the controller's 127.0.0.1:PORT.
When the exec ends (a container restart), it starts again after a second.

    python3 tests/harness/exec_relay.py --container lab-default --port 18080
Frames: kind (1 open, 2 data, 3 end of one direction), connection id, length, data.
"""
import argparse
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

HEADER = struct.Struct("!BII")
OPEN, DATA, END = 1, 2, 3


class Mux:
    """Connections multiplexed over one pair of byte streams."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.lock = threading.Lock()
        self.conns = {}

    def send(self, kind, cid, data=b""):
        with self.lock:
            self.writer.write(HEADER.pack(kind, cid, len(data)) + data)
            self.writer.flush()

    def attach(self, cid, sock):
        self.conns[cid] = {"sock": sock, "ends": 0}
        threading.Thread(target=self._pump, args=(cid, sock), daemon=True).start()

    def _pump(self, cid, sock):
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                self.send(DATA, cid, data)
        except OSError:
            pass
        try:
            self.send(END, cid)
        except (OSError, ValueError):
            return
        self._ended(cid)

    def _ended(self, cid):
        with self.lock:
            conn = self.conns.get(cid)
            if conn is None:
                return
            conn["ends"] += 1
            if conn["ends"] >= 2:
                self.conns.pop(cid)
                conn["sock"].close()

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.reader.read(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def serve(self, on_open):
        """Read frames until the stream ends; on_open(cid) returns the socket of a new connection."""
        try:
            while True:
                kind, cid, length = HEADER.unpack(self._read(HEADER.size))
                data = self._read(length) if length else b""
                if kind == OPEN:
                    try:
                        self.attach(cid, on_open(cid))
                    except OSError:
                        self.send(END, cid)
                    continue
                conn = self.conns.get(cid)
                if conn is None:
                    continue
                try:
                    if kind == DATA:
                        conn["sock"].sendall(data)
                    else:
                        conn["sock"].shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                if kind == END:
                    self._ended(cid)
        except EOFError:
            return


def _connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(None)
    return sock


def inside(port):
    """In the container: accept on 127.0.0.1:PORT, each connection announced to the other side."""
    mux = Mux(sys.stdin.buffer, sys.stdout.buffer)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(64)

    def accept():
        cid = 0
        while True:
            sock, _ = server.accept()
            cid += 1
            mux.send(OPEN, cid)  # before any of its data
            mux.attach(cid, sock)

    threading.Thread(target=accept, daemon=True).start()
    mux.serve(lambda cid: None)


def outside(container, port, target_port):
    """On the controller: keep the exec running; open a loopback connection for each one announced."""
    source = open(os.path.abspath(__file__), encoding="utf-8").read()
    child = {"process": None}

    def stop(*_):
        if child["process"] is not None:
            child["process"].terminate()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        process = subprocess.Popen(["docker", "exec", "-i", container, "python3", "-u", "-c", source, "inside",
                                    str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        child["process"] = process
        mux = Mux(process.stdout, process.stdin)
        mux.serve(lambda cid: _connect(target_port))
        process.wait()
        time.sleep(1)


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["inside"]:
        inside(int(argv[1]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--container", required=True)
    parser.add_argument("--port", type=int, required=True, help="the port inside the container")
    parser.add_argument("--target-port", type=int, help="the controller's loopback port (default: --port)")
    args = parser.parse_args(argv)
    outside(args.container, args.port, args.target_port or args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
