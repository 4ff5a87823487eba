output "bootstrap_brokers_tls" {
  description = "CAAS_KAFKA_BOOTSTRAP: the brokers' TLS addresses, host:port comma-separated."
  value       = aws_msk_cluster.this.bootstrap_brokers_tls
}

output "cluster_arn" {
  description = "The MSK cluster's ARN."
  value       = aws_msk_cluster.this.arn
}

output "security_group_id" {
  description = "The brokers' security group."
  value       = aws_security_group.this.id
}
