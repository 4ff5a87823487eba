variable "environment" {
  type        = string
  description = "Which environment this state is: staging or production (the GitHub environment of the same name deploys to it)."

  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "The environment is staging or production."
  }
}

variable "aws_region" {
  type        = string
  description = "The AWS region of everything (e.g. eu-west-1)."

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.aws_region))
    error_message = "Give an AWS region name such as eu-west-1."
  }
}

variable "atlas_region" {
  type        = string
  description = "The same region in Atlas's spelling (eu-west-1 is EU_WEST_1)."
}

variable "availability_zones" {
  type        = list(string)
  description = "Three availability zones of the region (e.g. eu-west-1a, eu-west-1b, eu-west-1c)."
}

variable "vpc_cidr" {
  type        = string
  description = "The VPC's range."
  default     = "10.40.0.0/16"
}

variable "zone_name" {
  type        = string
  description = "The public DNS zone (e.g. example.com)."
}

variable "create_zone" {
  type        = bool
  description = "Make the Route 53 zone here (true) or use an existing one (false)."
  default     = false
}

variable "hostnames" {
  type        = list(string)
  description = "CAAS's public names, the listeners of deploy/k8s's Gateway: api.… first, then grpc.… (e.g. api.caas.example.com, grpc.caas.example.com)."
}

variable "load_balancer" {
  type = object({
    dns_name = string
    zone_id  = string
  })
  description = "The load balancer the first deploy made for the Gateway; set it and apply again to point the host names at it."
  default     = null
}

variable "media_cors_origins" {
  type        = list(string)
  description = "Origins of the apps whose browsers upload media straight to S3."
  default     = []
}

variable "atlas_org_id" {
  type        = string
  description = "The MongoDB Atlas organization's id."
}

variable "cluster_admin_principal_arns" {
  type        = list(string)
  description = "IAM roles or users that administer the EKS cluster."
}

variable "github_repository" {
  type        = string
  description = "owner/name of the GitHub repository whose release workflow deploys here."

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "Give the repository as owner/name."
  }
}

variable "github_oidc_provider_arn" {
  type        = string
  description = "The account's IAM OIDC provider for token.actions.githubusercontent.com, if one exists already (an account holds one per URL); empty: make it here."
  default     = ""
}

variable "sizes" {
  type = object({
    node_instance_types = list(string)
    node_min            = number
    node_desired        = number
    node_max            = number
    atlas_instance_size = string
    redis_node_type     = string
    kafka_instance_type = string
    kafka_volume_size   = number
    search_hot_size     = string
    single_nat_gateway  = bool
  })
  description = "How big this environment is (staging smaller than production)."
  default = {
    node_instance_types = ["m7i.xlarge"]
    node_min            = 3
    node_desired        = 3
    node_max            = 9
    atlas_instance_size = "M30"
    redis_node_type     = "cache.r7g.large"
    kafka_instance_type = "kafka.m7g.large"
    kafka_volume_size   = 500
    search_hot_size     = "8g"
    single_nat_gateway  = false
  }
}
