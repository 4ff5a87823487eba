# MongoDB Atlas, on AWS, in the VPC's region: a project, a three-node replica set
# (transactions and change streams, as CAAS's MongoDB store needs), reached only through
# AWS PrivateLink (no public access list), and one database user for CAAS limited to its
# two databases. Atlas is MongoDB's own managed service; AWS's DocumentDB is not used: it
# is not MongoDB (no change streams on all collections, a different transaction model).

resource "random_password" "caas" {
  length  = 40
  special = false # the password goes into a connection URL
}

resource "mongodbatlas_project" "this" {
  name   = var.name
  org_id = var.atlas_org_id
}

resource "mongodbatlas_advanced_cluster" "this" {
  project_id                     = mongodbatlas_project.this.id
  name                           = var.name
  cluster_type                   = "REPLICASET"
  mongo_db_major_version         = var.mongodb_major_version
  backup_enabled                 = var.backup_enabled
  pit_enabled                    = var.backup_enabled
  termination_protection_enabled = var.termination_protection

  replication_specs = [
    {
      region_configs = [
        {
          provider_name = "AWS"
          region_name   = var.atlas_region
          priority      = 7
          electable_specs = {
            instance_size = var.instance_size
            node_count    = 3
          }
          auto_scaling = {
            disk_gb_enabled = true
          }
        }
      ]
    }
  ]

  tags = var.tags
}

resource "mongodbatlas_privatelink_endpoint" "this" {
  project_id    = mongodbatlas_project.this.id
  provider_name = "AWS"
  region        = var.atlas_region
}

resource "aws_security_group" "endpoint" {
  name        = "${var.name}-atlas-endpoint"
  description = "The Atlas PrivateLink endpoint: reachable from the cluster only"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-atlas-endpoint" })
}

# Atlas maps each node to a port of the endpoint, in 1024-65535.
resource "aws_vpc_security_group_ingress_rule" "endpoint" {
  count = length(var.allowed_security_group_ids)

  security_group_id            = aws_security_group.endpoint.id
  referenced_security_group_id = var.allowed_security_group_ids[count.index]
  ip_protocol                  = "tcp"
  from_port                    = 1024
  to_port                      = 65535
  description                  = "MongoDB through PrivateLink"
}

resource "aws_vpc_endpoint" "atlas" {
  vpc_id             = var.vpc_id
  service_name       = mongodbatlas_privatelink_endpoint.this.endpoint_service_name
  vpc_endpoint_type  = "Interface"
  subnet_ids         = var.subnet_ids
  security_group_ids = [aws_security_group.endpoint.id]

  tags = merge(var.tags, { Name = "${var.name}-atlas" })
}

resource "mongodbatlas_privatelink_endpoint_service" "this" {
  project_id          = mongodbatlas_privatelink_endpoint.this.project_id
  private_link_id     = mongodbatlas_privatelink_endpoint.this.private_link_id
  endpoint_service_id = aws_vpc_endpoint.atlas.id
  provider_name       = "AWS"
}

resource "mongodbatlas_database_user" "caas" {
  project_id         = mongodbatlas_project.this.id
  username           = var.username
  password           = random_password.caas.result
  auth_database_name = "admin"

  roles {
    role_name     = "readWrite"
    database_name = var.database_name
  }

  roles {
    role_name     = "readWrite"
    database_name = "${var.database_name}_keys"
  }

  scopes {
    name = mongodbatlas_advanced_cluster.this.name
    type = "CLUSTER"
  }
}

# The cluster read again once the endpoint is linked: its private-endpoint connection
# strings exist only then.
data "mongodbatlas_advanced_cluster" "linked" {
  project_id = mongodbatlas_advanced_cluster.this.project_id
  name       = mongodbatlas_advanced_cluster.this.name

  depends_on = [mongodbatlas_privatelink_endpoint_service.this]
}

locals {
  # mongodb+srv://<cluster>-pl-0.<id>.mongodb.net, through the endpoint; empty until
  # Atlas has linked it (a second `terraform apply` then fills it in).
  private_srv = try(
    data.mongodbatlas_advanced_cluster.linked.connection_strings.private_endpoint[0].srv_connection_string,
    "",
  )
  credentials = "${var.username}:${urlencode(random_password.caas.result)}"
  mongodb_url = local.private_srv == "" ? "" : format(
    "%s/?retryWrites=true&w=majority",
    replace(local.private_srv, "mongodb+srv://", "mongodb+srv://${local.credentials}@"),
  )
}
