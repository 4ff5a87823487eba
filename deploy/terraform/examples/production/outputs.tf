output "github_environment_variables" {
  description = "The variables of the GitHub environment named like var.environment, which .github/workflows/release.yml reads (Settings > Environments > Variables)."
  value = {
    AWS_REGION          = var.aws_region
    AWS_DEPLOY_ROLE_ARN = aws_iam_role.deploy.arn
    EKS_CLUSTER_NAME    = module.cluster.cluster_name
    CAAS_PUBLIC_URL     = module.dns.public_url
  }
}

output "caas_config" {
  description = "CAAS's settings that are not secret, for the ConfigMap of deploy/k8s's overlay."
  value = {
    CAAS_STORE                    = "mongodb"
    CAAS_MONGODB_DATABASE         = module.database.database_name
    CAAS_KAFKA_BOOTSTRAP          = module.kafka.bootstrap_brokers_tls
    CAAS_KAFKA_TLS                = "true"
    CAAS_KAFKA_REPLICATION        = "3"
    CAAS_MEDIA_STORE              = "s3"
    CAAS_MEDIA_S3_ENDPOINT        = module.object_storage.endpoint
    CAAS_MEDIA_S3_BUCKET          = module.object_storage.bucket
    CAAS_MEDIA_S3_REGION          = module.object_storage.region
    CAAS_MEDIA_S3_SECURE          = "true"
    CAAS_MEDIA_PUBLIC_URL         = module.dns.public_url
    CAAS_SEARCH_ENGINE            = "elasticsearch"
    CAAS_SEARCH_ELASTICSEARCH_URL = module.search.elasticsearch_url
  }
}

output "caas_secrets" {
  description = "CAAS's secret settings, one file each in the Secret mounted at CAAS_SECRETS_DIR. CAAS_SEARCH_ELASTICSEARCH_API_KEY is added by hand once made (docs/deploy/cloud.md)."
  sensitive   = true
  value = {
    CAAS_MONGODB_URL         = module.database.mongodb_url
    CAAS_REDIS_URL           = module.redis.redis_url
    CAAS_MEDIA_S3_ACCESS_KEY = module.object_storage.access_key_id
    CAAS_MEDIA_S3_SECRET_KEY = module.object_storage.secret_access_key
  }
}

output "elastic_superuser" {
  description = "The Elastic deployment's superuser, only for making CAAS's API key."
  sensitive   = true
  value = {
    url      = module.search.elasticsearch_url
    username = module.search.elastic_username
    password = module.search.elastic_password
  }
}

output "kubeconfig_command" {
  description = "How an administrator reaches the cluster."
  value       = "aws eks update-kubeconfig --region ${var.aws_region} --name ${module.cluster.cluster_name}"
}

output "cert_manager_role_arn" {
  description = "The IAM role of cert-manager's service account (annotation eks.amazonaws.com/role-arn), for its Route 53 DNS-01 ClusterIssuer."
  value       = module.dns.cert_manager_role_arn
}

output "dns_zone_id" {
  description = "The hosted zone cert-manager's DNS-01 solver writes to."
  value       = module.dns.zone_id
}

output "network_policy_cidrs" {
  description = "The private subnets where the data stores' interfaces (ElastiCache, MSK, the Atlas endpoint) live: the ipBlocks of the egress in deploy/k8s's NetworkPolicy."
  value       = module.network.private_subnet_cidrs
}

output "dns_name_servers" {
  description = "The zone's name servers (delegate the domain to them when the zone was made here)."
  value       = module.dns.name_servers
}
