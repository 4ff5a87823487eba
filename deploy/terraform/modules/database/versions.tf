terraform {
  # 1.0 is the oldest release whose parser this tree keeps to (the project's offline
  # checks run Terraform 1.0.3). MongoDB supports its provider only on maintained
  # Terraform releases: apply with a current one (docs/deploy/cloud.md).
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
    random = {
      source  = "hashicorp/random"
      version = ">= 3.5, < 4.0"
    }
  }
}
