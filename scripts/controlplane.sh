#!/usr/bin/env bash
# controlplane.sh provisions the local Kubernetes control plane that the tests
# (internal/controlplane) start: etcd from Debian's etcd-server package, and
# kube-apiserver, kube-controller-manager, kube-scheduler and kubelet built
# from the Go module proxy by the tools module in tools/kube. The binaries are
# cached, keyed by version, under .cache/kube/<version>/bin (git-ignored), so
# only the first run builds. A node (internal/controlplane Node) also needs a
# container runtime: containerd, runc and the CNI plugins from Debian.
#
# Usage:
#   scripts/controlplane.sh ensure    install etcd and build the binaries if missing
#   scripts/controlplane.sh version   print the pinned Kubernetes version
#   scripts/controlplane.sh bin-dir   print the directory holding the binaries
#
# Idempotent: run it before every test run; a warm run takes well under a second.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$repo/tools/kube"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubelet)

log() { printf 'controlplane: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# kube_version reads the pinned k8s.io/kubernetes version from the tools
# module, the single source of truth (internal/controlplane reads it too).
kube_version() {
	local v
	v=$(awk '$1 != "//" && $0 !~ /=>/ && $0 !~ /\/cmd\// { for (i = 1; i < NF; i++) if ($i == "k8s.io/kubernetes") { print $(i+1); exit } }' "$tools/go.mod")
	[[ $v == v1.* ]] || die "cannot read the k8s.io/kubernetes version from $tools/go.mod"
	printf '%s\n' "$v"
}

bin_dir() {
	local v
	v=$(kube_version) || exit 1
	printf '%s/.cache/kube/%s/bin\n' "$repo" "$v"
}

as_root() {
	if [[ $(id -u) == 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		die "need root to run: $*"
	fi
}

ensure_etcd() {
	if command -v etcd >/dev/null || [[ -x /usr/bin/etcd ]]; then
		log "etcd present: $(etcd_path) ($("$(etcd_path)" --version 2>/dev/null | head -n1))"
		return
	fi
	command -v apt-get >/dev/null || die "etcd is missing and apt-get is not available; install etcd 3.4+ and put it on PATH"
	log "installing etcd from Debian's etcd-server package"
	# Keep the package's init script from starting a system-wide etcd: the
	# tests start their own on free ports and stop only what they started.
	local policy=/usr/sbin/policy-rc.d added=""
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
		as_root chmod 755 "$policy"
		added=1
	fi
	local rc=0
	as_root apt-get update -q && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends etcd-server || rc=$?
	if [[ -n $added ]]; then as_root rm -f "$policy"; fi
	[[ $rc == 0 ]] || die "apt-get install etcd-server failed (exit $rc)"
	log "etcd installed: $("$(etcd_path)" --version | head -n1)"
}

etcd_path() { command -v etcd || echo /usr/bin/etcd; }

# apt_install installs Debian packages without letting their init scripts
# start system-wide daemons: the tests start their own and stop only those.
apt_install() {
	command -v apt-get >/dev/null || die "apt-get is not available; install $* by hand"
	local policy=/usr/sbin/policy-rc.d added=""
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
		as_root chmod 755 "$policy"
		added=1
	fi
	local rc=0
	as_root apt-get update -q && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" || rc=$?
	if [[ -n $added ]]; then as_root rm -f "$policy"; fi
	[[ $rc == 0 ]] || die "apt-get install $* failed (exit $rc)"
}

# ensure_runtime installs what a kubelet needs to run pods: containerd (the
# CRI runtime), runc (its OCI runtime), the CNI plugins, and the tools the
# kubelet shells out to (mount, iptables is not needed: no kube-proxy).
ensure_runtime() {
	local missing=()
	command -v containerd >/dev/null || missing+=(containerd)
	command -v runc >/dev/null || missing+=(runc)
	[[ -x /usr/lib/cni/host-local || -x /opt/cni/bin/host-local ]] || missing+=(containernetworking-plugins)
	if [[ ${#missing[@]} == 0 ]]; then
		log "container runtime present: $(containerd --version 2>/dev/null | head -n1); $(runc --version | head -n1)"
		return
	fi
	log "installing ${missing[*]} from Debian"
	apt_install "${missing[@]}"
	log "container runtime installed: $(containerd --version | head -n1)"
}

have_binaries() {
	local dir=$1 b
	for b in "${binaries[@]}"; do
		[[ -x $dir/$b ]] || return 1
	done
}

# build_binaries compiles into a temporary directory and renames it into
# place, so an interrupted build never leaves a half-filled cache.
build_binaries() {
	local version=$1 dir=$2
	command -v go >/dev/null || die "go is not on PATH"
	local tmp="$dir.tmp.$$"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	trap 'rm -rf "$tmp"' EXIT

	local pkgs=() b
	for b in "${binaries[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done

	log "building ${binaries[*]} $version into $dir (first time only: ~10-15 min on 2 cores)"
	log "downloading modules"
	(cd "$tools" && go mod download) || die "go mod download failed in $tools"
	local total
	total=$(cd "$tools" && go list -deps "${pkgs[@]}" | wc -l)

	# The version variables make /version report the real release instead
	# of v0.0.0-master; -s -w drops debug info (the binaries are ~40% smaller).
	local ldflags="-s -w"
	ldflags+=" -X k8s.io/component-base/version.gitVersion=$version"
	ldflags+=" -X k8s.io/component-base/version.gitMajor=$(cut -d. -f1 <<<"${version#v}")"
	ldflags+=" -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"${version#v}")"
	ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"

	local start=$SECONDS
	# go build -v names each package as it is compiled; count them against
	# the dependency total for a progress line (one line per 100 packages
	# when not on a terminal, so CI logs stay short).
	set +e
	(cd "$tools" && go build -v -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}") 2>&1 |
		awk -v total="$total" -v tty="$([[ -t 2 ]] && echo 1)" -v start="$(date +%s)" '
			/^[a-zA-Z0-9._-]+(\/[^ ]*)?$/ && !/:/ {
				n++
				pct = int(100 * n / total); if (pct > 99) pct = 99
				if (tty) { printf "\rcontrolplane: compiling [%d/%d] %d%% %ds ", n, total, pct, systime() - start > "/dev/stderr" }
				else if (n % 100 == 0) { printf "controlplane: compiling [%d/%d] %d%% %ds\n", n, total, pct, systime() - start > "/dev/stderr" }
				next
			}
			{ print > "/dev/stderr" }
			END { if (tty) printf "\n" > "/dev/stderr" }'
	local rc=${PIPESTATUS[0]}
	set -e
	[[ $rc == 0 ]] || die "go build failed (exit $rc)"

	for b in "${binaries[@]}"; do
		"$tmp/$b" --version >/dev/null || die "$tmp/$b does not run"
	done
	rm -rf "$dir"
	mv "$tmp" "$dir"
	trap - EXIT
	log "built in $((SECONDS - start))s: $(cd "$dir" && ls | tr '\n' ' ')"
}

ensure_kube() {
	local version dir
	version=$(kube_version) || exit 1
	dir=$(bin_dir) || exit 1
	mkdir -p "$(dirname "$dir")"
	# One build at a time: parallel CI jobs or engineers share the cache.
	exec 9>"$(dirname "$dir")/.lock"
	flock 9
	if have_binaries "$dir"; then
		log "kube binaries present: $dir ($("$dir/kube-apiserver" --version))"
	else
		build_binaries "$version" "$dir"
	fi
	flock -u 9
}

case "${1:-}" in
ensure)
	start=$SECONDS
	ensure_etcd
	ensure_runtime
	ensure_kube
	log "ready in $((SECONDS - start))s; tests find the binaries in $(bin_dir)"
	;;
version) kube_version ;;
bin-dir) bin_dir ;;
*)
	sed -n '2,13s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit 2
	;;
esac
