terraform {
  # 1.0 is the oldest release whose parser this tree keeps to (the project's offline
  # checks run Terraform 1.0.3); apply with a current release (docs/deploy/cloud.md).
  required_version = ">= 1.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0, < 7.0"
    }
  }
}
