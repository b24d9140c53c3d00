# syntax=docker/dockerfile:1
#
# The glusterfs-csi image: one binary for both the controller and the node plugin
# (deploy/base/ runs it with --mode controller and --mode node).
#
#   docker build -t registry.example.com/storage/glusterfs-csi:0.1.0 .
#
# Build stage: the Swift toolchain this project is built and tested with, on the same Debian
# release as the runtime stage, so the C libraries linked here are the ones installed there.
FROM swift:6.3.1-bookworm AS build

# gRPC core, libcurl and libsystemd headers for the C shims (Package.swift links grpc and gpr;
# libcurl and libsystemd are not linked, their shims load them with dlopen at run time, but their
# headers are needed: curl's, and sd-bus's for the systemd placement of mounts).
# libgrpc-dev also brings zlib1g-dev, whose static archive the link uses; the Swift image has
# libstdc++-12-dev (libstdc++.a) and lld.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libcurl4-openssl-dev \
        libgrpc-dev \
        libsystemd-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Dependencies first, so that a change in Sources/ does not download them again.
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
# The manifest declares the test targets too; SwiftPM wants their directories to exist.
COPY Tests ./Tests
# --static-swift-stdlib: the Swift runtime is linked in, so the runtime stage needs no Swift
# toolchain libraries, only Debian's C libraries. GLUSTERFS_CSI_STATIC_GRPC=1 links gRPC core
# (without TLS), abseil, re2, c-ares, upb, zlib and libstdc++ in too, from Debian's static
# archives, with lld and the function order of bench/link-order (see Package.swift). Measured
# against the previous image link (bench/README.md, identity-probe): idle RSS 11 MiB instead of
# 20, start-up 7.5 ms instead of 10.8. Being static, zlib and libstdc++ are fixed when the image
# is rebuilt, not by a Debian update of the runtime stage.
ENV GLUSTERFS_CSI_STATIC_GRPC=1
RUN swift build -c release --static-swift-stdlib --product glusterfs-csi \
    && install -D -m 0755 "$(swift build -c release --static-swift-stdlib --show-bin-path)/glusterfs-csi" \
        /out/glusterfs-csi

# Runtime stage. The package list is what the binary needs, no more; scripts/check-deploy
# checks it against the release binary: every library `ldd` shows, and every library the binary
# dlopens and what that one needs, must come from one of these packages or their dependencies.
#   libgcc-s1                                   the binary's own shared library besides
#                                               libc6 (its DT_NEEDED entries; gRPC core,
#                                               zlib and libstdc++ are linked in statically)
#   libcurl4                                    libcurl.so.4, which the binary does NOT link:
#                                               the controller dlopens it on its first Heketi
#                                               request (the node plugin never loads it). ldd
#                                               does not show it; without it every Heketi call
#                                               fails with "install libcurl4"
#   libsystemd0                                 libsystemd.so.0, which the binary does NOT link
#                                               either: the node plugin dlopens it when it tries
#                                               systemd placement (--mount-placement auto or
#                                               systemd, at start-up) to ask the host's systemd
#                                               over sd-bus for a scope per volume, so mounts
#                                               outlive the plugin (docs/upgrade.md); the
#                                               controller never loads it. ldd does not show it;
#                                               without it auto falls back to cgroup placement
#   glusterfs-client                            mount.glusterfs and the glusterfs FUSE client
#   mount                                       /bin/mount and /bin/umount, which the node runs
#   ca-certificates                             the CA store libcurl uses for https Heketi URLs
FROM debian:bookworm-slim

LABEL org.opencontainers.image.title="glusterfs-csi" \
      org.opencontainers.image.description="CSI driver for GlusterFS volumes provisioned through Heketi" \
      org.opencontainers.image.version="0.1.0"

RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates \
        glusterfs-client \
        libcurl4 \
        libgcc-s1 \
        libsystemd0 \
        mount \
    && rm -rf /var/lib/apt/lists/*

COPY --from=build /out/glusterfs-csi /usr/local/bin/glusterfs-csi

# Root by default: the node plugin mounts file systems. The controller's pod spec runs it as an
# unprivileged user (deploy/base/controller.yaml).
ENTRYPOINT ["/usr/local/bin/glusterfs-csi"]
