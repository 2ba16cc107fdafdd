#!/usr/bin/env bash
# A throwaway single-node Ceph RGW (a real S3 server) on loopback, every byte of its state in one
# directory: 1 monitor, 1 OSD, 1 radosgw, no manager. For tests and benchmarks, never production.
#
#   scripts/rgw.sh start [DIR]     start (DIR: a new temp dir when absent); prints env lines
#   scripts/rgw.sh run [DIR]       start, then stay in the foreground until SIGTERM/SIGINT (containers)
#   scripts/rgw.sh stop DIR        stop every daemon by its pid, then remove DIR
#   scripts/rgw.sh gateway-stop DIR | gateway-start DIR
#                                  stop / start radosgw alone (S3 outage tests); mon and OSD stay
#   scripts/rgw.sh env DIR         print the env lines again
#
# Environment: WHARF_RGW_PORT (S3 port, default 7480), WHARF_RGW_MON_PORT (monitor v2 port; v1 is
# the next one; default S3 port + 1), WHARF_RGW_ADDR (address radosgw listens on, 127.0.0.1),
# WHARF_RGW_STORE (memstore: objects in RAM, starts in ~3 s; bluestore, the default: a sparse file
# in DIR, flat memory), WHARF_RGW_ACCESS_KEY / WHARF_RGW_SECRET_KEY (the S3 user's keys).
#
# The printed lines (also in DIR/env) are what test/helpers/s3rver.ts reads:
#   WHARF_TEST_S3_ENDPOINT, WHARF_TEST_S3_REGION, WHARF_TEST_S3_ACCESSKEYID,
#   WHARF_TEST_S3_SECRETACCESSKEY, WHARF_TEST_RGW_DIR
# The ceph packages are installed with apt-get when missing.
set -euo pipefail

SCRIPT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
say() { echo "rgw: $*" >&2; }
die() { say "$*"; [ -n "${STARTING:-}" ] && stop_daemons && say "logs are in $DIR/log"; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }

install_if_missing() {
  local missing=()
  for bin in radosgw ceph-mon ceph-osd ceph ceph-authtool monmaptool radosgw-admin; do
    command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ceph (missing: ${missing[*]})"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq radosgw ceph-mon ceph-osd ceph-common >/dev/null
}

# Runs a daemon in the foreground of a shell that records its own pid, then execs: `$!` of a
# backgrounded setsid can name the wrong process.
spawn() { # name command...
  local name=$1; shift
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$DIR/$name.pid" "$@" >>"$DIR/log/$name.out" 2>&1 </dev/null &
  for _ in $(seq 1 50); do [ -s "$DIR/$name.pid" ] && return 0; sleep 0.1; done
  die "$name did not start"
}

# Alive and not a zombie: stopped daemons reparent to PID 1, which reaps them slowly here.
alive() { local state; state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1; [ "$state" != Z ]; }

stop_one() { # name
  local file="$DIR/$1.pid" pid
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    for _ in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
  fi
  rm -f "$file"
}

# Every ceph call is bounded: a wait on a dead monitor ignores --connect-timeout.
cephq() { timeout 30 ceph -c "$DIR/ceph.conf" "$@"; }

print_env() {
  cat "$DIR/env"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_http() {
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/$CONNECT_ADDR/$PORT") 2>/dev/null; then return 0; fi
    alive "$(cat "$DIR/rgw.pid")" || { tail -20 "$DIR/log/rgw.out" >&2; die "radosgw exited"; }
    sleep 0.2
  done
  die "radosgw does not answer on $CONNECT_ADDR:$PORT"
}

start_gateway() {
  spawn rgw radosgw -f -c "$DIR/ceph.conf" -n client.rgw
  wait_http
}

start() {
  install_if_missing
  DIR=${1:-}
  if [ -z "$DIR" ]; then DIR=$(mktemp -d "${TMPDIR:-/tmp}/wharf-rgw.XXXXXX"); fi
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd)
  [ -e "$DIR/ceph.conf" ] && die "$DIR already holds a cluster: stop it first"
  STARTING=1
  PORT=${WHARF_RGW_PORT:-7480}
  local mon_port=${WHARF_RGW_MON_PORT:-$((PORT + 1))}
  local mon_v1=$((mon_port + 1))
  local addr=${WHARF_RGW_ADDR:-127.0.0.1}
  local store=${WHARF_RGW_STORE:-bluestore}
  case "$store" in memstore | bluestore) ;; *) die "WHARF_RGW_STORE must be memstore or bluestore, not $store" ;; esac
  for p in "$PORT" "$mon_port" "$mon_v1"; do port_free "$p" || die "port $p is in use (set WHARF_RGW_PORT / WHARF_RGW_MON_PORT)"; done
  local access=${WHARF_RGW_ACCESS_KEY:-WHARFTESTACCESSKEY}
  local secret=${WHARF_RGW_SECRET_KEY:-wharf-test-secret-key-0123456789abcdef}
  local fsid osd_uuid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  mkdir -p "$DIR"/{mon,osd/ceph-0,rgw,run,log,crash}
  cat >"$DIR/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon_port,v1:127.0.0.1:$mon_v1]
public addr = 127.0.0.1
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $DIR/keyring
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
crash dir = $DIR/crash
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd crush chooseleaf type = 0
mon warn on pool no redundancy = false
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
paxos propose interval = 0.01
paxos min wait = 0.001
ms bind port min = $((mon_port + 2))
ms bind port max = $((mon_port + 40))
[mon]
mon data = $DIR/mon/\$name
[osd]
osd data = $DIR/osd/\$cluster-\$id
osd objectstore = $store
bluestore block create = true
bluestore block size = 42949672960
osd memory target = 536870912
bluestore cache autotune = false
bluestore cache size = 134217728
[client.rgw]
rgw frontends = beast endpoint=$addr:$PORT
rgw data = $DIR/rgw
rgw dns name = localhost
EOF
  local keyring="$DIR/keyring"
  ceph-authtool --create-keyring "$keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool "$keyring" --gen-key -n osd.0 --cap mon 'allow profile osd' --cap osd 'allow *' --cap mgr 'allow profile osd' >/dev/null
  ceph-authtool "$keyring" --gen-key -n client.rgw --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port,v1:127.0.0.1:$mon_v1]" "$DIR/monmap" >/dev/null
  ceph-mon -c "$DIR/ceph.conf" --mkfs -i a --monmap "$DIR/monmap" --keyring "$keyring" >>"$DIR/log/mkfs.out" 2>&1
  spawn mon ceph-mon -f -c "$DIR/ceph.conf" -i a
  ceph-osd -c "$DIR/ceph.conf" --no-mon-config --mkfs -i 0 --osd-uuid "$osd_uuid" >>"$DIR/log/mkfs.out" 2>&1 || { tail -20 "$DIR/log/mkfs.out" >&2; die "OSD mkfs failed"; }
  cephq osd new "$osd_uuid" 0 >/dev/null
  spawn osd ceph-osd -f -c "$DIR/ceph.conf" -i 0
  local up=
  for _ in $(seq 1 150); do
    if cephq osd dump 2>/dev/null | grep -q '^osd.0 up'; then up=1; break; fi
    alive "$(cat "$DIR/osd.pid")" || break
    sleep 0.2
  done
  [ -n "$up" ] || { tail -20 "$DIR/log/osd.out" >&2; die "osd.0 did not come up"; }
  CONNECT_ADDR=$addr
  [ "$addr" = 0.0.0.0 ] && CONNECT_ADDR=127.0.0.1
  start_gateway
  timeout 60 radosgw-admin -c "$DIR/ceph.conf" user create --uid=wharf --display-name=wharf --access-key="$access" --secret="$secret" >/dev/null
  cat >"$DIR/env" <<EOF
WHARF_TEST_S3_ENDPOINT=http://$CONNECT_ADDR:$PORT
WHARF_TEST_S3_REGION=us-east-1
WHARF_TEST_S3_ACCESSKEYID=$access
WHARF_TEST_S3_SECRETACCESSKEY=$secret
WHARF_TEST_RGW_DIR=$DIR
EOF
  echo "$PORT $CONNECT_ADDR" >"$DIR/gateway"
  STARTING=
  print_env
}

stop_daemons() {
  stop_one rgw
  stop_one osd
  stop_one mon
}

stop() {
  stop_daemons
  case "$DIR" in /|"") die "refusing to remove '$DIR'" ;; esac
  [ -e "$DIR/ceph.conf" ] && rm -rf "$DIR"
  return 0
}

load_dir() {
  DIR=${1:-}
  [ -n "$DIR" ] || die "usage: $(basename "$SCRIPT") $CMD DIR"
  [ -e "$DIR/ceph.conf" ] || die "$DIR holds no cluster"
  DIR=$(cd "$DIR" && pwd)
}

CMD=${1:-}
shift || true
case "$CMD" in
  start) start "$@" ;;
  run)
    start "$@"
    trap 'stop; exit 0' TERM INT
    while alive "$(cat "$DIR/rgw.pid")"; do sleep 1; done
    say "radosgw exited"; stop; exit 1
    ;;
  stop) load_dir "$@"; stop ;;
  gateway-stop) load_dir "$@"; stop_one rgw ;;
  gateway-start)
    load_dir "$@"
    read -r PORT CONNECT_ADDR <"$DIR/gateway"
    [ -s "$DIR/rgw.pid" ] && alive "$(cat "$DIR/rgw.pid")" && exit 0
    start_gateway
    ;;
  env) load_dir "$@"; print_env ;;
  *) sed -n '2,20p' "$SCRIPT" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
