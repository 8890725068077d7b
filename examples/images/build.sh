#!/usr/bin/env bash
# Builds the example store images from Debian's busybox-static and the files under
# examples/images/<image>/, reproducibly, and loads them into the local Docker engine.
#
# Each image is a docker-archive assembled here by hand: a shared base layer (busybox and its
# applet links, /etc/passwd, the account-store library), one layer of the image's own files, and a
# config with fixed fields. Tar entries get fixed owners, modes and mtimes, and the config has a
# fixed creation time, so the same inputs always give the same bytes. Docker's image ID is the
# sha256 of the config bytes, which is the digest the example manifests pin.
#
#   build.sh          build what is missing, load it, and check the pins in examples/store
#   build.sh --pin    build, then write the fresh image IDs into examples/store and inputs.lock
#   build.sh --check  build nothing; exit 0 only if every image is loaded with its pinned ID
#                     and no input file changed since the last --pin
#
# Nothing here reads the network. It creates images only: no containers, networks or volumes.
set -euo pipefail

export LC_ALL=C TZ=UTC
umask 022

readonly REPO_PREFIX=git.pic.ngo/roof/pic-
readonly IMAGES=(homepage notes)
# Owner of the data directories inside the images; the services run as this user.
readonly SERVICE_UID=1000 SERVICE_GID=1000
readonly EPOCH=1970-01-01T00:00:00Z
# Marks our images, so a superseded one can be told apart from anything else on the engine.
readonly IMAGE_SOURCE_LABEL="examples/images in the pic repository"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE
readonly STORE=$HERE/../store/services
readonly LOCK_FILE=$HERE/inputs.lock
readonly BUSYBOX=${BUSYBOX:-/bin/busybox}

die() {
  printf 'build.sh: %s\n' "$*" >&2
  exit 1
}

usage() {
  sed -n '2,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

mode=build
case ${1:-} in
  '') ;;
  --pin) mode=pin ;;
  --check) mode=check ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
esac
[[ $# -le 1 ]] || { usage >&2; exit 2; }

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (is dockerd running, may this user use it?)"
[[ -x $BUSYBOX ]] || die "$BUSYBOX not found: apt-get install busybox-static (or set BUSYBOX=/path/to/static/busybox)"
if command -v ldd >/dev/null && ldd "$BUSYBOX" >/dev/null 2>&1; then
  die "$BUSYBOX is dynamically linked; the images have no libc, so they need busybox-static"
fi

ARCH=$(dpkg --print-architecture 2>/dev/null || uname -m)
case $ARCH in x86_64) ARCH=amd64 ;; aarch64) ARCH=arm64 ;; esac
readonly ARCH
BUSYBOX_VERSION=$(dpkg-query -W -f '${Version}' busybox-static 2>/dev/null || "$BUSYBOX" 2>&1 | sed -n '1s/^BusyBox \(v[^ ]*\).*/\1/p')
readonly BUSYBOX_VERSION

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pic-example-images.XXXXXX")
readonly TMP
trap 'rm -rf "$TMP"' EXIT

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

json_string() {
  local s=$1
  [[ $s != *[[:cntrl:]]* ]] || die "control character in image metadata: $s"
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}

json_array() {
  local out='' item
  for item in "$@"; do out+=${out:+,}$(json_string "$item"); done
  printf '[%s]' "$out"
}

# --- inputs -------------------------------------------------------------------------------------

# One line per input that decides an image's bytes: "<kind> <mode> <sha256> <path>".
# Paths are relative to examples/images; the busybox binary is named by its package version.
list_tree_inputs() {
  local root=$1 path rel kind mode sum
  [[ -d $HERE/$root ]] || return 0
  while IFS= read -r -d '' path; do
    rel=${path#"$HERE"/}
    if [[ -L $path ]]; then
      kind=symlink mode=0777 sum=$(printf '%s' "$(readlink "$path")" | sha256sum | cut -d' ' -f1)
    elif [[ -f $path ]]; then
      kind=file sum=$(sha256_of "$path")
      if [[ -x $path ]]; then mode=0755; else mode=0644; fi
    elif [[ -d $path ]]; then
      continue
    else
      die "$rel: only regular files, directories and symlinks may go into an image"
    fi
    printf '%s %s %s %s\n' "$kind" "$mode" "$sum" "$rel"
  done < <(find "$HERE/$root" -print0 | sort -z)
}

list_inputs() {
  local image=$1
  printf 'busybox 0755 %s busybox-static=%s\n' "$(sha256_of "$BUSYBOX")" "$BUSYBOX_VERSION"
  list_tree_inputs base/rootfs
  printf 'file 0644 %s %s/image.conf\n' "$(sha256_of "$HERE/$image/image.conf")" "$image"
  list_tree_inputs "$image/rootfs"
}

recorded_inputs() {
  local image=$1
  [[ -f $LOCK_FILE ]] || return 0
  awk -v img="pic-$image" '$1 == img && $2 != "image" { sub(/^[^ ]+ /, ""); print }' "$LOCK_FILE"
}

# Names what differs between the inputs recorded at the last --pin and the current ones. The
# busybox line carries the package version in its path column, so an upgrade shows as removed +
# added, and a changed binary under the same version as changed content.
describe_input_changes() {
  local image=$1
  if [[ ! -f $LOCK_FILE ]]; then
    echo "    no inputs.lock recorded yet, so the previous inputs are unknown"
    return
  fi
  { diff <(recorded_inputs "$image") <(list_inputs "$image") || true; } |
    awk '
      /^[<>] / {
        side = $1; path = $5
        if (!(path in seen)) { order[++n] = path; seen[path] = 1 }
        if (side == "<") old[path] = $2 " " $3 " " $4; else new[path] = $2 " " $3 " " $4
      }
      END {
        for (i = 1; i <= n; i++) {
          p = order[i]
          if (!(p in old)) what = "added"
          else if (!(p in new)) what = "removed"
          else {
            split(old[p], o, " "); split(new[p], w, " ")
            what = (o[1] != w[1]) ? "changed kind" : (o[2] != w[2]) ? "mode " o[2] " -> " w[2] : "content changed (sha256 " substr(o[3], 1, 12) " -> " substr(w[3], 1, 12) ")"
          }
          printf "    %s: %s\n", p, what
        }
        if (n == 0) print "    no input file changed; the recipe in build.sh, GNU tar or the architecture did"
      }'
}

# --- layers and config --------------------------------------------------------------------------

tar_deterministic() {
  tar --sort=name --mtime=@0 --numeric-owner --format=gnu --no-acls --no-xattrs --no-selinux "$@"
}

# Copies a source tree into a staging directory with normalised modes: 0755 for directories and
# executables, 0644 for everything else.
stage_tree() {
  local from=$1 to=$2
  mkdir -p "$to"
  [[ -d $from ]] || return 0
  cp -a --no-preserve=ownership "$from/." "$to/"
  find "$to" -type d -exec chmod 0755 {} +
  find "$to" -type f -perm /111 -exec chmod 0755 {} +
  find "$to" -type f ! -perm /111 -exec chmod 0644 {} +
}

top_level_entries() { (cd "$1" && ls -A); }

build_base_layer() {
  local stage=$TMP/base-stage applet
  stage_tree "$HERE/base/rootfs" "$stage"
  mkdir -p "$stage/bin" "$stage/sbin" "$stage/usr/bin" "$stage/usr/sbin" "$stage/usr/local/bin" "$stage/tmp" "$stage/root"
  cp "$BUSYBOX" "$stage/bin/busybox"
  chmod 0755 "$stage/bin/busybox"
  while IFS= read -r applet; do
    case $applet in linuxrc | bin/busybox | */*/*/*) continue ;; esac
    [[ -e $stage/$applet || -L $stage/$applet ]] || ln -s /bin/busybox "$stage/$applet"
  done < <("$BUSYBOX" --list-full)
  find "$stage" -type d -exec chmod 0755 {} +
  chmod 1777 "$stage/tmp"
  chmod 0700 "$stage/root"
  # shellcheck disable=SC2046
  tar_deterministic --owner=0 --group=0 -C "$stage" -cf "$TMP/base.tar" $(top_level_entries "$stage")
}

# Reads examples/images/<image>/image.conf into the IMG_* variables.
read_image_conf() {
  local image=$1 VERSION='' DESCRIPTION='' USER_ID='' WORKDIR=/
  local -a CMD=() PORTS=() ENV=() DATA_DIRS=()
  [[ -f $HERE/$image/image.conf ]] || die "$image/image.conf is missing"
  # shellcheck disable=SC1090
  source "$HERE/$image/image.conf"
  [[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "$image/image.conf: VERSION must be semver, got '$VERSION'"
  [[ ${#CMD[@]} -gt 0 ]] || die "$image/image.conf: CMD is empty"
  IMG_VERSION=$VERSION IMG_DESCRIPTION=$DESCRIPTION IMG_USER=${USER_ID:-$SERVICE_UID:$SERVICE_GID} IMG_WORKDIR=$WORKDIR
  IMG_CMD=("${CMD[@]}") IMG_PORTS=("${PORTS[@]}") IMG_ENV=("${ENV[@]}") IMG_DATA_DIRS=("${DATA_DIRS[@]}")
}

# The image's own layer: its rootfs as root-owned files, then its data directories (the mount
# points of its named volumes) owned by the service user, so a fresh volume starts writable.
build_service_layer() {
  local image=$1 out=$2
  local stage=$TMP/$image/stage data_stage=$TMP/$image/data-stage dir rel
  local -a data_rel=()
  stage_tree "$HERE/$image/rootfs" "$stage"
  mkdir -p "$data_stage"
  for dir in "${IMG_DATA_DIRS[@]}"; do
    [[ $dir =~ ^/[a-z0-9/_-]+$ && $dir != */ ]] || die "$image/image.conf: bad DATA_DIRS entry '$dir'"
    rel=${dir#/}
    if [[ -e $stage/$rel ]]; then die "$image: $dir must not exist in rootfs; it is created empty for a volume"; fi
    [[ $rel != */* ]] || mkdir -p "$stage/${rel%/*}"
    mkdir -p "$data_stage/$rel"
    data_rel+=("$rel")
  done
  find "$stage" -type d -exec chmod 0755 {} +
  find "$data_stage" -type d -exec chmod 0755 {} +
  # shellcheck disable=SC2046
  tar_deterministic --owner=0 --group=0 -C "$stage" -cf "$out" $(top_level_entries "$stage")
  if [[ ${#data_rel[@]} -gt 0 ]]; then
    tar_deterministic --owner="$SERVICE_UID" --group="$SERVICE_GID" --no-recursion -C "$data_stage" -rf "$out" "${data_rel[@]}"
  fi
}

write_config() {
  local image=$1 base_diff=$2 svc_diff=$3 out=$4 ports='' port labels
  for port in "${IMG_PORTS[@]}"; do
    [[ $port =~ ^[0-9]{1,5}/(tcp|udp)$ ]] || die "$image/image.conf: bad port '$port'"
    ports+=${ports:+,}"\"$port\":{}"
  done
  labels=$(printf '{%s:%s,%s:%s,%s:%s,%s:%s}' \
    '"org.opencontainers.image.description"' "$(json_string "$IMG_DESCRIPTION")" \
    '"org.opencontainers.image.source"' "$(json_string "$IMAGE_SOURCE_LABEL")" \
    '"org.opencontainers.image.title"' "$(json_string "pic-$image")" \
    '"org.opencontainers.image.version"' "$(json_string "$IMG_VERSION")")
  printf '{"architecture":%s,"config":{"Cmd":%s,"Env":%s,"ExposedPorts":{%s},"Labels":%s,"User":%s,"WorkingDir":%s},"created":"%s","history":[{"created":"%s","created_by":"busybox-static and examples/images/base"},{"created":"%s","created_by":%s}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s","sha256:%s"]}}' \
    "$(json_string "$ARCH")" "$(json_array "${IMG_CMD[@]}")" \
    "$(json_array "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "${IMG_ENV[@]}")" \
    "$ports" "$labels" "$(json_string "$IMG_USER")" "$(json_string "$IMG_WORKDIR")" \
    "$EPOCH" "$EPOCH" "$EPOCH" "$(json_string "examples/images/$image")" \
    "$base_diff" "$svc_diff" >"$out"
}

local_image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }

# Builds one image and makes sure the engine has it under its tag. Sets BUILT_ID and LOAD_STATE.
build_image() {
  local image=$1
  local dir=$TMP/$image base_diff svc_diff config_id tag previous
  tag=$REPO_PREFIX$image:$IMG_VERSION
  mkdir -p "$dir"
  build_service_layer "$image" "$dir/layer.tar"
  base_diff=$(sha256_of "$TMP/base.tar")
  svc_diff=$(sha256_of "$dir/layer.tar")
  write_config "$image" "$base_diff" "$svc_diff" "$dir/config.json"
  config_id=$(sha256_of "$dir/config.json")
  BUILT_ID=sha256:$config_id

  previous=$(local_image_id "$tag")
  if [[ $previous == "$BUILT_ID" ]]; then
    LOAD_STATE="up to date"
    return
  fi
  if [[ -n $(local_image_id "$BUILT_ID") ]]; then
    docker tag "$BUILT_ID" "$tag"
    LOAD_STATE=tagged
  else
    load_archive "$image" "$tag" "$base_diff" "$svc_diff" "$config_id"
    LOAD_STATE=loaded
  fi
}

load_archive() {
  local image=$1 tag=$2 base_diff=$3 svc_diff=$4 config_id=$5
  local dir=$TMP/$image archive=$TMP/$image/archive
  mkdir -p "$archive/$base_diff" "$archive/$svc_diff"
  cp "$TMP/base.tar" "$archive/$base_diff/layer.tar"
  cp "$dir/layer.tar" "$archive/$svc_diff/layer.tar"
  cp "$dir/config.json" "$archive/$config_id.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar","%s/layer.tar"]}]' \
    "$config_id" "$tag" "$base_diff" "$svc_diff" >"$archive/manifest.json"
  tar -C "$archive" -cf "$dir/image.tar" manifest.json "$config_id.json" "$base_diff" "$svc_diff"
  docker load -q -i "$dir/image.tar" >/dev/null
  [[ $(local_image_id "$tag") == "$BUILT_ID" ]] ||
    die "pic-$image: docker load gave $(local_image_id "$tag"), expected $BUILT_ID (this engine does not use the config digest as image ID)"
}

# Once a build is accepted (it matches its pin, or --pin adopts it), earlier builds of the same
# image that no tag points to any more are removed, unless a container still uses one (docker
# refuses then, and it stays). Only images carrying our labels are considered. A rejected build
# leaves the pinned image in place.
remove_superseded() {
  local image=$1 old
  for old in $(docker images -q --no-trunc --filter dangling=true \
    --filter "label=org.opencontainers.image.source=$IMAGE_SOURCE_LABEL" \
    --filter "label=org.opencontainers.image.title=pic-$image"); do
    [[ $old == "$BUILT_ID" ]] || docker image rm "$old" >/dev/null 2>&1 || true
  done
}

# --- pins in examples/store ----------------------------------------------------------------------

# Prints "<file> <digest>" for every reference to the image in a manifest or compose template.
pinned_references() {
  local image=$1 file ref
  for file in "$STORE"/*/manifest.json "$STORE"/*/compose-template.yml; do
    [[ -f $file ]] || continue
    while IFS= read -r ref; do
      printf '%s %s\n' "${file#"$STORE"/}" "${ref#*@}"
    done < <(grep -oE "${REPO_PREFIX//./\\.}$image(@sha256:[0-9a-f]{64}|:[A-Za-z0-9._-]+)" "$file" | sed 's/^[^@:]*:[^@]*$/&@unpinned/' || true)
  done
}

rewrite_pins() {
  local image=$1 id=$2 file tmp changed=()
  for file in "$STORE"/*/manifest.json "$STORE"/*/compose-template.yml; do
    [[ -f $file ]] || continue
    tmp=$file.pin-tmp
    sed -E "s#(${REPO_PREFIX//./\\.}$image)(@sha256:[0-9a-f]{64}|:[A-Za-z0-9._-]+)#\\1@$id#g" "$file" >"$tmp"
    if cmp -s "$file" "$tmp"; then rm -f "$tmp"; else mv "$tmp" "$file"; changed+=("${file#"$STORE"/}"); fi
  done
  [[ ${#changed[@]} -eq 0 ]] || printf '  pinned pic-%s to %s in %s\n' "$image" "$id" "${changed[*]}"
}

write_lock() {
  local image tmp=$LOCK_FILE.tmp
  {
    echo "# Written by build.sh --pin: each image's pinned ID and the inputs it was built from."
    echo "# build.sh and build.sh --check compare against it to name what changed."
    for image in "${IMAGES[@]}"; do
      read_image_conf "$image"
      printf 'pic-%s image %s\n' "$image" "$(pinned_id_of "$image")"
      list_inputs "$image" | sed "s/^/pic-$image /"
    done
  } >"$tmp"
  if [[ -f $LOCK_FILE ]] && cmp -s "$tmp" "$LOCK_FILE"; then rm -f "$tmp"; else mv "$tmp" "$LOCK_FILE"; echo "  wrote inputs.lock"; fi
}

# The one digest the catalog pins for the image, or a message on stderr and status 1.
pinned_id_of() {
  local image=$1 refs digests
  refs=$(pinned_references "$image")
  if [[ -z $refs ]]; then
    echo "pic-$image is not referenced by any manifest.json or compose-template.yml in examples/store" >&2
    return 1
  fi
  if grep -q ' unpinned$' <<<"$refs"; then
    echo "pic-$image is referenced by tag, not by digest, in: $(grep ' unpinned$' <<<"$refs" | cut -d' ' -f1 | tr '\n' ' ')" >&2
    return 1
  fi
  digests=$(cut -d' ' -f2 <<<"$refs" | sort -u)
  if [[ $(wc -l <<<"$digests") -ne 1 ]]; then
    echo "pic-$image is pinned inconsistently:" >&2
    sed 's/^/    /' <<<"$refs" >&2
    return 1
  fi
  printf '%s\n' "$digests"
}

pinned_files_of() { pinned_references "$1" | cut -d' ' -f1 | sort -u | tr '\n' ' ' | sed 's/ $//'; }

# --- modes ----------------------------------------------------------------------------------------

check_only() {
  local image tag pinned have failed=0
  for image in "${IMAGES[@]}"; do
    read_image_conf "$image"
    tag=$REPO_PREFIX$image:$IMG_VERSION
    if ! pinned=$(pinned_id_of "$image" 2>"$TMP/err"); then
      printf 'pic-%-9s %s\n' "$image" "$(head -n1 "$TMP/err")"
      failed=1
      continue
    fi
    have=$(local_image_id "$tag")
    if [[ $have != "$pinned" ]]; then
      printf 'pic-%-9s not loaded with the pinned ID (have %s, pinned %s)\n' "$image" "${have:-nothing}" "$pinned"
      failed=1
    elif ! cmp -s <(recorded_inputs "$image") <(list_inputs "$image"); then
      printf 'pic-%-9s inputs changed since the last --pin:\n' "$image"
      describe_input_changes "$image"
      failed=1
    else
      printf 'pic-%-9s %s ok\n' "$image" "$pinned"
    fi
  done
  return "$failed"
}

build_all() {
  local image tag pinned failed=0 stale_lock=0
  local -A built=()
  build_base_layer
  for image in "${IMAGES[@]}"; do
    read_image_conf "$image"
    tag=$REPO_PREFIX$image:$IMG_VERSION
    build_image "$image"
    built[$image]=$BUILT_ID
    if [[ $mode == pin ]]; then
      printf '%-36s %s %s\n' "$tag" "$BUILT_ID" "$LOAD_STATE"
      remove_superseded "$image"
      continue
    fi
    if ! pinned=$(pinned_id_of "$image" 2>"$TMP/err"); then
      printf '%-36s %s %s; NOT PINNED\n' "$tag" "$BUILT_ID" "$LOAD_STATE"
      sed 's/^/    /' "$TMP/err" >&2
      failed=1
    elif [[ $pinned != "$BUILT_ID" ]]; then
      printf '%-36s %s %s; PIN MISMATCH\n' "$tag" "$BUILT_ID" "$LOAD_STATE"
      {
        printf '  pic-%s: built %s but examples/store pins %s (%s).\n' "$image" "$BUILT_ID" "$pinned" "$(pinned_files_of "$image")"
        echo "  Changed since the last --pin:"
        describe_input_changes "$image"
      } >&2
      failed=1
    else
      printf '%-36s %s %s; pinned in %s\n' "$tag" "$BUILT_ID" "$LOAD_STATE" "$(pinned_files_of "$image")"
      remove_superseded "$image"
      cmp -s <(recorded_inputs "$image") <(list_inputs "$image") || stale_lock=1
    fi
  done

  if [[ $mode == pin ]]; then
    for image in "${IMAGES[@]}"; do rewrite_pins "$image" "${built[$image]}"; done
    write_lock
    return 0
  fi
  if [[ $failed -ne 0 ]]; then
    echo "build.sh: the images above do not match the digests pinned in examples/store." >&2
    echo "If the change is intended, run examples/images/build.sh --pin and commit the updated manifests." >&2
    return 1
  fi
  if [[ $stale_lock -ne 0 ]]; then
    echo "build.sh: images match their pins but inputs.lock is out of date; run examples/images/build.sh --pin to refresh it" >&2
  fi
}

case $mode in
  check) check_only ;;
  build | pin) build_all ;;
esac
