# Sourced by build-core.sh and build-exits.sh: assembling a one-layer image from busybox-static and
# binaries of installed Debian packages, reproducibly, and loading it into the local Docker engine.
#
# A stage is a directory that becomes the image's only layer: busybox and its applet links
# (`stage_base`), package binaries with the shared libraries ldd lists at the same paths
# (`stage_binary`), then a rootfs folder of the repository. `load_stage` tars it with fixed owners,
# modes and times, writes a config with a fixed creation time, and loads it unless the engine
# already has that exact image: the same packages and files give the same image ID (the sha256 of
# the config), which the catalog pins. The caller sets `die` and IMG_* (see load_stage).

# shellcheck shell=bash

json_string() { local s=$1; s=${s//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }
json_array() { local out='' item; for item in "$@"; do out+=${out:+,}$(json_string "$item"); done; printf '[%s]' "$out"; }

# Copies a file into the stage at `target` (default: its own path), following symlinks.
put() {
  local stage=$1 source=$2 target=${3:-$2}
  [[ -d $stage/${target%/*} ]] || mkdir -p "$stage/${target%/*}"
  cp -L "$source" "$stage/$target"
  chmod 0755 "$stage/$target"
}

# A binary and the shared libraries ldd lists for it; a library the stage holds already (libc for
# every binary after the first) is not copied again: the same file would land at the same path.
put_with_libraries() {
  local stage=$1 source=$2 target=${3:-$2} lib
  put "$stage" "$source" "$target"
  while read -r lib; do [[ -e $stage/$lib ]] || put "$stage" "$lib"; done < <(ldd "$source" 2>/dev/null | sed -n 's/^[^/]*\(\/[^ ]*\) (0x.*/\1/p' | sort -u)
}

# busybox-static with a link per applet, except `ip` and the iptables ones (iproute2 and
# iptables-nft take those names where an image has them), and the account files.
base_stage() {
  local stage=$1 busybox=$2 applet
  mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,tmp,root,run,var}
  put "$stage" "$busybox" /bin/busybox
  while IFS= read -r applet; do
    case $applet in linuxrc | bin/busybox | */*/*/* | *ip | *iptables*) continue ;; esac
    [[ -e $stage/$applet || -L $stage/$applet ]] || ln -s /bin/busybox "$stage/$applet"
  done < <("$busybox" --list-full)
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$stage/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$stage/etc/group"
  printf 'hosts: files dns\n' >"$stage/etc/nsswitch.conf"
}

# iproute2's ip and iptables-nft (with its extensions) under the names scripts call.
stage_ip_and_iptables() {
  local stage=$1 ip_bin name ext
  ip_bin=$(command -v ip) || die "ip not found: apt-get install iproute2"
  put_with_libraries "$stage" "$(readlink -f "$ip_bin")" /usr/sbin/ip
  put_with_libraries "$stage" /usr/sbin/xtables-nft-multi
  for name in iptables iptables-restore iptables-save; do ln -s xtables-nft-multi "$stage/usr/sbin/$name"; done
  for ext in /usr/lib/x86_64-linux-gnu/xtables/*.so; do put_with_libraries "$stage" "$ext"; done
}

package_version() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo unknown; }

# Tars the stage into one layer and loads the image `tag` unless the engine has it already.
# IMG_TITLE, IMG_VERSION, IMG_PACKAGES (under the label IMG_PACKAGES_LABEL), IMG_CMD, IMG_ENV, IMG_LABELS (JSON members, may be empty)
# and IMG_CREATED_BY describe it. Optional: IMG_USER ("uid:gid", the config's User) and
# IMG_DATA_DIRS (directories created empty and owned by IMG_USER: volume mount points). Sets
# LOADED_ID to sha256:<config digest>.
load_stage() {
  local stage=$1 dir=$2 tag=$3 diff config_id label_json user_json='' data_dir
  find "$stage" -type d -exec chmod 0755 {} +
  chmod 1777 "$stage/tmp"
  if [[ -n ${IMG_USER:-} ]]; then
    # Every entry root's but the data directories: owners set here, so the tar can keep them.
    chown -R 0:0 "$stage"
    for data_dir in "${IMG_DATA_DIRS[@]}"; do
      mkdir -p "$stage$data_dir"
      chown "$IMG_USER" "$stage$data_dir"
    done
    tar --sort=name --mtime=@0 --numeric-owner --format=gnu --no-acls --no-xattrs --no-selinux \
      -C "$stage" -cf "$dir/layer.tar" .
    user_json=,$(json_string User):$(json_string "$IMG_USER")
  else
    tar --sort=name --mtime=@0 --numeric-owner --owner=0 --group=0 --format=gnu --no-acls --no-xattrs --no-selinux \
      -C "$stage" -cf "$dir/layer.tar" .
  fi
  diff=$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)
  label_json=$(json_string org.opencontainers.image.title):$(json_string "$IMG_TITLE")
  label_json+=,$(json_string org.opencontainers.image.version):$(json_string "$IMG_VERSION")
  label_json+=,$(json_string "${IMG_PACKAGES_LABEL:-ngo.pic.core.packages}"):$(json_string "$IMG_PACKAGES")
  label_json+=${IMG_LABELS:+,$IMG_LABELS}
  printf '{"architecture":"amd64","config":{"Cmd":%s,"Env":%s,"Labels":{%s}%s},"created":"%s","history":[{"created":"%s","created_by":"%s"}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$(json_array "${IMG_CMD[@]}")" "$(json_array PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "${IMG_ENV[@]}")" \
    "$label_json" "$user_json" "$EPOCH" "$EPOCH" "$IMG_CREATED_BY" "$diff" >"$dir/config.json"
  config_id=$(sha256sum "$dir/config.json" | cut -d' ' -f1)
  if [[ $(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true) != "sha256:$config_id" ]]; then
    mkdir -p "$dir/archive/$diff"
    mv "$dir/layer.tar" "$dir/archive/$diff/layer.tar"
    cp "$dir/config.json" "$dir/archive/$config_id.json"
    printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$config_id" "$tag" "$diff" >"$dir/archive/manifest.json"
    tar -C "$dir/archive" -cf "$dir/image.tar" manifest.json "$config_id.json" "$diff"
    docker load -q -i "$dir/image.tar" >/dev/null
  fi
  LOADED_ID=sha256:$config_id
}
