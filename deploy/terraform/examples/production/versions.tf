terraform {
  # 1.0 is the oldest release whose parser this tree keeps to (the project's offline
  # checks run Terraform 1.0.3). Apply with a current Terraform (or OpenTofu): the Atlas
  # and Elastic Cloud providers support only maintained releases (docs/deploy/cloud.md).
  required_version = ">= 1.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0, < 7.0"
    }
    mongodbatlas = {
      source  = "mongodb/mongodbatlas"
      version = ">= 2.0, < 3.0"
    }
    ec = {
      source  = "elastic/ec"
      version = ">= 0.12, < 1.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.5, < 4.0"
    }
  }

  # State in S3, one key per environment, given at init:
  #   terraform init -backend-config=bucket=... -backend-config=key=caas/production.tfstate \
  #     -backend-config=region=... -backend-config=encrypt=true
  # (plus the lock table or lock file your Terraform release supports).
  backend "s3" {}
}
