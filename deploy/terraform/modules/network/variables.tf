variable "name" {
  type        = string
  description = "Prefix of every resource's name (the deployment, e.g. caas-production)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "The name must be 3-32 lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "cidr_block" {
  type        = string
  description = "The VPC's IPv4 range; a /16 leaves room for sixteen /20 subnets."
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.cidr_block, 0)) && tonumber(split("/", var.cidr_block)[1]) <= 20
    error_message = "The CIDR block must be a valid IPv4 range of /20 or larger."
  }
}

variable "availability_zones" {
  type        = list(string)
  description = "Availability zones to spread over (one public and one private subnet in each); EKS, MSK and ElastiCache want at least two, three is the norm."

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 4
    error_message = "Give two to four availability zones."
  }
}

variable "single_nat_gateway" {
  type        = bool
  description = "One NAT gateway for all zones (cheaper, for staging) instead of one per zone (a zone's outage then cuts only its own egress)."
  default     = false
}

variable "cluster_name" {
  type        = string
  description = "Name of the EKS cluster that will use these subnets: tagged on them so that its load balancers find them."
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
