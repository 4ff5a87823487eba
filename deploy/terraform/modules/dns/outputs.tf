output "zone_id" {
  description = "The hosted zone's id."
  value       = local.zone_id
}

output "name_servers" {
  description = "The zone's name servers (delegate the domain to them when the zone is made here)."
  value       = local.name_servers
}

output "cert_manager_role_arn" {
  description = "The IAM role for cert-manager's service account (its eks.amazonaws.com/role-arn annotation), empty without one; its ClusterIssuer solves DNS-01 in zone_id with it."
  value       = join("", aws_iam_role.cert_manager[*].arn)
}

output "acm_certificate_arn" {
  description = "The validated ACM certificate, empty unless acm_certificate is true."
  value       = join("", aws_acm_certificate_validation.this[*].certificate_arn)
}

output "public_url" {
  description = "CAAS's public base URL, on the first host name (CAAS_MEDIA_PUBLIC_URL, and the release workflow's CAAS_PUBLIC_URL)."
  value       = "https://${var.hostnames[0]}"
}
