#!/usr/bin/env bash
# The main job on a small example: build an FCOS-like release with the real
# tools, dehydrate it into a bundle, list it, rehydrate the openstack image
# and compare its SHA-256 with the one the stream publishes.
#
#   bash testdata/demo.sh [WORKDIR]        (default /tmp/rehydrator-demo)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/rehydrator-demo}
rm -rf "$work"
mkdir -p "$work/out"

echo "== building rehydrator"
go build -o "$work/rehydrator" ./cmd/rehydrator
echo "== generating the example release into $work/release"
bash testdata/mkrelease.sh "$work/release" >/dev/null
echo "== dehydrate"
"$work/rehydrator" dehydrate --stream "$work/release/stream.json" --artifacts "$work/release" --output "$work/bundle"
echo "== list"
"$work/rehydrator" list --from "$work/bundle"
echo "== rehydrate --disk openstack"
"$work/rehydrator" rehydrate --from "$work/bundle" "$work/out" --disk openstack
f=$(ls "$work/out")
want=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["architectures"]["x86_64"]["artifacts"]["openstack"]["formats"]["qcow2.xz"]["disk"]["uncompressed-sha256"])' "$work/release/stream.json")
got=$(sha256sum "$work/out/$f" | cut -d' ' -f1)
echo "$f: sha256 $got (stream: $want)"
[ "$got" = "$want" ] && echo "OK: bit-exact" || { echo "MISMATCH"; exit 1; }
printf 'downloads: %s bytes, bundle: %s bytes\n' \
  "$(find "$work/release" -type f ! -name stream.json -printf '%s\n' | awk '{s+=$1} END {print s}')" \
  "$(find "$work/bundle" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')"
