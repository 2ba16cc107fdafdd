#!/bin/sh
# No arguments, or a first argument that is a flag: they are nats-server's.
set -e
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then set -- nats-server "$@"; fi
exec "$@"
