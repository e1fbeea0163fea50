# Redis 7 with the baton module (libbaton.so) loaded.
#
#   docker build -t baton-redis .
#   docker run --rm -p 127.0.0.1:6379:6379 baton-redis
#
# Stage 1 builds the module (redis-module's bindgen needs libclang); stage 2
# is the official redis:7 image (Debian bookworm, like the build stage) with
# the module copied in and loaded at start.

FROM rust:1-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libclang-dev clang \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release -p baton-module \
    && cp target/release/libbaton.so /libbaton.so

FROM redis:7
COPY --from=build /libbaton.so /usr/local/lib/redis/modules/libbaton.so
EXPOSE 6379
CMD ["redis-server", "--loadmodule", "/usr/local/lib/redis/modules/libbaton.so"]
