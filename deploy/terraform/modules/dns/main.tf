# Route 53 and certificates: the zone (made here or found); the Gateway's certificates
# come from cert-manager in the cluster (deploy/k8s), which this module lets answer
# ACME DNS-01 challenges in this zone through an IAM role for its service account; an
# ACM certificate is optional, for TLS ended at an AWS load balancer instead; and once
# the Gateway's load balancer exists, alias records point the host names at it.

data "aws_partition" "current" {}

resource "aws_route53_zone" "this" {
  count = var.create_zone ? 1 : 0

  name = var.zone_name

  tags = var.tags
}

data "aws_route53_zone" "existing" {
  count = var.create_zone ? 0 : 1

  name         = var.zone_name
  private_zone = false
}

locals {
  zone_id      = var.create_zone ? aws_route53_zone.this[0].zone_id : data.aws_route53_zone.existing[0].zone_id
  name_servers = var.create_zone ? aws_route53_zone.this[0].name_servers : data.aws_route53_zone.existing[0].name_servers
  # No records until the load balancer is known.
  record_hosts = var.load_balancer == null ? [] : var.hostnames
  records = {
    for pair in setproduct(local.record_hosts, ["A", "AAAA"]) : "${pair[0]} ${pair[1]}" => {
      name = pair[0]
      type = pair[1]
    }
  }
}

resource "aws_route53_record" "gateway" {
  for_each = local.records

  zone_id = local.zone_id
  name    = each.value.name
  type    = each.value.type

  alias {
    name                   = var.load_balancer.dns_name
    zone_id                = var.load_balancer.zone_id
    evaluate_target_health = true
  }
}

# cert-manager's Route 53 solver: its documented least privilege, on this zone only.
data "aws_iam_policy_document" "cert_manager_assume" {
  count = var.cert_manager == null ? 0 : 1

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [var.cert_manager.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${var.cert_manager.oidc_issuer}:sub"
      values   = ["system:serviceaccount:${var.cert_manager.namespace}:${var.cert_manager.service_account}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${var.cert_manager.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "cert_manager" {
  statement {
    actions   = ["route53:GetChange"]
    resources = ["arn:${data.aws_partition.current.partition}:route53:::change/*"]
  }

  statement {
    actions   = ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"]
    resources = ["arn:${data.aws_partition.current.partition}:route53:::hostedzone/${local.zone_id}"]
  }

  statement {
    actions   = ["route53:ListHostedZonesByName"]
    resources = ["*"]
  }
}

resource "aws_iam_role" "cert_manager" {
  count = var.cert_manager == null ? 0 : 1

  name               = "${var.name}-cert-manager"
  assume_role_policy = data.aws_iam_policy_document.cert_manager_assume[0].json

  tags = var.tags
}

resource "aws_iam_role_policy" "cert_manager" {
  count = var.cert_manager == null ? 0 : 1

  name   = "route53-dns01"
  role   = aws_iam_role.cert_manager[0].id
  policy = data.aws_iam_policy_document.cert_manager.json
}

resource "aws_acm_certificate" "this" {
  count = var.acm_certificate ? 1 : 0

  domain_name               = var.hostnames[0]
  subject_alternative_names = slice(var.hostnames, 1, length(var.hostnames))
  validation_method         = "DNS"

  tags = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_route53_record" "validation" {
  for_each = {
    for option in flatten([for certificate in aws_acm_certificate.this : certificate.domain_validation_options]) :
    option.domain_name => {
      name   = option.resource_record_name
      type   = option.resource_record_type
      record = option.resource_record_value
    }
  }

  zone_id         = local.zone_id
  name            = each.value.name
  type            = each.value.type
  records         = [each.value.record]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "this" {
  count = var.acm_certificate ? 1 : 0

  certificate_arn         = aws_acm_certificate.this[0].arn
  validation_record_fqdns = [for record in aws_route53_record.validation : record.fqdn]
}
