output "vpc_id" {
  description = "The VPC's id."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "The VPC's IPv4 range."
  value       = aws_vpc.this.cidr_block
}

output "public_subnet_ids" {
  description = "Public subnets, one per availability zone (internet-facing load balancers)."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Private subnets, one per availability zone (nodes and data stores)."
  value       = aws_subnet.private[*].id
}

output "private_route_table_ids" {
  description = "Route tables of the private subnets."
  value       = aws_route_table.private[*].id
}

output "nat_public_ips" {
  description = "The NAT gateways' public addresses: what services outside the VPC (Elastic Cloud's traffic filter) see the cluster's traffic come from."
  value       = aws_eip.nat[*].public_ip
}

output "private_subnet_cidrs" {
  description = "The private subnets' ranges, where the data stores' interfaces live (the egress of deploy/k8s's NetworkPolicy)."
  value       = aws_subnet.private[*].cidr_block
}
