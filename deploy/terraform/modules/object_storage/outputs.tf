output "bucket" {
  description = "CAAS_MEDIA_S3_BUCKET."
  value       = aws_s3_bucket.media.id
}

output "region" {
  description = "CAAS_MEDIA_S3_REGION: the bucket's region."
  value       = data.aws_region.current.region
}

output "endpoint" {
  description = "CAAS_MEDIA_S3_ENDPOINT: the regional S3 endpoint (host name)."
  value       = "s3.${data.aws_region.current.region}.amazonaws.com"
}

output "access_key_id" {
  description = "CAAS_MEDIA_S3_ACCESS_KEY: the bucket-only IAM user's key id."
  value       = aws_iam_access_key.caas.id
}

output "secret_access_key" {
  description = "CAAS_MEDIA_S3_SECRET_KEY: that key's secret."
  value       = aws_iam_access_key.caas.secret
  sensitive   = true
}
