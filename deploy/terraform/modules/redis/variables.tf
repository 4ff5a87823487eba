variable "name" {
  type        = string
  description = "The replication group's id (and prefix of its other resources)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,38}[a-z0-9]$", var.name))
    error_message = "ElastiCache ids are at most 40 lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "vpc_id" {
  type        = string
  description = "The VPC."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets, in two or more zones (the replica sits in another zone than the primary)."

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "Give subnets in at least two availability zones."
  }
}

variable "allowed_security_group_ids" {
  type        = list(string)
  description = "Security groups (the EKS cluster's) whose members may connect."
}

variable "node_type" {
  type        = string
  description = "ElastiCache node type. CAAS keeps fan-out, presence and rate-limit counters there: small, hot data."
  default     = "cache.r7g.large"

  validation {
    condition     = can(regex("^cache\\.", var.node_type))
    error_message = "Node types start with cache., e.g. cache.r7g.large."
  }
}

variable "engine_version" {
  type        = string
  description = "Redis OSS engine version (CAAS is tested against Redis 7)."
  default     = "7.1"

  validation {
    condition     = can(regex("^7\\.[0-9]+$", var.engine_version))
    error_message = "Use a Redis 7 minor version such as 7.1."
  }
}

variable "replicas" {
  type        = number
  description = "Read replicas beside the primary; at least one, for automatic fail-over across zones."
  default     = 1

  validation {
    condition     = var.replicas >= 1 && var.replicas <= 5
    error_message = "Give one to five replicas."
  }
}

variable "snapshot_retention_days" {
  type        = number
  description = "Days of daily snapshots kept (0: none; CAAS keeps nothing there that it cannot rebuild)."
  default     = 1
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
