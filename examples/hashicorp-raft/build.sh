#!/bin/sh
# Builds bin/kvstore offline, in GOPATH mode, from Debian's packages:
#   apt-get install golang-go golang-github-hashicorp-raft-dev golang-github-hashicorp-raft-boltdb-dev
set -e
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/bin"
cd "$here/src/kvstore"
GOPATH="$here:/usr/share/gocode" GO111MODULE=off GOCACHE="${GOCACHE:-$here/.gocache}" \
    go build -o "$here/bin/kvstore" .
echo "built $here/bin/kvstore"
