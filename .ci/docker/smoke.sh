#!/usr/bin/env bash
# CI: build the team deployment for real and run the README's `docker compose` sequence against it.
#
#   bash .ci/docker/smoke.sh                 (as root; run by .ci/run)
#   SMOKE_FRESH=1 bash .ci/docker/smoke.sh   (first removes the images an earlier run left)
#
# Proves: the image builds from the unmodified Dockerfile; with a .env made from .env.example (a
# random password) `init`, `import` of the sample and `up -d` work; the db service becomes healthy;
# the labelling app answers with the widget page; Adminer (admin profile) answers and logs in to the
# db; after importing a few labelled texts the orchestrator container writes a model into the
# host's ./models (as a non-root uid, readable by others) and `widgetal status` shows the run;
# Chromium labels one text in the containerised app and the label is in the database; with the
# cluster profile switched on in .env (README "A cluster") the orchestrator's next cycle is
# scored by the dask-worker container through dask-scheduler, as its log, the run's metrics and
# the scheduler say; `docker-compose stop` ends the orchestrator cleanly on SIGTERM.
#
# Docker Hub is unreachable from CI, so the base images are CI-only stand-ins built from Debian
# under the official tags (see .ci/docker/README.md). The compose run happens in a copy of the
# working tree under a project name of its own, so a real deployment on the same machine (its
# .env, ./models, containers and volumes) is never touched. Whatever happens, the services are
# removed with `docker-compose down -v` and a dockerd this script started is stopped; on failure
# the services' logs are printed first. Exits non-zero on any failure.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0 DEBIAN_FRONTEND=noninteractive
export COMPOSE_PROJECT_NAME=widgetalsmoke  # not the README's `widgetal`: never a real deployment
BASE_IMAGE=widgetal-ci/debian:bookworm-minbase
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CHROMIUM=/usr/bin/chromium
SMOKE_UID=1000  # the uid:gid the orchestrator writes ./models as (a user's account, not root)

WORK=$(mktemp -d /tmp/widgetal-smoke.XXXXXX)
APP=$WORK/app
DOCKERD_PID=
T0=$SECONDS

say() { printf '== smoke [%3ds] %s\n' "$((SECONDS - T0))" "$*"; }
fail() { echo "smoke: FAILED: $*" >&2; exit 1; }
dc() { (cd "$APP" && docker-compose "$@"); }
# Retry a check until it succeeds or `timeout` seconds pass.
wait_for() {
  local what=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$what: not within ${timeout}s"
    sleep 2
  done
}
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if [ -f "$APP/.env" ] && docker info >/dev/null 2>&1; then
    if [ "$rc" -ne 0 ]; then
      echo "== smoke: failed (exit $rc); the services' state and logs:"
      dc --profile admin --profile cluster ps
      dc --profile admin --profile cluster logs --no-color --tail=150
    fi
    say "docker-compose down -v"
    dc --profile admin --profile cluster down -v --remove-orphans --timeout 20
  fi
  if [ -n "$DOCKERD_PID" ]; then
    [ "$rc" -eq 0 ] || { echo "== dockerd log (tail)"; tail -n 40 "$WORK/dockerd.log"; }
    say "stopping the dockerd this script started (pid $DOCKERD_PID)"
    kill "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 1; done
    kill -0 "$DOCKERD_PID" 2>/dev/null && kill -9 "$DOCKERD_PID"
  fi
  rm -rf "$WORK"
  if [ "$rc" -eq 0 ]; then say "passed"; else echo "smoke: FAILED after $((SECONDS - T0))s" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ "$(id -u)" = 0 ] || fail "run as root (it starts dockerd and runs debootstrap)"

say "tools"
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
[ -x "$CHROMIUM" ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -q
  apt-get install -y -q "${need[@]}"
fi
python -c "import playwright.sync_api, yaml" || fail "needs playwright and pyyaml (pip install -e '.[test]')"

say "Docker engine"
if ! docker info >/dev/null 2>&1; then
  # Debian's docker.io, with its defaults (overlay2, the docker0 bridge), in the background.
  setsid dockerd >"$WORK/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  wait_for "docker info after starting dockerd" 60 docker info
fi
docker version --format 'engine {{.Server.Version}}'

say "the project's base images"
py_tag=$(awk 'toupper($1) == "FROM" {print $2; exit}' "$ROOT/Dockerfile")
read -r pg_tag adminer_tag < <(python - "$ROOT/docker-compose.yml" <<'EOF'
import sys, yaml
services = yaml.safe_load(open(sys.argv[1]))["services"]
print(services["db"]["image"], services["adminer"]["image"])
EOF
)
torch_pin=$(grep -o 'torch==[0-9][0-9.]*' "$ROOT/Dockerfile" | head -n1)
echo "Dockerfile: FROM $py_tag, $torch_pin; compose: $pg_tag, $adminer_tag"
# The stand-ins hold Debian bookworm's versions: say so if the project moves past them.
[[ $py_tag == python:3.11* ]] || fail "stand-in is Python 3.11 (bookworm), Dockerfile wants $py_tag"
[[ $pg_tag == postgres:15* ]] || fail "stand-in is PostgreSQL 15 (bookworm), compose wants $pg_tag"
[[ $adminer_tag == adminer:4* ]] || fail "stand-in is Adminer 4 (bookworm), compose wants $adminer_tag"
[ -n "$torch_pin" ] || fail "no torch==VERSION pin in the Dockerfile"

if [ "${SMOKE_FRESH:-0}" = 1 ]; then  # as on a new machine: no image from an earlier run
  docker image rm -f "$BASE_IMAGE" "$py_tag" "$pg_tag" "$adminer_tag" widgetal:latest 2>/dev/null || true
  docker builder prune -af >/dev/null 2>&1 || true
fi
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  echo "$BASE_IMAGE: present"
else
  say "debootstrap --variant=minbase bookworm (about a minute)"
  debootstrap --variant=minbase bookworm "$WORK/rootfs" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
    { tail -n 30 "$WORK/debootstrap.log"; fail "debootstrap"; }
  tar -C "$WORK/rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
  rm -rf "$WORK/rootfs"
fi

say "CI-only stand-ins: $py_tag, $pg_tag, $adminer_tag"
ctx=$WORK/python-context
mkdir -p "$ctx/ca" "$ctx/wheels"
cp "$HERE/python/Dockerfile" "$ctx/"
cp /usr/local/share/ca-certificates/*.crt "$ctx/ca/" 2>/dev/null || true
touch "$ctx/ca/.keep"
# The CPU torch wheel, from wherever the host's pip configuration finds it.
python -m pip download -q --no-deps --only-binary=:all: -d "$ctx/wheels" "$torch_pin"
ls "$ctx/wheels" | grep -q '+cpu' || fail "the host's pip found no CPU build of $torch_pin: $(ls "$ctx/wheels")"
docker build -q --build-arg "BASE=$BASE_IMAGE" -t "$py_tag" "$ctx"
docker build -q --build-arg "BASE=$BASE_IMAGE" -t "$pg_tag" "$HERE/postgres"
docker build -q --build-arg "BASE=$BASE_IMAGE" -t "$adminer_tag" "$HERE/adminer"

say "a copy of the working tree (tracked and unignored files)"
mkdir -p "$APP"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
  tar --null --ignore-failed-read -T - -cf -) | tar -C "$APP" -xf -
cd "$APP"

# -- The README's sequence ("A labelling team: docker compose"), `docker compose` spelled
# -- `docker-compose` (Debian's 1.29; there is no compose plugin here).
cp .env.example .env
sed -i "s/^POSTGRES_PASSWORD=.*/POSTGRES_PASSWORD=$(openssl rand -hex 16)/" .env
sed -i "s/^WIDGETAL_UID=.*/WIDGETAL_UID=$(id -u)/; s/^WIDGETAL_GID=.*/WIDGETAL_GID=$(id -g)/" .env
mkdir -p models
# CI's own settings on top. We are root here: write ./models as uid 1000 instead, as a user's
# account would (the folder belongs to that user, as `mkdir` by that user makes it). A short
# retrain interval so the smoke test need not wait a minute, and free ports.
sed -i "s/^WIDGETAL_UID=.*/WIDGETAL_UID=$SMOKE_UID/; s/^WIDGETAL_GID=.*/WIDGETAL_GID=$SMOKE_UID/" .env
chown "$SMOKE_UID:$SMOKE_UID" models
sed -i "s/^WIDGETAL_INTERVAL_SECONDS=.*/WIDGETAL_INTERVAL_SECONDS=3/" .env
port=8866
while ! port_free "$port"; do port=$((port + 1)); done
sed -i "s/^WIDGETAL_PORT=.*/WIDGETAL_PORT=$port/" .env
port_free 8080 || fail "port 8080 (Adminer, fixed in docker-compose.yml) is in use on this machine"
grep -q '^POSTGRES_PASSWORD=[0-9a-f]\{32\}$' .env || fail ".env has no random password"
password=$(sed -n 's/^POSTGRES_PASSWORD=//p' .env)

say "docker-compose build (the unmodified Dockerfile)"
git -C "$ROOT" diff --quiet HEAD -- Dockerfile ||
  echo "note: Dockerfile has uncommitted changes; building the working tree's version"
t=$SECONDS
dc build
echo "built in $((SECONDS - t))s"
docker run --rm widgetal:latest python -c "import torch, widgetal; assert '+cpu' in torch.__version__, torch.__version__; print('torch', torch.__version__)"

say "init and import the sample (docker-compose run --rm orchestrator ...)"
dc run --rm orchestrator widgetal init --labels negative,positive
dc run --rm orchestrator widgetal import widgetal/data/sample.csv --id-col id

say "docker-compose up -d"
dc up -d
db_health() { docker inspect -f '{{.State.Health.Status}}' "$(dc ps -q db)"; }
db_healthy() { [ "$(db_health)" = healthy ]; }
wait_for "db healthy" 60 db_healthy
echo "db: $(db_health)"

say "the labelling app answers with the widget page (http://127.0.0.1:$port/?labeller=smoke)"
page=$WORK/page.html
app_page() {
  curl -fsS --max-time 60 -o "$page" "http://127.0.0.1:$port/?labeller=smoke" &&
    grep -q 'application/vnd.jupyter.widget-view+json' "$page"
}
wait_for "labelling app page with a widget" 180 app_page
echo "page: $(wc -c <"$page") bytes, with a widget view"

say "import a few labelled texts; the orchestrator trains and writes ./models"
python - widgetal/data/sample.csv labelled.csv <<'EOF'
import sys
import pandas as pd
sample = pd.read_csv(sys.argv[1], dtype=str)
picked = sample.groupby("label").tail(12)  # 12 per class, from the end of the file
picked.to_csv(sys.argv[2], index=False)
EOF
dc run --rm -v "$PWD/labelled.csv:/data/labelled.csv:ro" orchestrator \
  widgetal import /data/labelled.csv --id-col id --label-col label
wait_for "a model in ./models" 180 compgen -G "models/*.pkl"
sleep 2  # let the cycle finish its reorder and record the run
model=$(ls models/*.pkl | head -n1)
ls -ln models
[ -f "${model%.pkl}.json" ] || fail "no sidecar for $model"
[ "$(stat -c %u "$model")" = "$SMOKE_UID" ] || fail "$model is not owned by uid $SMOKE_UID"
[ "$(stat -c %a "$model")" = 644 ] || fail "$model is $(stat -c %A "$model"), not readable by others"
status=$(dc run --rm orchestrator widgetal status)
echo "$status"
grep -q "$(basename "$model")" <<<"$status" || fail "widgetal status does not show the run"

say "Adminer (docker-compose --profile admin up -d)"
dc --profile admin up -d
adminer_page() { curl -fsS --max-time 10 http://127.0.0.1:8080/ | grep -q Adminer; }
wait_for "Adminer on 127.0.0.1:8080" 60 adminer_page
# Log in to the db service through Adminer and see widgetal's tables.
jar=$WORK/adminer.cookies
curl -fsS --max-time 20 -c "$jar" -b "$jar" -o /dev/null http://127.0.0.1:8080/
curl -fsS --max-time 20 -c "$jar" -b "$jar" -L -o "$WORK/adminer.html" \
  --data-urlencode "auth[driver]=pgsql" --data-urlencode "auth[server]=db" \
  --data-urlencode "auth[username]=widgetal" --data-urlencode "auth[password]=$password" \
  --data-urlencode "auth[db]=widgetal" http://127.0.0.1:8080/
grep -q 'items' "$WORK/adminer.html" || fail "Adminer did not log in to db and list the tables"
echo "Adminer: answers, logs in to db, lists the tables"

say "Chromium labels one text in the containerised app"
shown=$(python "$HERE/browser_check.py" "http://127.0.0.1:$port/" smoke-browser)
echo "labelled in the browser: $shown"
stored=$(dc run --rm -T orchestrator python -c "
import os
from widgetal import Queue
q = Queue(os.environ['WIDGETAL_DB_URL'])
rows = q.labelled().query('labeller == \"smoke-browser\"')
for r in rows.itertuples():
    print(r.label + '\t' + r.text)
")
echo "in the database: $stored"
[ "$(grep -c . <<<"$stored")" = 1 ] || fail "expected exactly one label by smoke-browser"
[ "$stored" = "$shown" ] || fail "the database holds another label or text than the browser gave"

say "the cluster profile: a cycle featurized and scored on the Dask workers"
# As the README says: two lines in .env, then `up -d` starts the scheduler and a worker
# container (two processes) and recreates the orchestrator, whose first check runs a cycle.
t=$SECONDS
sed -i "s|^WIDGETAL_DASK=.*|WIDGETAL_DASK=tcp://dask-scheduler:8786|" .env
echo "COMPOSE_PROFILES=cluster" >>.env
dc up -d
cluster_run() {
  dc exec -T orchestrator python -c "
import os, sys
from widgetal import Queue
run = Queue(os.environ['WIDGETAL_DB_URL']).runs(limit=1)[0]
cluster = (run['metrics'] or {}).get('cluster')
print(run['id'], run['status'], run['model_file'], cluster)
sys.exit(0 if run['status'] == 'trained' and cluster and cluster['workers'] >= 1 else 1)"
}
wait_for "a run with the cluster in its metrics" 150 cluster_run
echo "run, status, model, cluster: $(cluster_run)"
scored=$(docker logs "$(dc ps -q orchestrator)" 2>&1 | grep "chunks on")
echo "orchestrator: $scored"
[ -n "$scored" ] || fail "the orchestrator's log does not show scoring on the workers"
# The scheduler's side: which workers ran the cycle's tasks, and what the tasks were.
dc exec -T dask-scheduler python -c "
import sys
from distributed import Client
with Client('tcp://127.0.0.1:8786', timeout=10) as c:
    per_worker = c.run(lambda dask_worker: dask_worker.state.executed_count)
    prefixes = c.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
print('tasks per worker:', per_worker, '- task kinds:', prefixes)
sys.exit(0 if sum(per_worker.values()) > 0 and 'predict_proba' in prefixes else 1)" ||
  fail "the Dask scheduler shows no predict_proba task run by a worker"
echo "cluster stage in $((SECONDS - t))s"

say "docker-compose stop orchestrator: a clean stop on SIGTERM"
t=$SECONDS
dc stop orchestrator
took=$((SECONDS - t))
cid=$(dc ps -q orchestrator)
code=$(docker inspect -f '{{.State.ExitCode}}' "$cid")
logs=$(docker logs "$cid" 2>&1 | tail -n 5)
echo "$logs"
echo "orchestrator stopped in ${took}s with exit code $code"
[ "$code" = 0 ] || fail "orchestrator exit code $code after SIGTERM (137 = killed after the grace period)"
grep -q "SIGTERM: stopping" <<<"$logs" && grep -q "stopped" <<<"$logs" ||
  fail "the orchestrator's log does not show a SIGTERM stop"

say "all checks passed in $((SECONDS - T0))s"
