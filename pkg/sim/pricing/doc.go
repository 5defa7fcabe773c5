// Package pricing is the simulated AWS Price List Query API (signing name pricing, AWS JSON 1.1,
// X-Amz-Target: AWSPriceListService.*): GetProducts for ServiceCode AmazonEC2 answers with the region's
// instance types as Price List products in the aws_v1 format — each item a JSON document in a
// string, with product attributes (instanceType, regionCode, location, operatingSystem,
// tenancy, preInstalledSw, capacitystatus, ...) and OnDemand terms whose price dimension holds
// the hourly USD price. Like AWS it lists several products per type (Linux and Windows,
// capacity used and reserved-unused), so a client must filter as it would on AWS.
//
// It serves `spotmax savings` (the on-demand side of the comparison); pkg/sim registers it with
// the catalog of its EC2 instance types.
package pricing
