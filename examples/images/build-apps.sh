#!/usr/bin/env bash
# Builds the images of the example catalog's applications from Debian packages, reproducibly,
# and loads them into the local Docker engine:
#
#   pic-calendar  calendar: Radicale (python3-radicale) serving CalDAV and CardDAV on port 5232,
#                 with the python3 interpreter and only the modules Radicale and its plugins import
#   pic-files     files: Apache httpd (apache2-bin) on port 8080, a read-only web view of each
#                 person's folder
#   pic-webdav    files: the same layer as pic-files, started as the WebDAV endpoint (mod_dav)
#   pic-mail      email: Postfix and Dovecot (IMAPS, submission, SMTP, LMTP), staged by stage_mail in
#                 apps/mail.sh; tagged 2.0.0, and it runs as root (its daemons drop to their users)
#
# Each image is one layer (debian-image.sh): busybox-static and its applets, the package files
# with the shared libraries ldd lists (at the same paths), examples/images/base/rootfs (the account
# store library and pic-init) and examples/images/<app>/rootfs. Fixed owners, modes and times: the
# same packages give the same image ID, which examples/store/services/<service>/ pins. The
# services run as uid 1000 (pic); their data directories are created owned by it.
#
#   build-apps.sh [--pin] [APP...]      APP: calendar files mail (default: all)
#
# Without --pin, fails when a built image differs from the digest its catalog folder pins; with
# --pin, writes the new digests there. Prints one line per image: "<tag> sha256:<id>".
# Nothing here creates containers, networks or volumes.
set -euo pipefail
export LC_ALL=C TZ=UTC
umask 022

readonly VERSION=1.0.0 EPOCH=1970-01-01T00:00:00Z PREFIX=git.pic.ngo/roof/pic-
readonly ALL_APPS=(calendar files mail)
readonly SERVICE_UID=1000 SERVICE_GID=1000
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE BUSYBOX=${BUSYBOX:-/bin/busybox} STORE=$HERE/../store/services
readonly PYTHON_SITE=/usr/lib/python3/dist-packages
# glibc loads libgcc_s at run time (thread exit and cancellation): no ldd lists it.
readonly LIBGCC=/lib/x86_64-linux-gnu/libgcc_s.so.1
die() { printf 'build-apps.sh: %s\n' "$*" >&2; exit 1; }
# shellcheck source=debian-image.sh
source "$HERE/debian-image.sh"
# shellcheck source=apps/mail.sh
source "$HERE/apps/mail.sh"

pin=0
apps=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --pin) pin=1; shift ;;
    -h | --help) sed -n '2,20s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) die "unknown argument '$1'" ;;
    *) [[ " ${ALL_APPS[*]} " == *" $1 "* ]] || die "unknown app '$1' (known: ${ALL_APPS[*]})"; apps+=("$1"); shift ;;
  esac
done
[[ ${#apps[@]} -gt 0 ]] || apps=("${ALL_APPS[@]}")

command -v docker >/dev/null || die "docker is not installed"
[[ -x $BUSYBOX ]] || die "$BUSYBOX not found: apt-get install busybox-static"
need() {
  local path=$1 package=$2
  [[ -e $path ]] || die "$path not found: apt-get install $package"
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pic-app-images.XXXXXX")
readonly TMP
trap 'rm -rf "$TMP"' EXIT

# The python3 interpreter, the named dist-packages (whole, sources and data, no bytecode caches)
# and the standard-library modules that the given modules import, found by Python's own
# modulefinder (static imports followed through the standard library; imports inside functions
# included). Extension modules come with their shared libraries.
stage_python() {
  local stage=$1 modules=$2 python pydir pattern package file matches
  shift 2
  python=$(readlink -f /usr/bin/python3) || die "/usr/bin/python3 not found: apt-get install python3"
  [[ $python == /usr/bin/python3.* ]] || die "/usr/bin/python3 is not Debian's python3 ($python)"
  pydir=/usr/lib/$(basename "$python")
  put_with_libraries "$stage" "$python"
  ln -s "$(basename "$python")" "$stage/usr/bin/python3"
  for pattern in "$@"; do
    # shellcheck disable=SC2206 # a glob: the installed version's metadata folder
    matches=($PYTHON_SITE/$pattern)
    [[ ${#matches[@]} -eq 1 && -e ${matches[0]} ]] || die "$PYTHON_SITE/$pattern: expected one installed match, found: ${matches[*]}"
    package=${matches[0]#"$PYTHON_SITE"/}
    while IFS= read -r -d '' file; do
      mkdir -p "$stage$(dirname "$file")"
      case $file in
        *.so) put_with_libraries "$stage" "$file" ;;
        *) install -m 0644 "$file" "$stage$file" ;;
      esac
    done < <(find "$PYTHON_SITE/$package" -name __pycache__ -prune -o \( -type f -print0 \) | sort -z)
  done
  # shellcheck disable=SC2086 # $modules is a list of module names
  (cd / && LC_ALL=C "$python" -S - "$PYTHON_SITE" $modules) <<'PY' >"$stage.modules" || die "modulefinder failed on: $modules"
import modulefinder, sys
sys.path = [p for p in sys.path if p not in ('', '.')] + [sys.argv[1]]
finder = modulefinder.ModuleFinder(excludes=['tkinter', 'test', 'unittest', 'pydoc', 'doctest', 'lib2to3', 'idlelib', 'ensurepip', 'distutils', 'setuptools', 'pkg_resources', '_winreg', 'winreg', 'msvcrt', '_winapi', 'nt'])
for name in ['site', 'encodings.utf_8', 'encodings.latin_1', 'encodings.ascii', 'encodings.idna', 'encodings.aliases'] + sys.argv[2:]:
    finder.import_hook(name)
for module in finder.modules.values():
    if module.__file__:
        print(module.__file__)
PY
  while IFS= read -r file; do
    case $file in
      "$pydir"/*.so) put_with_libraries "$stage" "$file" ;;
      "$pydir"/*) mkdir -p "$stage$(dirname "$file")"; install -m 0644 "$file" "$stage$file" ;;
      "$PYTHON_SITE"/*) [[ -e $stage$file ]] || die "$modules import $file: add its package to stage_python's list" ;;
      *) die "$modules import $file, outside $pydir and the staged packages" ;;
    esac
  done < <(sort -u "$stage.modules")
  rm -f "$stage.modules"
  IMG_ENV+=(PYTHONDONTWRITEBYTECODE=1)
  IMG_PACKAGES+=" python3=$(package_version python3)"
}

# Radicale and what it loads by name at run time: its storage, auth, rights and web plugins, and
# passlib's bcrypt and apr-md5 handlers (passlib.hash imports them lazily).
stage_calendar() {
  local stage=$1 modules module
  need "$PYTHON_SITE/radicale" python3-radicale
  need "$PYTHON_SITE/bcrypt" python3-bcrypt
  modules='radicale radicale.__main__ radicale.server passlib.hash passlib.handlers.bcrypt passlib.handlers.md5_crypt bcrypt'
  while IFS= read -r module; do modules+=" $module"; done < <(cd "$PYTHON_SITE" && find radicale -name '*.py' ! -name '__init__.py' | sed 's/\.py$//; s#/#.#g' | sort)
  stage_python "$stage" "$modules" radicale vobject dateutil defusedxml passlib bcrypt six.py pytz \
    'Radicale-*.egg-info' 'vobject-*.egg-info' 'python_dateutil-*.egg-info' 'defusedxml-*.egg-info' 'passlib-*.egg-info' \
    'bcrypt-*.egg-info' 'six-*.egg-info' 'pytz-*.egg-info' '_cffi_backend.cpython-*.so'
  IMG_PACKAGES+=" python3-radicale=$(package_version python3-radicale) python3-bcrypt=$(package_version python3-bcrypt) python3-passlib=$(package_version python3-passlib) python3-vobject=$(package_version python3-vobject) python3-dateutil=$(package_version python3-dateutil) python3-defusedxml=$(package_version python3-defusedxml) python3-tz=$(package_version python3-tz) python3-cffi-backend=$(package_version python3-cffi-backend)"
  IMG_CMD=(/usr/local/bin/pic-init /app/start.sh)
  IMG_DATA_DIRS=(/data/calendar)
}

# Apache httpd with only the modules the two configurations load, htpasswd for bcrypt hashes,
# and Debian's MIME types.
stage_files() {
  local stage=$1 module
  need /usr/sbin/apache2 apache2-bin
  need /usr/bin/htpasswd apache2-utils
  need /etc/mime.types media-types
  put_with_libraries "$stage" /usr/sbin/apache2
  for module in mpm_event authn_core authn_file auth_basic authz_core authz_user alias dir autoindex mime dav dav_fs headers rewrite; do
    put_with_libraries "$stage" "/usr/lib/apache2/modules/mod_$module.so"
  done
  # mod_dav_fs keeps locks and dead properties in apr-util's default DBM (Berkeley DB), a DSO
  # apr-util loads by name.
  put_with_libraries "$stage" /usr/lib/x86_64-linux-gnu/apr-util-1/apr_dbm_db-1.so
  put_with_libraries "$stage" /usr/bin/htpasswd
  install -m 0644 /etc/mime.types "$stage/etc/mime.types"
  IMG_PACKAGES+=" apache2-bin=$(package_version apache2-bin) libaprutil1=$(package_version libaprutil1) libdb5.3=$(package_version libdb5.3) apache2-utils=$(package_version apache2-utils) media-types=$(package_version media-types)"
  IMG_CMD=(/usr/local/bin/pic-init /app/start.sh web)
  IMG_DATA_DIRS=(/data/files /data/accounts)
}

# The images each app's stage becomes: "<image> <command...>" (the same layer, another start).
images_of() {
  case $1 in
    calendar) echo calendar ;;
    files) echo files; echo webdav ;;
    mail) echo mail ;;
  esac
}

# The catalog folder (examples/store/services/<folder>) that pins an app's images, its images'
# tag, and the user they run as (empty: root).
service_of() { case $1 in mail) echo email ;; *) echo "$1" ;; esac; }
version_of() { case $1 in mail) echo 2.0.0 ;; *) echo "$VERSION" ;; esac; }
user_of() { case $1 in mail) echo '' ;; *) echo "$SERVICE_UID:$SERVICE_GID" ;; esac; }

# The digests examples/store/services/<service>/ pins for the image, or nothing.
pinned_digest() {
  local service=$1 image=$2
  cat "$STORE/$service/manifest.json" "$STORE/$service/compose-template.yml" 2>/dev/null |
    grep -oE "${PREFIX//./\\.}$image@sha256:[0-9a-f]{64}" | sed 's/.*@//' | sort -u
}

write_pins() {
  local service=$1 image=$2 id=$3 file
  for file in "$STORE/$service/manifest.json" "$STORE/$service/compose-template.yml"; do
    [[ -f $file ]] || die "${file#"$HERE"/../} is missing"
    sed -i -E "s#(${PREFIX//./\\.}$image)(@sha256:[0-9a-f]{64}|:[A-Za-z0-9._-]+)#\\1@$id#g" "$file"
  done
}

failed=0
for app in "${apps[@]}"; do
  start=$SECONDS
  stage=$TMP/$app/stage
  mkdir -p "$stage"
  base_stage "$stage" "$BUSYBOX"
  IMG_ENV=() IMG_PACKAGES="busybox-static=$(package_version busybox-static) libgcc-s1=$(package_version libgcc-s1)" IMG_DATA_DIRS=()
  put_with_libraries "$stage" "$LIBGCC"
  "stage_$app" "$stage"
  cp -a --no-preserve=ownership "$HERE/base/rootfs/." "$stage/"
  cp -a --no-preserve=ownership "$HERE/$app/rootfs/." "$stage/"
  for image in $(images_of "$app"); do
    [[ $image == "$app" ]] || IMG_CMD=(/usr/local/bin/pic-init /app/start.sh "$image")
    mkdir -p "$TMP/$app/$image"
    IMG_TITLE=pic-$image IMG_VERSION=$(version_of "$app") IMG_PACKAGES_LABEL=ngo.pic.image.packages IMG_USER=$(user_of "$app")
    IMG_LABELS='' IMG_CREATED_BY="examples/images/build-apps.sh $app"
    load_stage "$stage" "$TMP/$app/$image" "$PREFIX$image:$IMG_VERSION"
    size=$(docker image inspect -f '{{.Size}}' "$LOADED_ID")
    if [[ $pin -eq 1 ]]; then
      write_pins "$(service_of "$app")" "$image" "$LOADED_ID"
      printf '%s %s pinned in %s (%s MB, %s s)\n' "$PREFIX$image:$IMG_VERSION" "$LOADED_ID" "$(service_of "$app")" "$((size / 1000000))" "$((SECONDS - start))"
    elif [[ $(pinned_digest "$(service_of "$app")" "$image") != "$LOADED_ID" ]]; then
      printf '%s %s PIN MISMATCH: %s pins %s\n' "$PREFIX$image:$IMG_VERSION" "$LOADED_ID" "$(service_of "$app")" "$(pinned_digest "$(service_of "$app")" "$image" | tr '\n' ' ')" >&2
      failed=1
    else
      printf '%s %s (%s MB, %s s)\n' "$PREFIX$image:$IMG_VERSION" "$LOADED_ID" "$((size / 1000000))" "$((SECONDS - start))"
    fi
  done
done
[[ $failed -eq 0 ]] || die "the images above differ from their pins; if intended, run examples/images/build-apps.sh --pin and commit"
