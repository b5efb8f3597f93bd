# Sluice in a small runtime image.
#
#   docker build -t sluice .
#   docker run --rm -v $PWD/pipelines:/etc/sluice sluice run /etc/sluice/demo.yaml
#
# Build stage: librdkafka is compiled from the bundled sources (gcc, make).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin sluice \
 && strip target/release/sluice

# Runtime stage: the binary and the C libraries it links (glibc, zlib).
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends zlib1g ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/sluice --create-home sluice
COPY --from=build /src/target/release/sluice /usr/local/bin/sluice
USER sluice
WORKDIR /var/lib/sluice
ENTRYPOINT ["sluice"]
CMD ["--help"]
