# Credentials come from the environment, never from these files:
#   AWS: the usual chain (AWS_PROFILE, SSO, or a CI role);
#   MongoDB Atlas: MONGODB_ATLAS_PUBLIC_KEY and MONGODB_ATLAS_PRIVATE_KEY (an
#     organization API key with Project Creator);
#   Elastic Cloud: EC_API_KEY.

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = local.tags
  }
}

provider "mongodbatlas" {}

provider "ec" {}

provider "random" {}
