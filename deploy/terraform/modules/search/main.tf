# Elasticsearch, managed by Elastic Cloud on AWS in the VPC's region. Not Amazon
# OpenSearch Service: CAAS's client is the official elasticsearch-py 9, which checks that
# the server is Elasticsearch and asks for Elasticsearch 9's compatible media types,
# which OpenSearch refuses (HTTP 406). The deployment is reachable only from the VPC's
# NAT addresses (an IP traffic filter), over HTTPS. CAAS authenticates with an API key
# made once with the elastic user (docs/deploy/cloud.md shows the request): Elastic's
# Terraform provider for the cluster's own API (elastic/elasticstack) is left out, since
# it would need the deployment's address before the deployment exists.

data "ec_stack" "this" {
  version_regex = var.elasticsearch_version_regex
  region        = var.region
  lock          = true
}

resource "ec_deployment_traffic_filter" "nat" {
  name        = "${var.name}-vpc-nat"
  region      = var.region
  type        = "ip"
  description = "The CAAS VPC's NAT gateways"

  dynamic "rule" {
    for_each = var.allowed_cidrs
    content {
      source = rule.value
    }
  }
}

resource "ec_deployment" "this" {
  name                   = var.name
  region                 = var.region
  version                = data.ec_stack.this.version
  deployment_template_id = var.deployment_template_id
  traffic_filter         = [ec_deployment_traffic_filter.nat.id]

  elasticsearch = {
    hot = {
      size        = var.hot_size
      zone_count  = var.zone_count
      autoscaling = {}
    }
  }

  kibana = {}

  tags = var.tags
}
