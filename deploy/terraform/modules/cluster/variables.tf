variable "name" {
  type        = string
  description = "The EKS cluster's name."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,62}[a-z0-9]$", var.name))
    error_message = "The name must be lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "kubernetes_version" {
  type        = string
  description = "Kubernetes minor version of the control plane and the nodes (EKS standard support)."
  default     = "1.34"

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "The Kubernetes version is a minor version such as 1.34."
  }
}

variable "vpc_id" {
  type        = string
  description = "The VPC (network module's vpc_id)."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets for the control plane's interfaces and the nodes, in two or more zones."

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "EKS needs subnets in at least two availability zones."
  }
}

variable "public_access_cidrs" {
  type        = list(string)
  description = "Ranges that may reach the Kubernetes API from outside the VPC (the deploy workflow's GitHub-hosted runners have no fixed address, so 0.0.0.0/0 behind IAM authentication is the usual choice). Empty: the API is private only."
  default     = ["0.0.0.0/0"]

  validation {
    condition     = alltrue([for cidr in var.public_access_cidrs : can(cidrhost(cidr, 0))])
    error_message = "Each entry must be an IPv4 CIDR range."
  }
}

variable "node_instance_types" {
  type        = list(string)
  description = "EC2 instance types of the managed node group (CAAS runs one worker per core)."
  default     = ["m7i.xlarge"]
}

variable "node_count" {
  type = object({
    min     = number
    desired = number
    max     = number
  })
  description = "Size of the managed node group; desired is set at creation and left to the autoscaler afterwards."
  default = {
    min     = 3
    desired = 3
    max     = 9
  }

  validation {
    condition     = var.node_count.min >= 1 && var.node_count.min <= var.node_count.desired && var.node_count.desired <= var.node_count.max
    error_message = "Node counts must satisfy 1 <= min <= desired <= max."
  }
}

variable "node_disk_size" {
  type        = number
  description = "Root volume of each node, in GiB."
  default     = 50

  validation {
    condition     = var.node_disk_size >= 20
    error_message = "Give nodes at least 20 GiB."
  }
}

variable "admin_principal_arns" {
  type        = list(string)
  description = "IAM roles or users given cluster-admin through EKS access entries (the cluster creator gets no implicit access)."

  validation {
    condition     = length(var.admin_principal_arns) > 0 && alltrue([for arn in var.admin_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/", arn))])
    error_message = "Give at least one IAM role or user ARN."
  }
}

variable "deployer_principal_arns" {
  type        = list(string)
  description = "IAM roles that deploy CAAS (the release workflow's role): admin of deploy_namespaces only."
  default     = []

  validation {
    condition     = alltrue([for arn in var.deployer_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/", arn))])
    error_message = "Each deployer must be an IAM role ARN."
  }
}

variable "deploy_namespaces" {
  type        = list(string)
  description = "Namespaces the deployers may change (the namespace itself is created once by an administrator)."
  default     = ["caas"]

  validation {
    condition     = length(var.deploy_namespaces) > 0
    error_message = "Give the deployers at least one namespace."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the control plane's logs (API, audit, authenticator) in CloudWatch."
  default     = 90
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
