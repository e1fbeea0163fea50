# Redis 7 with the baton module (libbaton.so) loaded, and the `baton`
# command line on PATH.
#
#   docker build -t baton-redis .
#   docker run --rm -p 127.0.0.1:6379:6379 baton-redis
#   docker exec -it <container> baton top
#
# Stage 1 builds the module (redis-module's bindgen needs libclang) and the
# `baton` binary; stage 2 is the official redis:7 image (Debian bookworm,
# like the build stage) with both copied in and the module loaded at start.
# Its entrypoint is still redis's own: the container runs redis-server.

FROM rust:1-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libclang-dev clang \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release -p baton-module -p baton-cli \
    && cp target/release/libbaton.so /libbaton.so \
    && cp target/release/baton /baton

FROM redis:7
# CA certificates, for `baton --url rediss://...` to a server with a public
# certificate.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /libbaton.so /usr/local/lib/redis/modules/libbaton.so
COPY --from=build /baton /usr/local/bin/baton
EXPOSE 6379
CMD ["redis-server", "--loadmodule", "/usr/local/lib/redis/modules/libbaton.so"]
