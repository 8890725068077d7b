#!/usr/bin/env bash
# Runs every example image the way its compose template does, on a throwaway Docker network,
# and checks it from the host with curl: pages, health checks, the notes account API, the
# account commands of calendar and files (the email image has its own end-to-end test), and the Basic auth that follows them.
#
# Everything it creates is named pic-example-check-<random> (containers, volumes, network) and
# removed on exit; it never touches cell-* containers or cell-network. It runs the images by the
# IDs pinned in examples/store, so build them first: examples/images/build.sh and build-apps.sh
#
#   smoke-test.sh [--keep]    --keep leaves the containers running for a closer look
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE
readonly STORE=$HERE/../store/services
keep=false
[[ ${1:-} == --keep ]] && keep=true

command -v curl >/dev/null || { echo "smoke-test.sh: needs curl" >&2; exit 1; }
"$HERE/build.sh" --check >/dev/null || { echo "smoke-test.sh: images missing or stale; run examples/images/build.sh first" >&2; exit 1; }
"$HERE/build-apps.sh" >/dev/null || { echo "smoke-test.sh: calendar/files images differ from their pins (examples/images/build-apps.sh)" >&2; exit 1; }

RUN_ID=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
readonly P=pic-example-check RUN_ID
NET=$P-$RUN_ID
failures=0

cleanup() {
  if [[ $keep == true ]]; then
    echo "kept: containers $P-*-$RUN_ID, network $NET (remove them with: docker rm -f \$(docker ps -aq --filter name=-$RUN_ID); docker volume rm \$(docker volume ls -q --filter name=-$RUN_ID); docker network rm $NET)"
    return
  fi
  docker ps -aq --filter "name=^$P-.*-$RUN_ID\$" | xargs -r docker rm -f >/dev/null
  docker volume ls -q --filter "name=^$P-.*-$RUN_ID\$" | xargs -r docker volume rm >/dev/null
  docker network rm "$NET" >/dev/null 2>&1 || true
}
trap cleanup EXIT

pass() { printf 'ok    %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; failures=$((failures + 1)); }
expect() { # expect WHAT WANT GOT
  if [[ $2 == "$3" ]]; then pass "$1 ($3)"; else fail "$1: wanted $2, got $3"; fi
}

pinned() { grep -ohE "git\.pic\.ngo/roof/pic-$1@sha256:[0-9a-f]{64}" "$STORE"/*/compose-template.yml | head -n1 | sed 's/.*@//'; }

# A /24 whose upper half is Docker's dynamic range, so the fixed addresses below (.20-.29, like
# the cell's service pool) never meet a container that got its address dynamically.
for attempt in 1 2 3 4 5; do
  octet=$((RANDOM % 200 + 20))
  if docker network create --subnet "10.251.$octet.0/24" --ip-range "10.251.$octet.128/25" "$NET" >/dev/null 2>&1; then break; fi
  [[ $attempt -lt 5 ]] || { echo "smoke-test.sh: could not create a test network" >&2; exit 1; }
done
BASE=10.251.$octet
echo "network $NET ($BASE.0/24)"

run() { # run NAME IP|- IMAGE HEALTH-URL [docker run options...]
  local name=$1 ip=$2 image=$3 health=$4
  shift 4
  local -a net=(--network "$NET")
  [[ $ip == - ]] || net+=(--ip "$ip")
  docker run -d --name "$P-$name-$RUN_ID" "${net[@]}" --restart unless-stopped \
    --health-cmd "wget -q -O /dev/null $health" --health-interval 1s --health-retries 3 \
    "$@" "$(pinned "$image")" >/dev/null
}

vol() { echo "$P-$1-$RUN_ID:$2"; }
container() { echo "$P-$1-$RUN_ID"; }
address() { docker inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$(container "$1")"; }
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@"; }

run homepage "$BASE.20" homepage http://127.0.0.1:80/ -v "$(vol homepage-html /www)"
run notes "$BASE.21" notes http://127.0.0.1:8080/ -v "$(vol notes-data /data/notes)" \
  -e NOTES_PORT=8080 -e 'NOTES_TITLE=Demo <notes>' -e NOTES_REGISTRATION=false -e NOTES_LANGUAGE=en \
  -e NOTES_DOMAIN=demo.pic.test -e NOTES_DATA=/data/notes
run calendar "$BASE.23" calendar http://127.0.0.1:5232/ -v "$(vol calendar-data /data/calendar)" -e CAL_DATA=/data/calendar
run files "$BASE.24" files http://127.0.0.1:8080/.pic/ -v "$(vol files-data /data/files)" -v "$(vol files-accounts /data/accounts)" \
  -e FILES_DATA=/data/files -e FILES_ACCOUNTS=/data/accounts
run webdav - webdav http://127.0.0.1:8080/.pic/ -v "$(vol files-data /data/files)" -v "$(vol files-accounts /data/accounts)" \
  -e FILES_DATA=/data/files -e FILES_ACCOUNTS=/data/accounts

for name in homepage notes calendar files webdav; do
  state=starting
  for _ in $(seq 1 30); do
    state=$(docker inspect -f '{{.State.Health.Status}}' "$(container "$name")")
    [[ $state == starting ]] || break
    sleep 1
  done
  expect "$name health" healthy "$state"
done

# --- pages ---
expect "homepage /" 200 "$(code "http://$BASE.20/")"
expect "notes / escapes the title (in <title> and <h1>)" 2 "$(curl -s "http://$BASE.21:8080/" | grep -c 'Demo &lt;notes&gt;')"
expect "calendar (Radicale) web page" 200 "$(code "http://$BASE.23:5232/.web/")"
expect "files page" 200 "$(code "http://$BASE.24:8080/.pic/")"
expect "webdav page" 200 "$(code "http://$(address webdav):8080/.pic/")"

# --- notes account API ---
api=http://$BASE.21:8080/service-api/accounts
post() { curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data-binary "$1" "$api"; }
expect "notes list (empty)" '{"accounts":[]}' "$(curl -s "$api")"
expect "notes create alice" 200 "$(post '{"username":"alice","password":"pw-1"}')"
expect "notes create alice again" 409 "$(post '{"username":"alice","password":"pw-2"}')"
expect "notes create with an odd password" 200 "$(post '{"username":"bob.b@home","password":"a \"quoted\" \\ pass/word"}')"
expect "notes create bad username (slash)" 400 "$(post '{"username":"a/b","password":"x"}')"
expect "notes create bad username (space)" 400 "$(post '{"username":"a b","password":"x"}')"
expect "notes create bad username (65 chars)" 400 "$(post "{\"username\":\"$(printf 'u%.0s' $(seq 65))\",\"password\":\"x\"}")"
expect "notes create without password" 400 "$(post '{"username":"carol"}')"
expect "notes create with a non-JSON body" 400 "$(post 'username=carol')"
expect "notes list" '{"accounts":["alice","bob.b@home"]}' "$(curl -s "$api")"
expect "notes delete percent-encoded name" 200 "$(code -X DELETE "$api/bob.b%40home")"
expect "notes delete missing" 404 "$(code -X DELETE "$api/bob.b%40home")"
expect "notes delete body" '{"ok":false,"error":"not found"}' "$(curl -s -X DELETE "$api/nobody")"
expect "notes delete encoded slash" 400 "$(code -X DELETE "$api/a%2Fb")"
expect "notes delete encoded NUL" 400 "$(code -X DELETE "$api/a%00b")"
for i in $(seq 1 20); do post "{\"username\":\"p$i\",\"password\":\"x$i\"}" >"/tmp/$P-$RUN_ID-$i" & done
for i in $(seq 1 5); do post '{"username":"same","password":"x"}' >"/tmp/$P-$RUN_ID-same-$i" & done
wait
created=$(cat /tmp/"$P-$RUN_ID"-[0-9]* | grep -o 200 | wc -l)
same=$(cat /tmp/"$P-$RUN_ID"-same-* | grep -oE '[0-9]{3}' | sort | tr -d '\n')
rm -f /tmp/"$P-$RUN_ID"-*
expect "notes: 20 parallel creates" 20 "$created"
expect "notes: 5 parallel creates of one name" 200409409409409 "$same"
expect "notes: accounts after the parallel creates" 22 "$(curl -s "$api" | tr ',' '\n' | grep -c '"')"
expect "notes: accounts file mode" '600 1000' "$(docker exec "$(container notes)" stat -c '%a %u' /data/notes/accounts)"

# --- account commands ---
status_of() { local rc=0; "$@" >/dev/null 2>&1 || rc=$?; echo "$rc"; }
C=$(container calendar) F=$(container files)

expect "cal-account add (stdin)" 0 "$(printf 'cal pw\n' | status_of docker exec -i "$C" cal-account add alice)"
expect "cal-account add duplicate" 3 "$(status_of docker exec "$C" cal-account add alice other)"
expect "cal-account add bad user" 2 "$(status_of docker exec "$C" cal-account add .hidden pw)"
propfind() { code -X PROPFIND -H "Depth: 0" "$@"; }
expect "calendar without password" 401 "$(propfind "http://$BASE.23:5232/alice/")"
expect "calendar with password" 207 "$(propfind -u 'alice:cal pw' "http://$BASE.23:5232/alice/")"
expect "calendar with wrong password" 401 "$(propfind -u alice:nope "http://$BASE.23:5232/alice/")"
expect "cal-account list" alice "$(docker exec "$C" cal-account list)"
expect "cal-account del" 0 "$(status_of docker exec "$C" cal-account del alice)"
expect "calendar after del" 401 "$(propfind -u 'alice:cal pw' "http://$BASE.23:5232/alice/")"
expect "cal-account del missing" 4 "$(status_of docker exec "$C" cal-account del alice)"

expect "files-account add (stdin)" 0 "$(printf 'files pw\n' | status_of docker exec -i "$F" files-account add alice)"
expect "files-account add duplicate" 3 "$(status_of docker exec "$F" files-account add alice other)"
expect "files-account add bad user" 2 "$(status_of docker exec "$F" files-account add -rf pw)"
docker exec "$F" sh -c 'echo hello > /data/files/alice/hello.txt'
W=http://$(address webdav):8080
expect "webdav with password" hello "$(curl -s -u 'alice:files pw' "$W/dav/alice/hello.txt")"
expect "webdav without password" 401 "$(code "$W/dav/alice/hello.txt")"
expect "files-account del" 0 "$(status_of docker exec "$F" files-account del alice)"
expect "webdav after del" 401 "$(code -u 'alice:files pw' "$W/dav/alice/hello.txt")"
expect "files-account del missing" 4 "$(status_of docker exec "$F" files-account del alice)"

# --- data survives a new container on the same volume, and stop is prompt ---
docker rm -f "$(container notes)" >/dev/null
run notes "$BASE.21" notes http://127.0.0.1:8080/ -v "$(vol notes-data /data/notes)" -e NOTES_DOMAIN=demo.pic.test
sleep 1
expect "notes accounts survive re-creation" 22 "$(curl -s "$api" | tr ',' '\n' | grep -c '"')"
start=$(date +%s)
docker stop "$(container homepage)" "$(container notes)" >/dev/null
expect "docker stop takes under 5 s" true "$([[ $(($(date +%s) - start)) -lt 5 ]] && echo true || echo false)"
expect "stopped on request exits 0" 0 "$(docker inspect -f '{{.State.ExitCode}}' "$(container notes)")"

if [[ $failures -gt 0 ]]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
