variable "name" {
  type        = string
  description = "Prefix of the IAM role's name (the deployment, e.g. caas-production)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}$", var.name))
    error_message = "The name must be lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "zone_name" {
  type        = string
  description = "The public DNS zone (e.g. example.com)."

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.zone_name))
    error_message = "Give a domain name in lower case, without a trailing dot."
  }
}

variable "create_zone" {
  type        = bool
  description = "Create the Route 53 hosted zone (then delegate to its name servers); false: use the existing public zone of that name."
  default     = false
}

variable "hostnames" {
  type        = list(string)
  description = "CAAS's public names, inside the zone: the Gateway's listeners of deploy/k8s (api.… first: browsers, JSON, gRPC-Web, media; then grpc.…: native gRPC)."

  validation {
    condition     = length(var.hostnames) > 0 && alltrue([for host in var.hostnames : can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", host))])
    error_message = "Give one or more host names in lower case, without trailing dots."
  }
}

variable "load_balancer" {
  type = object({
    dns_name = string
    zone_id  = string
  })
  description = "The load balancer of the cluster's Gateway (made by the cluster, so known only after the first deploy): when given, every host name points at it. null: no records yet."
  default     = null
}

variable "cert_manager" {
  type = object({
    oidc_provider_arn = string
    oidc_issuer       = string
    namespace         = string
    service_account   = string
  })
  description = "cert-manager's service account, to be given an IAM role (IRSA) that may answer ACME DNS-01 challenges in this zone only; the Gateway's certificates then come from cert-manager. null: no role."
  default     = null
}

variable "acm_certificate" {
  type        = bool
  description = "Also issue an ACM certificate for the host names (DNS-validated), for TLS ended at an AWS load balancer rather than at the Gateway."
  default     = false
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
