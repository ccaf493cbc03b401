"""A Python Sentinel client under test, driven by tests/client_matrix.rs over stdin/stdout.

Usage: python.py <variant> <sentinels host:port,...> <master-name> <sentinel-password> <redis-password>
(an empty password means none). Variants: redis-py-resp2, redis-py-resp3, redis-py-asyncio,
valkey-py, coredis.

Builds one client for the master and one for replicas through the library's own Sentinel
support, prints {"version": ...}, then answers one JSON line per command read from stdin:
  set KEY VALUE      through the master client      {"ok": true} or {"error": "..."}
  get KEY            through the master client      {"value": "..." or null} or {"error": "..."}
  replica_get KEY    through the replica client     the same
Every command uses the same client objects for the whole run, as an application would; the
library's defaults (retries, reconnection) are left as they are, since they are what is tested.
"""

import asyncio
import json
import sys


def reply(**fields):
    print(json.dumps(fields), flush=True)


def error(e):
    return "%s: %s" % (type(e).__name__, str(e)[:200])


def text(value):
    return value.decode() if isinstance(value, bytes) else value


def commands():
    for line in sys.stdin:
        words = line.split()
        if words:
            yield words


def run_sync(module, protocol, sentinels, name, sentinel_password, password):
    from importlib import import_module

    sentinel_module = import_module(module + ".sentinel")
    timeouts = dict(socket_timeout=1.0, socket_connect_timeout=1.0)
    sentinel = sentinel_module.Sentinel(
        sentinels,
        sentinel_kwargs=dict(password=sentinel_password, protocol=protocol, **timeouts),
        password=password,
        protocol=protocol,
        **timeouts,
    )
    master = sentinel.master_for(name)
    replica = sentinel.slave_for(name)
    reply(version=import_module(module).__version__)
    for words in commands():
        try:
            if words[0] == "set":
                reply(ok=bool(master.set(words[1], words[2])))
            elif words[0] == "get":
                reply(value=text(master.get(words[1])))
            elif words[0] == "replica_get":
                reply(value=text(replica.get(words[1])))
        except Exception as e:  # the error is the result: the test reads it
            reply(error=error(e))


async def next_command():
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return line.split() if line else None


async def serve(master, replica):
    while (words := await next_command()) is not None:
        try:
            if words[0] == "set":
                reply(ok=bool(await master.set(words[1], words[2])))
            elif words[0] == "get":
                reply(value=text(await master.get(words[1])))
            elif words[0] == "replica_get":
                reply(value=text(await replica.get(words[1])))
        except Exception as e:  # the error is the result: the test reads it
            reply(error=error(e))


async def run_redis_py_asyncio(sentinels, name, sentinel_password, password):
    import redis
    from redis.asyncio.sentinel import Sentinel

    timeouts = dict(socket_timeout=1.0, socket_connect_timeout=1.0)
    sentinel = Sentinel(
        sentinels,
        sentinel_kwargs=dict(password=sentinel_password, **timeouts),
        password=password,
        **timeouts,
    )
    master = sentinel.master_for(name)
    replica = sentinel.slave_for(name)
    reply(version=redis.__version__)
    await serve(master, replica)


async def run_coredis(sentinels, name, sentinel_password, password):
    import coredis
    from coredis.connection import TCPLocation
    from coredis import Sentinel

    locations = [TCPLocation(host, port) for host, port in sentinels]
    # coredis clients are structured-concurrency contexts: entering the Sentinel connects it.
    async with Sentinel(
        locations,
        sentinel_kwargs=dict(password=sentinel_password, stream_timeout=1.0, connect_timeout=1.0),
        password=password,
        stream_timeout=1.0,
        connect_timeout=1.0,
    ) as sentinel:
        master = sentinel.primary_for(name)
        replica = sentinel.replica_for(name)
        async with master, replica:
            reply(version=coredis.__version__)
            await serve(master, replica)


def main():
    variant, sentinels, name, sentinel_password, password = sys.argv[1:6]
    sentinels = [(h, int(p)) for h, p in (s.rsplit(":", 1) for s in sentinels.split(","))]
    args = (sentinels, name, sentinel_password or None, password or None)
    try:
        if variant == "redis-py-resp2":
            run_sync("redis", 2, *args)
        elif variant == "redis-py-resp3":
            run_sync("redis", 3, *args)
        elif variant == "valkey-py":
            run_sync("valkey", 2, *args)
        elif variant == "redis-py-asyncio":
            asyncio.run(run_redis_py_asyncio(*args))
        elif variant == "coredis":
            asyncio.run(run_coredis(*args))
        else:
            sys.exit("unknown variant " + variant)
    except Exception as e:  # a client that cannot even start says why
        reply(error=error(e))


main()
