<?php
// phpredis (Debian's php-redis) with Sentinel, driven by tests/client_matrix.rs over
// stdin/stdout; the protocol is python.py's (set / get / replica_get, one JSON line each).
//
// Usage: php.php <sentinels host:port,...> <master-name> <sentinel-password> <redis-password>
//
// phpredis has no Sentinel-aware connection: RedisSentinel only asks one sentinel questions
// (getMasterAddrByName, slaves), and a Redis object stays connected to the address it was
// given. So this script does what phpredis's documentation leaves to the application: ask
// each sentinel in turn, connect, and on an error drop the connection and ask again at the
// next command. Its constructor in 5.3 takes no password (auth came in phpredis 6.0).

[$sentinels_arg, $name, $sentinel_password, $password] = array_slice($argv, 1, 4);
$sentinels = array_map(fn($s) => explode(':', $s), explode(',', $sentinels_arg));

function reply(array $fields): void {
    echo json_encode($fields), "\n";
    fflush(STDOUT);
}

/** The first answer of the sentinels, asked in the order given: the master or a replica. */
function resolve(array $sentinels, string $name, bool $replica): array {
    foreach ($sentinels as [$host, $port]) {
        try {
            $sentinel = new RedisSentinel($host, (int)$port, 1.0, null, 0, 1.0);
            if ($replica) {
                $up = array_filter($sentinel->slaves($name) ?: [],
                    fn($r) => !str_contains($r['flags'], 's_down') && !str_contains($r['flags'], 'disconnected'));
                if ($up) {
                    $r = $up[array_rand($up)];
                    return [$r['ip'], (int)$r['port']];
                }
            } elseif ($addr = $sentinel->getMasterAddrByName($name)) {
                return [$addr[0], (int)$addr[1]];
            }
        } catch (RedisException $e) {
            // The next sentinel, as a Sentinel client does.
        }
    }
    throw new RedisException('no sentinel named ' . ($replica ? 'an up replica' : 'a master') . ' of ' . $name);
}

function connect(array $sentinels, string $name, bool $replica, string $password): Redis {
    [$host, $port] = resolve($sentinels, $name, $replica);
    $redis = new Redis();
    $redis->connect($host, $port, 1.0, null, 0, 1.0);
    if ($password !== '') {
        $redis->auth($password);
    }
    return $redis;
}

$connections = ['master' => null, 'replica' => null];
reply(['version' => phpversion('redis')]);
while (($line = fgets(STDIN)) !== false) {
    $words = preg_split('/\s+/', trim($line));
    if ($words[0] === '') {
        continue;
    }
    $role = $words[0] === 'replica_get' ? 'replica' : 'master';
    try {
        $redis = $connections[$role] ??= connect($sentinels, $name, $role === 'replica', $password);
        switch ($words[0]) {
            case 'set':
                // phpredis returns false for an error reply (READONLY, NOAUTH) rather than throwing.
                if ($redis->set($words[1], $words[2]) !== true) {
                    throw new RedisException($redis->getLastError() ?? 'SET failed');
                }
                reply(['ok' => true]);
                break;
            case 'get':
            case 'replica_get':
                $value = $redis->get($words[1]);
                reply(['value' => $value === false ? null : $value]);
                break;
        }
    } catch (RedisException $e) {
        $connections[$role] = null;
        reply(['error' => get_class($e) . ': ' . substr($e->getMessage(), 0, 200)]);
    }
}
