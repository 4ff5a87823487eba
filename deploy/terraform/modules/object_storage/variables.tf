variable "bucket_name" {
  type        = string
  description = "The media bucket's name (CAAS_MEDIA_S3_BUCKET), globally unique."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name)) && !can(regex("\\.\\.|^xn--|-s3alias$", var.bucket_name))
    error_message = "S3 bucket names are 3-63 lower-case letters, digits, dots and hyphens."
  }
}

variable "cors_allowed_origins" {
  type        = list(string)
  description = "Browser origins of the apps that upload media straight to the bucket (PUT with Content-Type), e.g. https://app.example.com."

  validation {
    condition     = alltrue([for origin in var.cors_allowed_origins : can(regex("^https://[^/]+$", origin))])
    error_message = "Each origin is https://host[:port], without a path."
  }
}

variable "abort_incomplete_uploads_after_days" {
  type        = number
  description = "Days after which unfinished multipart uploads are aborted (CAAS aborts those it knows of; this catches any a crash left)."
  default     = 3

  validation {
    condition     = var.abort_incomplete_uploads_after_days >= 1
    error_message = "Give at least one day."
  }
}

variable "noncurrent_version_retention_days" {
  type        = number
  description = "Days a deleted or overwritten object's previous version is kept (versioning guards against mistakes; erasure is final after this)."
  default     = 30

  validation {
    condition     = var.noncurrent_version_retention_days >= 1
    error_message = "Give at least one day."
  }
}

variable "force_destroy" {
  type        = bool
  description = "Let `terraform destroy` delete a bucket that still holds objects (for throwaway environments only)."
  default     = false
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
