output "deployment_id" {
  description = "The Elastic Cloud deployment's id."
  value       = ec_deployment.this.id
}

output "elasticsearch_url" {
  description = "CAAS_SEARCH_ELASTICSEARCH_URL: the deployment's HTTPS endpoint."
  value       = ec_deployment.this.elasticsearch.https_endpoint
}

output "elasticsearch_version" {
  description = "The Elastic Stack release deployed."
  value       = ec_deployment.this.version
}

output "elastic_username" {
  description = "The deployment's superuser, for making CAAS's API key once (never for CAAS itself)."
  value       = ec_deployment.this.elasticsearch_username
}

output "elastic_password" {
  description = "The superuser's password."
  value       = ec_deployment.this.elasticsearch_password
  sensitive   = true
}
