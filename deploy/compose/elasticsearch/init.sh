#!/bin/bash
# docker-compose.prod.yml's es-init: a one-shot in the Elasticsearch image that gives
# CAAS a user of its own, allowed only the indexes and aliases it makes (caas-*), with
# the password of the secret es_caas_password (the one CAAS_SEARCH_ELASTICSEARCH_URL
# carries). Signs in as `elastic` (the secret elastic_password). Run again, it puts the
# same role and the password of the file: rotating the password is re-running it.
# ES_INIT_ATTEMPTS: tries, 2 s apart, while the security index comes up.
set -euo pipefail
url=${ES_URL:-http://elasticsearch:9200}
prefix=${CAAS_SEARCH_INDEX_PREFIX:-caas}
elastic_password=$(cat "${ELASTIC_PASSWORD_FILE:-/run/secrets/elastic_password}")
caas_password=$(cat "${ES_CAAS_PASSWORD_FILE:-/run/secrets/es_caas_password}")
attempts=${ES_INIT_ATTEMPTS:-30}

# The credentials go to curl through its standard input (-K -), never on a command
# line; the body through another file descriptor.
call() {
  local method=$1 path=$2 body=$3
  printf 'user = "elastic:%s"\n' "$elastic_password" | curl --fail-with-body -sS -K - \
    -X "$method" "$url$path" -H 'Content-Type: application/json' \
    --data-binary @/dev/fd/3 3<<<"$body" > /dev/null
}

role="{
  \"cluster\": [\"monitor\"],
  \"indices\": [{
    \"names\": [\"$prefix-*\"],
    \"privileges\": [\"create_index\", \"manage\", \"read\", \"write\", \"view_index_metadata\"]
  }]
}"
n=1
until call PUT "/_security/role/caas" "$role"; do
  if [ "$n" -ge "$attempts" ]; then
    echo "Elasticsearch at $url refused the role caas" >&2
    exit 1
  fi
  n=$((n + 1))
  sleep 2
done
call PUT "/_security/user/caas" "{\"password\": \"$caas_password\", \"roles\": [\"caas\"]}"
echo "the Elasticsearch user caas may use $prefix-*"
