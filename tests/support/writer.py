"""A client that writes one new key every interval through Sentinel discovery, and records every
write its server acknowledged: key, when it was sent, when the acknowledgement arrived (Unix
milliseconds), and which server acknowledged it.

Usage: writer.py <name> <sentinels host:port,...> <master-name> <interval-ms> <out-file> <stop-file>

Discovery is a Sentinel client's: ask each sentinel in order (the local one first) for the
master's address, the first answer wins; then write to that address until an error, and ask
again. A write whose reply did not arrive (a timeout, a dropped connection) is not recorded: it
was not acknowledged, whatever happened to it. Runs until the stop file exists, then writes its
records and exits, printing how many writes failed and why on stderr.
"""

import collections
import os
import sys
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# No retries inside redis-py (its default retries a timed-out command): a failed write is
# recorded as such, and the next one starts with a fresh discovery, as the test expects.
NO_RETRY = Retry(NoBackoff(), 0)


def now_ms():
    return int(time.time() * 1000)


def discover(sentinels, master):
    for host, port in sentinels:
        try:
            s = redis.Redis(
                host=host, port=port, socket_timeout=0.3, socket_connect_timeout=0.3, retry=NO_RETRY
            )
            addr = s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", master)
            s.close()
            if addr:
                return addr[0].decode(), int(addr[1])
        except redis.RedisError:
            pass
    return None


def main():
    name, sentinels, master, interval, out, stop = sys.argv[1:7]
    sentinels = [(h, int(p)) for h, p in (s.rsplit(":", 1) for s in sentinels.split(","))]
    interval = int(interval) / 1000.0
    acks = []
    errors = collections.Counter()
    conn, addr, seq = None, None, 0
    while not os.path.exists(stop):
        started = time.time()
        if conn is None:
            found = discover(sentinels, master)
            if found is not None:
                addr = "%s:%d" % found
                conn = redis.Redis(
                    host=found[0],
                    port=found[1],
                    socket_timeout=1,
                    socket_connect_timeout=0.5,
                    retry=NO_RETRY,
                )
        if conn is not None:
            seq += 1
            key = "%s:%d" % (name, seq)
            sent = now_ms()
            try:
                conn.set(key, sent)
                acks.append("%s %d %d %s" % (key, sent, now_ms(), addr))
            except redis.RedisError as e:
                errors[type(e).__name__ + ": " + str(e).split(".")[0][:60]] += 1
                conn.close()
                conn = None
        time.sleep(max(0.0, interval - (time.time() - started)))
    with open(out, "w") as f:
        f.write("\n".join(acks) + "\n")
    for error, count in sorted(errors.items()):
        print("%s: %d x %s" % (name, count, error), file=sys.stderr)


main()
