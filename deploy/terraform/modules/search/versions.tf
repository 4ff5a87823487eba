terraform {
  # 1.0 is the oldest release whose parser this tree keeps to (the project's offline
  # checks run Terraform 1.0.3). Elastic's provider asks for Terraform 1.2.7 or newer to
  # apply: use a current release (docs/deploy/cloud.md).
  required_version = ">= 1.0"

  required_providers {
    ec = {
      source  = "elastic/ec"
      version = ">= 0.12, < 1.0"
    }
  }
}
