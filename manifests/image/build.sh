#!/usr/bin/env bash
# build.sh [--minimal] [--allow-missing] [--bin-dir DIR] [--tag NAME:TAG] OUT.tar
#
# Builds the sidetap image without a container daemon and writes it as an OCI archive
# (load it with `skopeo copy oci-archive:OUT.tar docker://REGISTRY/sidetap:TAG` or
# `podman load -i OUT.tar`). Needs root, buildah and, for the full image, debootstrap.
#
# The full image matches manifests/image/Containerfile: a Debian 12 (bookworm) root made by
# debootstrap from the mirror apt is configured with, the runtime libraries, iptables, a
# user 65532, and the five binaries in /usr/local/bin. The binaries come from a release
# build of this tree on this machine (Debian 12 as well, so the same libraries); pass
# --bin-dir to reuse a meson build directory, otherwise one is made in a temp dir.
#
# --allow-missing builds even when a binary is not part of the tree yet (a note says which).
# --minimal skips debootstrap: the root holds only the binaries, the shared libraries they
# load (found with ldd) and /etc/passwd. It is what the test suite builds (seconds, not
# minutes); it has no iptables, so its sidetap-init cannot apply rules.
set -euo pipefail

minimal=0 allow_missing=0 bin_dir= tag=sidetap:0.1.0 out=
while [[ $# -gt 0 ]]; do
  case $1 in
    --minimal) minimal=1 allow_missing=1 ;;
    --allow-missing) allow_missing=1 ;;
    --bin-dir) bin_dir=$2; shift ;;
    --tag) tag=$2; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) echo "build.sh: unknown option $1" >&2; exit 2 ;;
    *) out=$1 ;;
  esac
  shift
done
[[ -n $out ]] || { echo "usage: build.sh [--minimal] [--allow-missing] [--bin-dir DIR] [--tag NAME:TAG] OUT.tar" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "build.sh: run as root (buildah with the vfs driver, debootstrap)" >&2; exit 2; }
command -v buildah >/dev/null || { echo "build.sh: needs buildah (apt-get install buildah)" >&2; exit 2; }
[[ $minimal -eq 1 ]] || command -v debootstrap >/dev/null ||
  { echo "build.sh: needs debootstrap (apt-get install debootstrap), or use --minimal" >&2; exit 2; }

src=$(cd "$(dirname "$0")/../.." && pwd)
out=$(realpath -m "$out")
work=$(mktemp -d /tmp/sidetap-image.XXXXXX)
B=(buildah --storage-driver vfs --root "$work/storage" --runroot "$work/run")
cleanup() {
  "${B[@]}" rm -a >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '==> %s\n' "$*"; }

binaries=(injector/sidetap-injector injector/sidetap-await proxy/sidetap-proxy
          proxy/init/sidetap-init collector/sidetap-collector)

if [[ -z $bin_dir ]]; then
  step "release build of $src"
  bin_dir=$work/build
  meson setup "$bin_dir" "$src" --buildtype=release -Doptimization=2 >"$work/setup.log" 2>&1 ||
    { cat "$work/setup.log"; exit 1; }
  ninja -C "$bin_dir" >"$work/ninja.log" 2>&1 || { tail -40 "$work/ninja.log"; exit 1; }
fi
found=()
for b in "${binaries[@]}"; do
  if [[ -x $bin_dir/$b ]]; then
    found+=("$bin_dir/$b")
  elif [[ $allow_missing -eq 0 ]]; then
    echo "build.sh: $bin_dir/$b is missing (--allow-missing builds without it)" >&2; exit 1
  else
    echo "build.sh: note: $b not built, left out of the image" >&2
  fi
done

root=$work/rootfs
if [[ $minimal -eq 1 ]]; then
  step "minimal root: binaries and their shared libraries"
  mkdir -p "$root/usr/local/bin" "$root/etc" "$root/tmp"
  chmod 1777 "$root/tmp"
  for f in "${found[@]}"; do
    ldd "$f" | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}' | while read -r lib; do
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
  done
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nsidetap:x:65532:65532:sidetap:/nonexistent:/usr/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nsidetap:x:65532:\n' >"$root/etc/group"
else
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [[ -n $mirror ]] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [[ -n $mirror ]] || mirror=http://deb.debian.org/debian
  pkgs=libevent-2.1-7,libevent-openssl-2.1-7,libssl3,libnghttp2-14,libhiredis0.14,libcurl4,libjansson4,zlib1g,iptables,ca-certificates
  step "debootstrap bookworm from $mirror (minbase + runtime libraries)"
  debootstrap --variant=minbase --include="$pkgs" bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -30 "$work/debootstrap.log"; exit 1; }
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc "$root"/usr/share/man \
         "$root"/usr/share/info "$root"/var/log/* "$root"/usr/share/locale/*
  echo 'sidetap:x:65532:65532:sidetap:/nonexistent:/usr/sbin/nologin' >>"$root/etc/passwd"
  echo 'sidetap:x:65532:' >>"$root/etc/group"
  mkdir -p "$root/usr/local/bin"
fi
for f in "${found[@]}"; do
  install -m 0755 "$f" "$root/usr/local/bin/"
  strip --strip-unneeded "$root/usr/local/bin/$(basename "$f")" 2>/dev/null || true
done

step "buildah: from scratch, copy the root, commit $tag"
ctr=$("${B[@]}" from --name sidetap-build scratch)
"${B[@]}" copy "$ctr" "$root/" / >/dev/null
"${B[@]}" config --user 65532:65532 --workingdir / \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --entrypoint '["/usr/local/bin/sidetap-collector"]' --cmd '[]' \
  --label org.opencontainers.image.title=sidetap \
  --label org.opencontainers.image.description="Wireshark for Kubernetes, with no host privileges" \
  --label org.opencontainers.image.licenses=Apache-2.0 \
  --label org.opencontainers.image.ref.name="$tag" "$ctr"
rm -f "$out"
"${B[@]}" commit --format oci --quiet "$ctr" "oci-archive:$out:$tag" >/dev/null
step "wrote $out ($(du -h "$out" | cut -f1))"
