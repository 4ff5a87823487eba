#!/bin/sh
# Creates the media bucket in SeaweedFS unless it exists (the compose files' s3-init:
# a one-shot in the SeaweedFS image). S3_MASTER: the master's host:port (with
# ".grpcport" when the gRPC port is not the HTTP one + 10000); S3_BUCKET: the bucket;
# S3_INIT_ATTEMPTS: tries, 2 s apart, while the filer behind the master comes up.
set -eu
master=${S3_MASTER:-s3:9333}
bucket=${S3_BUCKET:-caas-media}
weed=${WEED:-weed}
attempts=${S3_INIT_ATTEMPTS:-30}

listed() {
  echo "s3.bucket.list" | "$weed" shell -master="$master" 2>/dev/null | grep -qw -- "$bucket"
}

n=1
while :; do
  if listed; then
    echo "bucket $bucket exists"
    exit 0
  fi
  # `weed shell` may exit 0 having failed: the listing above is what counts.
  echo "s3.bucket.create -name $bucket" | "$weed" shell -master="$master" || true
  if listed; then
    echo "bucket $bucket created"
    exit 0
  fi
  if [ "$n" -ge "$attempts" ]; then
    echo "could not create bucket $bucket through $master" >&2
    exit 1
  fi
  n=$((n + 1))
  sleep 2
done
