# One CAAS environment on AWS (staging and production are two states of this root, each
# with its own .tfvars): the modules wired together, and the IAM role the release
# workflow assumes (GitHub OIDC, this repository's GitHub environment of the same name
# only) to deploy to this environment's cluster. Its outputs are what the Kubernetes
# manifests need: docs/deploy/cloud.md shows how they become CAAS's Secret and config.

locals {
  name = "caas-${var.environment}"
  tags = {
    Project     = "caas"
    Environment = var.environment
    ManagedBy   = "terraform"
  }
  github_oidc_provider_arn = var.github_oidc_provider_arn != "" ? var.github_oidc_provider_arn : aws_iam_openid_connect_provider.github[0].arn
}

module "network" {
  source = "../../modules/network"

  name               = local.name
  cidr_block         = var.vpc_cidr
  availability_zones = var.availability_zones
  single_nat_gateway = var.sizes.single_nat_gateway
  cluster_name       = local.name
  tags               = local.tags
}

module "cluster" {
  source = "../../modules/cluster"

  name                    = local.name
  vpc_id                  = module.network.vpc_id
  subnet_ids              = module.network.private_subnet_ids
  node_instance_types     = var.sizes.node_instance_types
  admin_principal_arns    = var.cluster_admin_principal_arns
  deployer_principal_arns = [aws_iam_role.deploy.arn]
  tags                    = local.tags

  node_count = {
    min     = var.sizes.node_min
    desired = var.sizes.node_desired
    max     = var.sizes.node_max
  }
}

module "database" {
  source = "../../modules/database"

  name                       = local.name
  atlas_org_id               = var.atlas_org_id
  atlas_region               = var.atlas_region
  instance_size              = var.sizes.atlas_instance_size
  termination_protection     = var.environment == "production"
  vpc_id                     = module.network.vpc_id
  subnet_ids                 = module.network.private_subnet_ids
  allowed_security_group_ids = [module.cluster.cluster_security_group_id]
  tags                       = local.tags
}

module "redis" {
  source = "../../modules/redis"

  name                       = local.name
  vpc_id                     = module.network.vpc_id
  subnet_ids                 = module.network.private_subnet_ids
  allowed_security_group_ids = [module.cluster.cluster_security_group_id]
  node_type                  = var.sizes.redis_node_type
  tags                       = local.tags
}

module "kafka" {
  source = "../../modules/kafka"

  name                       = local.name
  vpc_id                     = module.network.vpc_id
  subnet_ids                 = module.network.private_subnet_ids
  allowed_security_group_ids = [module.cluster.cluster_security_group_id]
  broker_count               = length(var.availability_zones)
  instance_type              = var.sizes.kafka_instance_type
  volume_size                = var.sizes.kafka_volume_size
  tags                       = local.tags
}

module "object_storage" {
  source = "../../modules/object_storage"

  bucket_name          = "${local.name}-media-${data.aws_caller_identity.current.account_id}"
  cors_allowed_origins = var.media_cors_origins
  force_destroy        = var.environment != "production"
  tags                 = local.tags
}

module "search" {
  source = "../../modules/search"

  name          = local.name
  region        = var.aws_region
  hot_size      = var.sizes.search_hot_size
  allowed_cidrs = [for ip in module.network.nat_public_ips : "${ip}/32"]
  tags          = local.tags
}

module "dns" {
  source = "../../modules/dns"

  name          = local.name
  zone_name     = var.zone_name
  create_zone   = var.create_zone
  hostnames     = var.hostnames
  load_balancer = var.load_balancer
  tags          = local.tags

  # The Gateway's certificates: cert-manager, answering DNS-01 in this zone.
  cert_manager = {
    oidc_provider_arn = module.cluster.oidc_provider_arn
    oidc_issuer       = module.cluster.oidc_issuer
    namespace         = "cert-manager"
    service_account   = "cert-manager"
  }
}

data "aws_caller_identity" "current" {}

# The release workflow's way in: GitHub's OIDC token for this repository's environment
# of this name, exchanged for a role that may only describe this cluster (EKS access
# entries then give it its namespace).
resource "aws_iam_openid_connect_provider" "github" {
  count = var.github_oidc_provider_arn == "" ? 1 : 0

  url            = "https://token.actions.githubusercontent.com"
  client_id_list = ["sts.amazonaws.com"]

  tags = local.tags
}

data "aws_iam_policy_document" "deploy_assume" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [local.github_oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = ["repo:${var.github_repository}:environment:${var.environment}"]
    }
  }
}

resource "aws_iam_role" "deploy" {
  name                 = "${local.name}-github-deploy"
  assume_role_policy   = data.aws_iam_policy_document.deploy_assume.json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "deploy" {
  statement {
    actions   = ["eks:DescribeCluster"]
    resources = [module.cluster.cluster_arn]
  }
}

resource "aws_iam_role_policy" "deploy" {
  name   = "describe-cluster"
  role   = aws_iam_role.deploy.id
  policy = data.aws_iam_policy_document.deploy.json
}
