#!/usr/bin/env python3
"""Readiness probe for the local Kafka: asks a broker over the Kafka protocol, never sleeps blind.

Sends ApiVersions (v0, answered by every broker version) and then Metadata v4 and reports how
many brokers the cluster metadata lists. Exit 0 when the broker answered and lists at least
--expect-brokers brokers, 1 otherwise. Standard library only, so it runs on a fresh machine.
"""
import argparse
import socket
import struct
import sys

API_METADATA = 3
API_VERSIONS = 18


def request(sock, api_key, api_version, correlation_id, body):
    client_id = b"eddy-probe"
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id)) + client_id
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    response = recv_exact(sock, size)
    got = struct.unpack(">i", response[:4])[0]
    if got != correlation_id:
        raise ValueError(f"correlation id {got}, expected {correlation_id}")
    return response[4:]


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        data += chunk
    return data


def api_versions(sock):
    body = request(sock, API_VERSIONS, 0, 1, b"")
    error = struct.unpack(">h", body[:2])[0]
    if error != 0:
        raise ValueError(f"ApiVersions error code {error}")
    count = struct.unpack(">i", body[2:6])[0]
    ranges = {}
    for i in range(count):
        key, lo, hi = struct.unpack(">hhh", body[6 + 6 * i: 12 + 6 * i])
        ranges[key] = (lo, hi)
    return ranges


def broker_count(sock):
    # Metadata v4 request: empty topic array, allow_auto_topic_creation = false.
    body = request(sock, API_METADATA, 4, 2, struct.pack(">ib", 0, 0))
    pos = 4  # throttle_time_ms
    count = struct.unpack(">i", body[pos:pos + 4])[0]
    return count


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--expect-brokers", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args()
    try:
        with socket.create_connection((args.host, args.port), timeout=args.timeout) as sock:
            ranges = api_versions(sock)
            lo, hi = ranges.get(API_METADATA, (None, None))
            if lo is None or not lo <= 4 <= hi:
                print(f"broker does not serve Metadata v4 (range {lo}..{hi})", file=sys.stderr)
                return 1
            brokers = broker_count(sock)
    except (OSError, ValueError, ConnectionError, struct.error) as err:
        print(f"{args.host}:{args.port} not ready: {err}", file=sys.stderr)
        return 1
    if brokers < args.expect_brokers:
        print(f"{args.host}:{args.port} lists {brokers} of {args.expect_brokers} brokers", file=sys.stderr)
        return 1
    print(f"{args.host}:{args.port} ready, {brokers} broker(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
