output "cluster_name" {
  description = "The EKS cluster's name (the release workflow's EKS_CLUSTER_NAME)."
  value       = aws_eks_cluster.this.name
}

output "cluster_arn" {
  description = "The EKS cluster's ARN."
  value       = aws_eks_cluster.this.arn
}

output "cluster_endpoint" {
  description = "The Kubernetes API's address."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_certificate_authority_data" {
  description = "The API's CA certificate, base64-encoded (for a kubeconfig)."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "cluster_security_group_id" {
  description = "The security group EKS gives the control plane and the managed nodes (hence the pods): data stores admit it."
  value       = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

output "oidc_provider_arn" {
  description = "The cluster's IAM OIDC provider, for service-account roles."
  value       = aws_iam_openid_connect_provider.this.arn
}

output "node_role_arn" {
  description = "The managed nodes' IAM role."
  value       = aws_iam_role.node.arn
}

output "oidc_issuer" {
  description = "The cluster's OIDC issuer without its scheme, the prefix of IRSA trust-policy conditions (<issuer>:sub)."
  value       = replace(aws_eks_cluster.this.identity[0].oidc[0].issuer, "https://", "")
}
