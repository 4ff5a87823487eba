variable "name" {
  type        = string
  description = "The MSK cluster's name (and prefix of its other resources)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,62}$", var.name))
    error_message = "The name must be lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "kafka_version" {
  type        = string
  description = "Apache Kafka version of the brokers (an MSK-supported one)."
  default     = "3.8.x"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.([0-9]+|x)(\\.kraft)?$", var.kafka_version))
    error_message = "Give an MSK Kafka version such as 3.8.x or 3.9.x.kraft."
  }
}

variable "vpc_id" {
  type        = string
  description = "The VPC."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets, one per zone the brokers spread over (two or three)."

  validation {
    condition     = length(var.subnet_ids) >= 2 && length(var.subnet_ids) <= 3
    error_message = "MSK spreads brokers over two or three zones."
  }
}

variable "allowed_security_group_ids" {
  type        = list(string)
  description = "Security groups (the EKS cluster's) whose members may connect."
}

variable "broker_count" {
  type        = number
  description = "Number of brokers: a multiple of the number of subnets, at least 3 for replication factor 3 with min.insync.replicas 2."
  default     = 3

  validation {
    condition     = var.broker_count >= 3
    error_message = "Give at least three brokers (topics are replicated three times)."
  }
}

variable "instance_type" {
  type        = string
  description = "Broker instance type."
  default     = "kafka.m7g.large"

  validation {
    condition     = can(regex("^(kafka|express)\\.", var.instance_type))
    error_message = "Broker types start with kafka. (or express.)."
  }
}

variable "volume_size" {
  type        = number
  description = "EBS storage per broker, in GiB (CAAS's topics keep CAAS_KAFKA_RETENTION of events)."
  default     = 500

  validation {
    condition     = var.volume_size >= 1 && var.volume_size <= 16384
    error_message = "MSK broker storage is 1 to 16384 GiB."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the brokers' logs in CloudWatch."
  default     = 30
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
