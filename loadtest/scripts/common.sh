# Shared by the measuring scripts (sourced): a free loopback port, and the one-shard proxy
# config they all measure (shardgate pinned to CPU 0 in front of one origin).

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# proxy_toml FILE GATEWAY_PORT ORIGIN_PORT [more [server] lines]
proxy_toml() {
  cat >"$1" <<EOF
[server]
listen = ["127.0.0.1:$2"]
shards = 1
pin = [0]
${4:-}

[[upstream]]
name = "origin"
targets = ["127.0.0.1:$3"]
keepalive = 1024

[[route]]
path = "/{*rest}"
upstream = "origin"
EOF
}
