output "project_id" {
  description = "The Atlas project's id."
  value       = mongodbatlas_project.this.id
}

output "cluster_name" {
  description = "The Atlas cluster's name."
  value       = mongodbatlas_advanced_cluster.this.name
}

output "database_name" {
  description = "CAAS's database (CAAS_MONGODB_DATABASE)."
  value       = var.database_name
}

output "private_srv_connection_string" {
  description = "The cluster's mongodb+srv address through the private endpoint, without credentials (empty until Atlas has linked the endpoint)."
  value       = local.private_srv
}

output "mongodb_url" {
  description = "CAAS_MONGODB_URL: the private-endpoint address with CAAS's user and password."
  value       = local.mongodb_url
  sensitive   = true
}

output "username" {
  description = "The database user CAAS connects as."
  value       = mongodbatlas_database_user.caas.username
}

output "password" {
  description = "The database user's generated password."
  value       = random_password.caas.result
  sensitive   = true
}
