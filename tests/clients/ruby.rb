# redis-rb (Debian's ruby-redis) in Sentinel mode, driven by tests/client_matrix.rs over
# stdin/stdout; the protocol is python.py's (set / get / replica_get, one JSON line each).
#
# Usage: ruby.rb <sentinels host:port,...> <master-name> <sentinel-password> <redis-password>
require "json"
require "redis"

def reply(fields)
  $stdout.puts(JSON.generate(fields))
  $stdout.flush
end

sentinels_arg, name, sentinel_password, password = ARGV
sentinels = sentinels_arg.split(",").map do |s|
  host, port = s.split(":")
  sentinel = { host: host, port: port.to_i }
  sentinel[:password] = sentinel_password unless sentinel_password.empty?
  sentinel
end
options = { host: name, sentinels: sentinels, connect_timeout: 1, timeout: 1 }
options[:password] = password unless password.empty?
master = Redis.new(**options, role: :master)
replica = Redis.new(**options, role: :slave)
reply(version: Redis::VERSION)

$stdin.each_line do |line|
  words = line.split
  next if words.empty?
  begin
    case words[0]
    when "set" then reply(ok: master.set(words[1], words[2]) == "OK")
    when "get" then reply(value: master.get(words[1]))
    when "replica_get" then reply(value: replica.get(words[1]))
    end
  rescue StandardError => e
    reply(error: "#{e.class}: #{e.message[0, 200]}")
  end
end
