# The key-affinity front of docker-compose.yml: Debian 12's HAProxy 2.6, the
# version measured in docs/PROXY.md, with deploy/haproxy.cfg (which takes the
# replica addresses from SF_REPLICA1..3, by default replica1:50051 ...).
# Build context: the repository root.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends haproxy \
 && rm -rf /var/lib/apt/lists/*
COPY deploy/haproxy.cfg /etc/haproxy/haproxy.cfg
# The package's unprivileged user; both ports are above 1024.
USER haproxy
EXPOSE 50051 8404
# -db: stay in the foreground, state changes (replica UP/DOWN) on stderr.
ENTRYPOINT ["haproxy", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
