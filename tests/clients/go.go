// go-redis v5 (Debian's golang-gopkg-redis.v5-dev) in Sentinel mode, driven by
// tests/client_matrix.rs over stdin/stdout; the protocol is python.py's (set / get, one JSON
// line each). Built in GOPATH mode against /usr/share/gocode, as Debian lays the library out.
//
// Usage: go <sentinels host:port,...> <master-name> <sentinel-password> <redis-password>
//
// v5's FailoverOptions has no sentinel password (Password is the master's; the sentinel
// clients are made without one) and no replica client, so this script has no replica_get.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"gopkg.in/redis.v5"
)

// The version of the Debian package this is built against (v5 has no version constant).
var version = "unknown"

func reply(fields map[string]interface{}) {
	line, _ := json.Marshal(fields)
	fmt.Println(string(line))
}

func main() {
	client := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    os.Args[2],
		SentinelAddrs: strings.Split(os.Args[1], ","),
		Password:      os.Args[4],
		DialTimeout:   time.Second,
		ReadTimeout:   time.Second,
		WriteTimeout:  time.Second,
	})
	reply(map[string]interface{}{"version": version})
	input := bufio.NewScanner(os.Stdin)
	for input.Scan() {
		words := strings.Fields(input.Text())
		if len(words) == 0 {
			continue
		}
		switch words[0] {
		case "set":
			if err := client.Set(words[1], words[2], 0).Err(); err != nil {
				reply(map[string]interface{}{"error": err.Error()})
			} else {
				reply(map[string]interface{}{"ok": true})
			}
		case "get":
			value, err := client.Get(words[1]).Result()
			switch {
			case err == redis.Nil:
				reply(map[string]interface{}{"value": nil})
			case err != nil:
				reply(map[string]interface{}{"error": err.Error()})
			default:
				reply(map[string]interface{}{"value": value})
			}
		default:
			reply(map[string]interface{}{"error": "unsupported command " + words[0]})
		}
	}
}
