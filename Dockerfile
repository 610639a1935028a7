# singleflightd in a container (Debian 12 bookworm).
#
#   docker build -t singleflight .
#   docker run --rm -p 50051:50051 -p 9090:9090 singleflight \
#       --listen=0.0.0.0:50051 --metrics_listen=0.0.0.0:9090 \
#       --fetcher='web=http://origin.example:8080/items/{key}' --default_fetcher=web
#
# Stage 1 builds with the repository's own CMake/Ninja build and Debian's
# packages (scripts/install-deps.sh); stage 2 carries only the two binaries
# and the shared libraries they link (found by dpkg-shlibdeps, so the list
# follows the build), and runs as an unprivileged user. docker-compose.yml
# runs three of these behind HAProxy (docs/PROXY.md).

FROM debian:bookworm AS build
COPY scripts/install-deps.sh /src/scripts/install-deps.sh
RUN bash /src/scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN cmake -S /src -B /build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
 && cmake --build /build --target singleflightd sfctl \
 && strip /build/bin/singleflightd /build/bin/sfctl
# The runtime packages of the binaries: "libgrpc++1.51 (>= 1.51.1), ..."
# turned into one package name a line. (dpkg-shlibdeps wants a
# debian/control; an empty one will do.)
RUN mkdir -p /shlibs/debian && touch /shlibs/debian/control && cd /shlibs \
 && dpkg-shlibdeps -O /build/bin/singleflightd /build/bin/sfctl 2>/dev/null \
    | sed -e 's/^shlibs:Depends=//' -e 's/ ([^)]*)//g' -e 's/ | [^,]*//g' \
    | tr ',' '\n' | tr -d ' ' > /build/runtime-packages \
 && cat /build/runtime-packages

FROM debian:bookworm-slim
COPY --from=build /build/runtime-packages /tmp/runtime-packages
# ca-certificates: for https:// origins and grpcs:// upstreams.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates $(cat /tmp/runtime-packages) \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages \
 && groupadd --system --gid 10001 singleflight \
 && useradd --system --uid 10001 --gid singleflight --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin singleflight
COPY --from=build /build/bin/singleflightd /build/bin/sfctl /usr/local/bin/
COPY config/examples/ /etc/singleflight/examples/

USER singleflight:singleflight
# 50051: gRPC (singleflight.v1.SingleFlight, health, reflection);
# 9090: Prometheus metrics at /metrics.
EXPOSE 50051 9090
# grpc.health.v1.Health/Check: healthy while SERVING; a draining server
# (SIGTERM) answers NOT_SERVING. Set SF_HEALTH_TARGET if the server listens
# elsewhere; with TLS, override the check to add sfctl's --tls flags.
ENV SF_HEALTH_TARGET=127.0.0.1:50051
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD sfctl --target="$SF_HEALTH_TARGET" --timeout=2s health || exit 1
# SIGTERM drains (--drain_timeout, 10 s by default): give `docker stop` more.
STOPSIGNAL SIGTERM
ENTRYPOINT ["singleflightd"]
CMD ["--listen=0.0.0.0:50051", "--metrics_listen=0.0.0.0:9090"]
