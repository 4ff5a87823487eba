#!/bin/sh
# Makes the secret files docker-compose.prod.yml reads, each that does not exist yet,
# with fresh random values: run it once before the first `up` (and again after adding
# a secret; it never changes a file that exists). Needs only a POSIX shell.
#
#   deploy/compose/init-secrets.sh            # into deploy/compose/secrets/
#   CAAS_COMPOSE_SECRETS=/etc/caas/secrets deploy/compose/init-secrets.sh
#
# The directory is the owner's only (0700); the files in it are 0644, because Compose
# bind-mounts each file as it is and the engines read them as their own users (mongodb,
# redis, elasticsearch, CAAS's 10001). Files named CAAS_* are read by CAAS from
# CAAS_SECRETS_DIR (docs/configuration.md), one setting each; the others by the engines.
# Values derived from another secret (the URLs carrying a password) are made from the
# file that holds it: to rotate a password, delete it and what carries it, then rerun
# (docs/deploy/compose.md, "Secrets").
set -eu

dir=${CAAS_COMPOSE_SECRETS:-$(dirname "$0")/secrets}
mkdir -p "$dir"
chmod 700 "$dir"

# n random letters and digits (safe in URLs, JSON, TOML and shell words).
random() {
  LC_ALL=C tr -dc 'A-Za-z0-9' < /dev/urandom | head -c "$1"
}

# put NAME VALUE: writes the file unless it exists (no final newline: each reader
# takes the file's bytes as the value).
put() {
  if [ -e "$dir/$1" ]; then
    echo "kept $dir/$1"
    return
  fi
  printf '%s' "$2" > "$dir/$1.tmp"
  chmod 644 "$dir/$1.tmp"
  mv "$dir/$1.tmp" "$dir/$1"
  echo "made $dir/$1"
}

# A value read back (from the file just made, or kept).
value() {
  cat "$dir/$1"
}

# The operator token (caaso_ and 43 characters), as `caas admin new-operator-token`
# makes them; CAAS reads it as CAAS_OPERATOR_TOKEN.
put CAAS_OPERATOR_TOKEN "caaso_$(random 43)"

# MongoDB: the root user, the replica set's internal key, and CAAS's own user
# (deploy/compose/mongo/create-caas-user.js) with the URL that carries its password.
put mongo_root_password "$(random 32)"
put mongo_keyfile "$(random 756)"
put mongo_caas_password "$(random 32)"
put CAAS_MONGODB_URL \
  "mongodb://caas:$(value mongo_caas_password)@mongo:27017/caas?replicaSet=rs0&authSource=admin"

# Redis: one password (requirepass), and the URL that carries it.
put redis_password "$(random 32)"
put CAAS_REDIS_URL "redis://:$(value redis_password)@redis:6379/0"

# Elasticsearch: the superuser `elastic` (es-init uses it once) and CAAS's own user
# (deploy/compose/elasticsearch/init.sh), with the URL that carries its password.
put elastic_password "$(random 32)"
put es_caas_password "$(random 32)"
put CAAS_SEARCH_ELASTICSEARCH_URL "http://caas:$(value es_caas_password)@elasticsearch:9200"

# S3 (SeaweedFS): the identity CAAS signs with (access key id "caas"), and its secret
# key in SeaweedFS's identity file.
put CAAS_MEDIA_S3_SECRET_KEY "$(random 40)"
put seaweedfs_s3.json "{\"identities\": [{\"name\": \"caas\", \"credentials\": [{\"accessKey\": \"caas\", \"secretKey\": \"$(value CAAS_MEDIA_S3_SECRET_KEY)\"}], \"actions\": [\"Admin\", \"Read\", \"Write\", \"List\", \"Tagging\"]}]}"

# coturn's static-auth-secret, which CAAS signs TURN credentials with.
put CAAS_TURN_SECRET "$(random 48)"

# Grafana's admin password.
put grafana_admin_password "$(random 24)"

# The SMTP relay's password: empty until you write yours (empty: none is sent).
put CAAS_SMTP_PASSWORD ""
