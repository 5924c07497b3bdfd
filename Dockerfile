# certrelay container image: built on Debian 12, shipped scratch-style (the binary, the shared
# libraries it links, the dynamic loader, openssl.cnf, passwd/group; no shell, no package manager).
#
#   buildah bud --isolation chroot --layers \
#     --build-arg BASE_IMAGE=localhost/debian:bookworm \
#     --build-arg REVISION="$(git rev-parse --short=12 HEAD)" -t certrelay .
#   docker build --build-arg REVISION="$(git rev-parse --short=12 HEAD)" -t certrelay .
#
# Runs as 65532:65532 with a read-only root filesystem and no capabilities; mount the config
# directory at /etc/certrelay and the certificates, keys and the fingerprint table as sibling
# directories (e.g. /etc/certrelay-tls, /etc/certrelay-policy), named by absolute paths in the config.

# The Debian 12 image to build on; CI passes one made locally with debootstrap
# (tests/container/run.sh: localhost/debian:bookworm).
ARG BASE_IMAGE=debian:bookworm

FROM ${BASE_IMAGE} AS build
# Build dependencies only (the runtime part of scripts/install-deps.sh's list, as -dev packages):
# no doctest, google-benchmark, clang or test tools.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      g++ cmake ninja-build pkg-config libuv1-dev libssl-dev libmimalloc-dev \
      libtomlplusplus-dev prometheus-cpp-dev libhttp-parser-dev nlohmann-json3-dev \
      libc-ares-dev \
 && rm -rf /var/lib/apt/lists/*
# Names the build stage's layers, so that tests/container/run.sh can prune the stale ones.
LABEL org.opencontainers.image.title="certrelay-build"

WORKDIR /src
COPY . .
# No .git in the build context: the revision for --version comes in as a build argument.
ARG REVISION=unknown
# -O2, as the tested RelWithDebInfo build (GCC 12 at -O3 raises false -Wrestrict warnings in
# libstdc++'s string code); no -g: the binary is stripped anyway.
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" -DCERTRELAY_WERROR=ON \
      -DCERTRELAY_TESTS=OFF -DCERTRELAY_BENCH=OFF -DCERTRELAY_REVISION="${REVISION}" \
 && cmake --build /build \
 && cmake --install /build --prefix /usr/local --strip

# The runtime tree: the binary, every library ldd lists (under its real directory, merged-/usr
# symlinks kept), the loader, OpenSSL's config, and a passwd/group naming 65532 (nonroot).
RUN set -eu; \
    bin=/usr/local/bin/certrelay; \
    mkdir -p /rootfs/usr/local/bin /rootfs/etc/ssl /rootfs/etc/certrelay; \
    for d in lib lib32 lib64 libx32; do \
      if [ -L "/$d" ]; then cp -P "/$d" "/rootfs/$d"; fi; \
    done; \
    cp "$bin" /rootfs/usr/local/bin/; \
    for f in $(ldd "$bin" | grep -o '/[^ ]*'); do \
      dir=$(realpath "$(dirname "$f")"); \
      mkdir -p "/rootfs$dir"; \
      cp -L "$f" "/rootfs$dir/"; \
    done; \
    cp /etc/ssl/openssl.cnf /rootfs/etc/ssl/; \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
      > /rootfs/etc/passwd; \
    printf 'root:x:0:\nnonroot:x:65532:\n' > /rootfs/etc/group; \
    /rootfs/usr/local/bin/certrelay --version

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=https://example.invalid/certrelay
LABEL org.opencontainers.image.title="certrelay" \
      org.opencontainers.image.description="TLS-terminating SMTP proxy: STARTTLS with client certificates, relay by fingerprint, XCLIENT to a plain backend MTA" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="NOASSERTION"
COPY --from=build /rootfs/ /
USER 65532:65532
# 2525 SMTP (STARTTLS), 2465 implicit TLS, 9901 admin (/livez, /readyz, /metrics): all >= 1024,
# so no capability is needed; map Service port 25 to 2525.
EXPOSE 2525 2465 9901
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/certrelay"]
CMD ["--config", "/etc/certrelay/certrelay.toml"]
