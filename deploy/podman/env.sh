# Sourced by deploy/local-images.sh and the deploy tests: podman settings for machines like the
# project's build machines (no Docker engine, cgroup v1, no raising of rlimits, no overlayfs for
# nested storage). Everything goes through CONTAINERS_CONF / CONTAINERS_STORAGE_CONF, so plain
# `podman`, `buildah` and `podman system service` (the Docker API socket docker-compose talks
# to) all use the same settings. WHARF_PODMAN_ROOT moves the whole store.
WHARF_PODMAN_ROOT="${WHARF_PODMAN_ROOT:-/var/lib/wharf-podman}"
mkdir -p "$WHARF_PODMAN_ROOT/conf"
cat >"$WHARF_PODMAN_ROOT/conf/containers.conf" <<CONF
[containers]
# Raising RLIMIT_NOFILE/NPROC is not permitted here; keep the limits the engine has.
default_ulimits = []

[engine]
# crun refuses the hybrid cgroup v1 set-up; runc works.
runtime = "runc"
[engine.runtimes]
runc = ["/usr/sbin/runc", "/usr/bin/runc"]
CONF
cat >"$WHARF_PODMAN_ROOT/conf/storage.conf" <<CONF
[storage]
# vfs: plain copies, works where overlayfs cannot be mounted.
driver = "vfs"
graphroot = "$WHARF_PODMAN_ROOT/storage"
runroot = "$WHARF_PODMAN_ROOT/run"
CONF
export CONTAINERS_CONF="$WHARF_PODMAN_ROOT/conf/containers.conf"
export CONTAINERS_STORAGE_CONF="$WHARF_PODMAN_ROOT/conf/storage.conf"
