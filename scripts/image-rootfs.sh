#!/usr/bin/env bash
# scripts/image-rootfs.sh COMPONENT DIR: stages the build context of COMPONENT's image
# (images/COMPONENT/Containerfile) in DIR from this Debian machine's build: DIR/COMPONENT (the
# binary, debug info stripped), DIR/plugins/ (the stage plugins it loads: kd-autoscaler the
# decider, workload and scheduler ones, kd-node the runtime ones) and DIR/base.tar, the rest of
# the image's file system: exactly the shared libraries ldd finds for the binary and those
# plugins (plus the two a library loads by itself, below), at the paths the loader looks for
# them, /lib -> usr/lib style links kept as this machine has them; the CA certificates;
# /etc/passwd and /etc/group with root and nonroot (65532); /etc/nsswitch.conf; /tmp; and
# /usr/share/kubedirect/image-manifest, the Debian package and version of every file taken
# (dpkg -S), their copyright files beside it. base.tar is reproducible (sorted, owner 0, mtime
# of SOURCE_DATE_EPOCH or 0), so images whose libraries are the same share its layer.
# BUILD (default build) is the build folder; KD_IMAGE_STRIP=0 keeps the debug info.
set -euo pipefail
umask 022 # the image's folders and files readable by nonroot
usage() {
	echo "usage: $0 COMPONENT DIR (COMPONENT: kd-autoscaler, kd-node, kd-activator, kd-gateway)" >&2
	exit 2
}
[ $# -eq 2 ] || usage
comp="$1" out="$2"
case "$out" in "" | / | .) usage ;; esac
BUILD="${BUILD:-build}"
die() {
	echo "image-rootfs: $comp: $*" >&2
	exit 1
}

bin="$BUILD/bin/$comp"
plugin_globs=()
case "$comp" in
kd-autoscaler) plugin_globs=("kd-decider-*.so" "kd-workload*.so" "kd-scheduler*.so") ;;
kd-node) plugin_globs=("kd-runtime-*.so") ;;
kd-activator | kd-gateway) ;;
*) usage ;;
esac
[ -x "$bin" ] || die "no $bin (make bins first)"
command -v dpkg >/dev/null || die "dpkg not found: images are built from a Debian machine's build"
plugins=()
for g in "${plugin_globs[@]}"; do
	for p in "$BUILD"/plugins/$g; do
		[ -f "$p" ] || die "no $BUILD/plugins/$g (make plugins first)"
		plugins+=("$p")
	done
done

rm -rf "$out"
mkdir -p "$out/plugins"
root="$out/rootfs"
mkdir -p "$root"
strip_copy() { # strip_copy SRC DEST
	if [ "${KD_IMAGE_STRIP:-1}" = 1 ]; then
		strip --strip-debug -o "$2" "$1"
	else
		cp "$1" "$2"
	fi
	chmod 0755 "$2"
}
strip_copy "$bin" "$out/$comp"
for p in "${plugins[@]}"; do
	strip_copy "$p" "$out/plugins/${p##*/}"
done

# The shared libraries: what ldd lists for the binary and each plugin (the interpreter too).
# ldd runs the host's loader, so a library that is not found fails here, not in the image.
deps() { # deps ELF: one path a line
	local o
	o="$(ldd "$1")" || die "ldd $1 failed"
	if grep -q 'not found' <<<"$o"; then
		die "$1: $(grep 'not found' <<<"$o" | tr -s ' \t' ' ' | paste -sd, -)"
	fi
	awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$o"
}
mapfile -t libs < <(for f in "$bin" "${plugins[@]}"; do deps "$f"; done | sort -u)
# Loaded with dlopen by a library itself, so ldd cannot see them:
# - libwebsockets loads its libuv event loop from its library folder (libwebsockets-evlib-uv);
# - glibc loads libgcc_s.so.1 to unwind a thread on pthread_exit/pthread_cancel (and for
#   backtrace), and aborts if it is missing.
extra=()
for l in "${libs[@]}"; do
	case "${l##*/}" in
	libwebsockets.so.*)
		e="$(dirname "$(realpath "$l")")/libwebsockets-evlib_uv.so"
		[ -f "$e" ] || die "$l needs $e (apt-get install libwebsockets-evlib-uv)"
		extra+=("$e")
		;;
	libc.so.6)
		e="$(dirname "$l")/libgcc_s.so.1"
		[ -f "$e" ] || die "no $e (libgcc-s1)"
		extra+=("$e")
		;;
	esac
done
for e in "${extra[@]}"; do
	mapfile -t more < <(deps "$e")
	libs+=("$e" "${more[@]}")
done
mapfile -t libs < <(printf '%s\n' "${libs[@]}" | sort -u)

# normalize PATH: PATH with "." and ".." taken away by their text, as realpath -m -s does.
normalize() {
	local -a parts kept=()
	local p
	IFS=/ read -ra parts <<<"$1"
	for p in "${parts[@]}"; do
		case "$p" in
		"" | .) ;;
		..) [ ${#kept[@]} -eq 0 ] || unset 'kept[-1]' ;;
		*) kept+=("$p") ;;
		esac
	done
	local IFS=/
	norm="/${kept[*]}"
}
# replicate PATH: makes PATH resolve in $root as it does here: each symbolic link on the way is
# made again with the same target (then followed) and each directory created; the file it ends
# on is added to $out/files, copied below.
declare -A seen=()
replicate() {
	local path="$1" prefix="" rest comp target
	rest="${path#/}"
	while [ -n "$rest" ]; do
		comp="${rest%%/*}"
		if [ "$comp" = "$rest" ]; then rest=""; else rest="${rest#*/}"; fi
		prefix="$prefix/$comp"
		if [ -L "$prefix" ]; then
			if [ -z "${seen[$prefix]:-}" ]; then
				seen["$prefix"]="$(readlink "$prefix")"
				ln -s "${seen[$prefix]}" "$root$prefix"
			fi
			target="${seen[$prefix]}"
			[[ "$target" == /* ]] || target="${prefix%/*}/$target"
			normalize "$target${rest:+/$rest}"
			replicate "$norm"
			return
		elif [ -n "$rest" ]; then
			[ -d "$prefix" ] || die "$path: $prefix is not a directory"
			[ -d "$root$prefix" ] || mkdir "$root$prefix"
		elif [ -z "${seen[$prefix]:-}" ]; then
			[ -f "$prefix" ] || die "$path: not a regular file"
			seen["$prefix"]="file"
			printf '%s\n' "$prefix" >>"$out/files"
		fi
	done
}
: >"$out/files"
for l in "${libs[@]}"; do
	replicate "$l"
done
certs=/etc/ssl/certs/ca-certificates.crt
[ -f "$certs" ] || die "no $certs (apt-get install ca-certificates)"
replicate "$certs"
xargs -d '\n' cp --preserve=mode --parents -t "$root" <"$out/files"

# The manifest: every file taken, its package (dpkg -S knows a library by the path its package
# ships, /lib/... or /usr/lib/..., whichever this machine's links make it) and version.
mkdir -p "$root/usr/share/kubedirect" "$root/usr/share/doc"
manifest="$root/usr/share/kubedirect/image-manifest"
{
	echo "# the files of this image taken from Debian packages (scripts/image-rootfs.sh)"
	echo "# path	package	version"
} >"$manifest"
declare -A owner=() version=()
mapfile -t files <"$out/files"
rm "$out/files"
cands=()
for f in "${files[@]}"; do
	cands+=("$f" "${f#/usr}")
done
while IFS= read -r line; do
	[[ "$line" == *": /"* ]] || continue # "diversion by ..." lines
	pkg="${line%%: *}" path="${line#*: }"
	owner["$path"]="${pkg%%,*}"
done < <(dpkg -S "${cands[@]}" 2>/dev/null || true)
owner["$certs"]=ca-certificates # made by update-ca-certificates, in no package's list
mapfile -t pkgs < <(printf '%s\n' "${owner[@]}" | sort -u)
while IFS=$'\t' read -r p v; do
	version["$p"]="$v"
done < <(dpkg-query -W -f='${Package}:${Architecture}\t${Version}\n' "${pkgs[@]}" 2>/dev/null)
for f in "${files[@]}"; do
	p="${owner[$f]:-${owner[${f#/usr}]:-}}"
	if [ -z "$p" ]; then
		echo "image-rootfs: $comp: warning: $f is in no Debian package" >&2
		printf '%s\t-\t-\n' "$f"
	else
		printf '%s\t%s\t%s\n' "$f" "$p" "${version[$p]:-${version[$p:all]:-?}}"
	fi
done >>"$manifest"
copyrights=()
for p in "${pkgs[@]}"; do
	[ ! -f "/usr/share/doc/${p%%:*}/copyright" ] || copyrights+=("/usr/share/doc/${p%%:*}/copyright")
done
[ ${#copyrights[@]} -eq 0 ] || cp --parents -t "$root" "${copyrights[@]}"

# Users, name service, /tmp.
mkdir -p "$root/etc" "$root/tmp" "$root/home/nonroot"
chmod 1777 "$root/tmp"
chmod 0755 "$root/home/nonroot"
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
nonroot:x:65532:
EOF
cat >"$root/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files dns
EOF

# base.tar: sorted, fixed owners and times; nonroot owns its home.
epoch="${SOURCE_DATE_EPOCH:-0}"
tar --sort=name --numeric-owner --owner=0 --group=0 --mtime="@$epoch" -C "$root" \
	--exclude=./home/nonroot -cf "$out/base.tar" .
tar --sort=name --numeric-owner --owner=65532 --group=65532 --mtime="@$epoch" -C "$root" \
	-rf "$out/base.tar" ./home/nonroot
nfiles="$(grep -vc '^#' "$manifest")"
rm -rf "$root"
echo "image-rootfs: $comp: $nfiles files from" \
	"${#pkgs[@]} packages, ${#plugins[@]} plugins," \
	"base.tar $(du -k "$out/base.tar" | cut -f1) KiB"
