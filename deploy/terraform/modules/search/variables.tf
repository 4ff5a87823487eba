variable "name" {
  type        = string
  description = "The Elastic Cloud deployment's name."

  validation {
    condition     = length(var.name) >= 3 && length(var.name) <= 64
    error_message = "Give a name of 3 to 64 characters."
  }
}

variable "region" {
  type        = string
  description = "Elastic Cloud region on AWS, the VPC's region (e.g. eu-west-1)."

  validation {
    condition     = can(regex("^(aws-)?[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "Use an AWS region name such as eu-west-1."
  }
}

variable "deployment_template_id" {
  type        = string
  description = "Elastic Cloud deployment template (hardware profile) for the region."
  default     = "aws-io-optimized-v2"
}

variable "elasticsearch_version_regex" {
  type        = string
  description = "Which Elastic Stack release to deploy, as the ec_stack data source matches it. CAAS's client (elasticsearch-py 9) needs Elasticsearch 9."
  default     = "9.?.?"

  validation {
    condition     = can(regex("^9\\.", var.elasticsearch_version_regex))
    error_message = "CAAS's Elasticsearch client needs Elasticsearch 9."
  }
}

variable "hot_size" {
  type        = string
  description = "Memory per node of the hot tier, in Elastic's notation (e.g. 8g)."
  default     = "8g"

  validation {
    condition     = can(regex("^[0-9]+g$", var.hot_size))
    error_message = "Sizes are written like 8g."
  }
}

variable "zone_count" {
  type        = number
  description = "Availability zones the hot tier spans (2 or 3 for high availability)."
  default     = 2

  validation {
    condition     = var.zone_count >= 1 && var.zone_count <= 3
    error_message = "Give one to three zones."
  }
}

variable "allowed_cidrs" {
  type        = list(string)
  description = "Addresses allowed to reach the deployment (the VPC's NAT gateways, as /32s); everything else is refused by an IP traffic filter."

  validation {
    condition     = length(var.allowed_cidrs) > 0 && alltrue([for cidr in var.allowed_cidrs : can(cidrhost(cidr, 0))])
    error_message = "Give at least one IPv4 CIDR range."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags of the deployment."
  default     = {}
}
