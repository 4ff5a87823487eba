output "primary_endpoint_address" {
  description = "The primary's host name (it follows fail-overs)."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "port" {
  description = "The Redis port."
  value       = aws_elasticache_replication_group.this.port
}

output "auth_token" {
  description = "The generated AUTH token."
  value       = random_password.auth.result
  sensitive   = true
}

output "redis_url" {
  description = "CAAS_REDIS_URL: rediss:// (TLS) with the AUTH token, database 0."
  value       = "rediss://:${random_password.auth.result}@${aws_elasticache_replication_group.this.primary_endpoint_address}:${aws_elasticache_replication_group.this.port}/0"
  sensitive   = true
}

output "security_group_id" {
  description = "The replication group's security group."
  value       = aws_security_group.this.id
}
