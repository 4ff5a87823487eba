variable "name" {
  type        = string
  description = "Name of the Atlas project and cluster (e.g. caas-production)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,21}[a-z0-9]$", var.name))
    error_message = "The name must be 3-23 lower-case letters, digits and hyphens (Atlas caps cluster names at 23 characters for their host names)."
  }
}

variable "atlas_org_id" {
  type        = string
  description = "The Atlas organization that owns the project (24 hexadecimal digits)."

  validation {
    condition     = can(regex("^[0-9a-f]{24}$", var.atlas_org_id))
    error_message = "An Atlas organization id is 24 hexadecimal digits."
  }
}

variable "atlas_region" {
  type        = string
  description = "Atlas's name of the AWS region the cluster runs in, the VPC's region (e.g. EU_WEST_1 for eu-west-1)."

  validation {
    condition     = can(regex("^[A-Z]{2}(_[A-Z]+)+_[0-9]$", var.atlas_region))
    error_message = "Use Atlas's region names, such as EU_WEST_1 or US_EAST_1."
  }
}

variable "instance_size" {
  type        = string
  description = "Atlas cluster tier of the three electable nodes; M10 and up (dedicated tiers: private endpoints, backups, transactions at scale)."
  default     = "M30"

  validation {
    condition     = can(regex("^M[1-9][0-9]+$", var.instance_size))
    error_message = "Use a dedicated tier, M10 or larger (the shared tiers have no private endpoints)."
  }
}

variable "mongodb_major_version" {
  type        = string
  description = "MongoDB major version (CAAS needs a replica set: it uses multi-document transactions and change streams)."
  default     = "8.0"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]$", var.mongodb_major_version))
    error_message = "Give a major version such as 8.0."
  }
}

variable "database_name" {
  type        = string
  description = "CAAS's database (CAAS_MONGODB_DATABASE); its data keys live in <name>_keys (CAAS_MONGODB_KEYS_DATABASE's default)."
  default     = "caas"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,38}$", var.database_name))
    error_message = "Database names are letters, digits, underscores and hyphens, at most 38 characters."
  }
}

variable "username" {
  type        = string
  description = "The database user CAAS connects as (its password is generated and kept in the state)."
  default     = "caas"
}

variable "backup_enabled" {
  type        = bool
  description = "Cloud backups with point-in-time restore. Keep the data keys' database in the same backups' retention rules (docs/operations.md, 'Encryption at rest')."
  default     = true
}

variable "termination_protection" {
  type        = bool
  description = "Refuse to delete the cluster (turn off deliberately before a destroy)."
  default     = true
}

variable "vpc_id" {
  type        = string
  description = "The VPC in which the private endpoint to Atlas is made."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets for the endpoint's interfaces."
}

variable "allowed_security_group_ids" {
  type        = list(string)
  description = "Security groups (the EKS cluster's) whose members may reach the cluster through the endpoint."
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource (AWS tags and Atlas cluster tags)."
  default     = {}
}
