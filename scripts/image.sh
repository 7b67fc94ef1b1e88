#!/usr/bin/env bash
# Builds the container image with no daemon and no registry (make image):
# static binaries for each platform, Debian's CA bundle, a CycloneDX SBOM per
# binary, then scripts/image/ (go-containerregistry) assembles them into an
# OCI image layout and archive in OUTDIR:
#
#   OUTDIR/oci/                    OCI image layout (crane push, skopeo copy oci:)
#   OUTDIR/telegraf-tkgi.oci.tar   the same as an OCI archive (skopeo copy
#                                  oci-archive:, ctr images import)
#   OUTDIR/sbom-linux-ARCH.cdx.json  the SBOMs, also in the index as artifacts
#   OUTDIR/digest                  the index's digest
#   OUTDIR/build/                  the inputs (binaries, CA bundle)
#
# Same commit, same Go and module versions, same ca-certificates version:
# same bytes. Every timestamp is SOURCE_DATE_EPOCH (the last commit's time
# unless set).
#
# Environment (the Makefile sets them): VERSION, COMMIT, LDFLAGS, IMAGE
# (name:tag), PLATFORMS ("linux/amd64 linux/arm64"). IMAGE_REUSE_BUILD=DIR
# assembles from the inputs of an earlier run's OUTDIR/build instead of
# building them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/telegraf-tkgi}
out=${1:?usage: image.sh OUTDIR}
mkdir -p "$out" && out=$(cd "$out" && pwd)
: "${VERSION:?}" "${COMMIT:?}" "${LDFLAGS:?}"
image=${IMAGE:-telegraf-tkgi:$VERSION}
platforms=${PLATFORMS:-linux/amd64 linux/arm64}
cd "$root"
revision=$(git rev-parse HEAD)
source_url=https://$(go list -m)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

# CycloneDX's Go tool, go-installed once into the cache at a pinned version.
cdx_version=v1.10.0
cdx="$cache/tools/cyclonedx-gomod-$cdx_version/cyclonedx-gomod"
if [ ! -x "$cdx" ]; then
  mkdir -p "$(dirname "$cdx")"
  exec 9>"$(dirname "$cdx").lock"
  flock 9
  if [ ! -x "$cdx" ]; then
    echo "image: installing cyclonedx-gomod $cdx_version" >&2
    GOBIN="$(dirname "$cdx")" go install "github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$cdx_version"
  fi
  exec 9>&-
fi

build=${IMAGE_REUSE_BUILD:-$out/build}
if [ -z "${IMAGE_REUSE_BUILD:-}" ]; then
  mkdir -p "$build"
  # Debian's CA certificates as the package ships them (not this machine's
  # bundle, which may hold local CAs): the bundle update-ca-certificates
  # writes, every certificate of the package in name order.
  debs="$cache/image/debs"
  mkdir -p "$debs"
  ca_version=$(apt-cache policy ca-certificates | awk '/Candidate:/ {print $2}')
  [ -n "$ca_version" ] && [ "$ca_version" != "(none)" ] || { echo "image: apt knows no ca-certificates (apt-get update?)" >&2; exit 1; }
  deb="$debs/ca-certificates_${ca_version//:/%3a}_all.deb"
  if [ ! -f "$deb" ]; then
    (cd "$debs" && apt-get download "ca-certificates=$ca_version" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
    [ -f "$deb" ] || { echo "image: apt-get download ca-certificates=$ca_version failed" >&2; exit 1; }
  fi
  rm -rf "$build/ca" && mkdir -p "$build/ca"
  dpkg-deb -x "$deb" "$build/ca"
  : > "$build/ca-certificates.crt"
  while IFS= read -r crt; do
    sed -e '$a\' "$crt" >> "$build/ca-certificates.crt"
  done < <(find "$build/ca/usr/share/ca-certificates" -name '*.crt' | LC_ALL=C sort)
  echo "$ca_version" > "$build/ca-certificates.version"
  rm -rf "$build/ca"

  for p in $platforms; do
    os=${p%/*} arch=${p#*/}
    echo "image: building $p" >&2
    GOOS=$os GOARCH=$arch go build -trimpath -ldflags "$LDFLAGS" -o "$build/$os-$arch/telegraf-tkgi" ./cmd/telegraf-tkgi
    # The SBOM of what the binary links, read from its build information.
    "$cdx" bin -json -std -noserial -notimestamp -version "$VERSION" \
      -output "$build/$os-$arch/sbom.cdx.json" "$build/$os-$arch/telegraf-tkgi"
  done
fi

args=()
for p in $platforms; do
  os=${p%/*} arch=${p#*/}
  cp "$build/$os-$arch/sbom.cdx.json" "$out/sbom-$os-$arch.cdx.json"
  args+=(-platform "$p=$build/$os-$arch/telegraf-tkgi,$out/sbom-$os-$arch.cdx.json")
done
# IMAGE is name:tag; a colon before the last slash is a registry's port.
case ${image##*/} in
  *:*) name=${image%:*} tag=${image##*:} ;;
  *) name=$image tag=latest ;;
esac
(cd scripts/image && GOWORK=off go run . -layout "$out/oci" -archive "$out/telegraf-tkgi.oci.tar" \
  -name "$name" -tag "$tag" -version "$VERSION" -revision "$revision" \
  -source "$source_url" -source-date-epoch "$SOURCE_DATE_EPOCH" \
  -ca-bundle "$build/ca-certificates.crt" -ca-version "$(cat "$build/ca-certificates.version")" \
  -configs "$root/configs" "${args[@]}") > "$out/digest"
echo "image: $name:$tag $(cat "$out/digest") in $out/oci and $out/telegraf-tkgi.oci.tar" >&2
