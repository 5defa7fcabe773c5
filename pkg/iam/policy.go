// Package iam owns the least-privilege IAM policies of spotmax's two roles: the controller
// (the `spotmax` CLI and `spotmax run` on a management host) and the agent (`spotmax-agent` on
// every instance of a spotmax group). Each statement carries the reason it exists; docs/iam.md
// is rendered from them and a test proves, against the simulated region, that the actions each
// role's code calls and the actions its policy allows are the same set.
package iam

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/metrics"
)

// Role is one of spotmax's IAM roles.
type Role string

// Roles.
const (
	// Controller runs `spotmax run` and the operator commands (group, replace, history).
	Controller Role = "controller"
	// Agent runs spotmax-agent on the instances of spotmax groups (instance profile role).
	Agent Role = "agent"
)

// Roles returns every role, in a stable order.
func Roles() []Role { return []Role{Controller, Agent} }

// ParseRole reads a role name.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles() {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("unknown IAM role %q: want controller or agent", s)
}

// Options narrow the policies.
type Options struct {
	// Group narrows every tag condition to this spotmax group (the value of its spotmax:group
	// tag, which `spotmax group tag` sets to the Auto Scaling group's name) and the Auto
	// Scaling resources to the group of that name. "" allows every spotmax group.
	Group string
	// Partition is the ARN partition: aws (default), aws-cn or aws-us-gov.
	Partition string
	// QueueARN is the SQS queue of EC2 interruption events the controller consumes; default
	// arn:PARTITION:sqs:*:*:spotmax-* (any queue whose name starts with spotmax-).
	QueueARN string
	// InstanceRoleARN is the role in the instance profile of the groups' launch templates,
	// which the controller passes to EC2 when it launches a replacement; default every role
	// (arn:PARTITION:iam::*:role/*), still only to EC2.
	InstanceRoleARN string
}

func (o Options) withDefaults() Options {
	if o.Partition == "" {
		o.Partition = "aws"
	}
	if o.QueueARN == "" {
		o.QueueARN = "arn:" + o.Partition + ":sqs:*:*:spotmax-*"
	}
	if o.InstanceRoleARN == "" {
		o.InstanceRoleARN = "arn:" + o.Partition + ":iam::*:role/*"
	}
	return o
}

// Policy is an IAM policy document.
type Policy struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one statement of a policy. Why explains it (docs and `spotmax iam-policy`
// comments); it is not part of the JSON document.
type Statement struct {
	Sid       string               `json:"Sid"`
	Effect    string               `json:"Effect"`
	Action    []string             `json:"Action"`
	Resource  []string             `json:"Resource"`
	Condition map[string]Condition `json:"Condition,omitempty"`
	Why       string               `json:"-"`
}

// Condition maps condition keys to values, under one operator (StringEquals, ...).
type Condition map[string]any

// JSON renders the policy as indented JSON, as IAM accepts it.
func (p *Policy) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Actions returns every action the policy allows, sorted, each once.
func (p *Policy) Actions() []string {
	var out []string
	for _, s := range p.Statement {
		out = append(out, s.Action...)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// Allows reports whether some statement allows action (service:Action, as IAM spells it).
func (p *Policy) Allows(action string) bool {
	for _, s := range p.Statement {
		if slices.Contains(s.Action, action) {
			return true
		}
	}
	return false
}

// For returns the policy of a role.
func For(role Role, opts Options) (*Policy, error) {
	o := opts.withDefaults()
	switch o.Partition {
	case "aws", "aws-cn", "aws-us-gov":
	default:
		return nil, fmt.Errorf("unknown AWS partition %q: want aws, aws-cn or aws-us-gov", o.Partition)
	}
	if strings.ContainsAny(o.Group, "*?\"") {
		return nil, fmt.Errorf("group %q: a group name cannot contain *, ? or quotes", o.Group)
	}
	b := builder{o: o}
	switch role {
	case Controller:
		return &Policy{Version: "2012-10-17", Statement: b.controller()}, nil
	case Agent:
		return &Policy{Version: "2012-10-17", Statement: b.agent()}, nil
	}
	return nil, fmt.Errorf("unknown IAM role %q: want controller or agent", role)
}

type builder struct{ o Options }

func (b builder) arn(service, resource string) string {
	return "arn:" + b.o.Partition + ":" + service + ":*:*:" + resource
}

// ec2ARN is an EC2 resource ARN in any region and account; images and snapshots have no
// account in their ARN.
func (b builder) ec2ARN(typ string) string {
	if typ == "image" || typ == "snapshot" {
		return "arn:" + b.o.Partition + ":ec2:*::" + typ + "/*"
	}
	return b.arn("ec2", typ+"/*")
}

// logGroupARN is the action log group in any region and account.
func (b builder) logGroupARN() string {
	return "arn:" + b.o.Partition + ":logs:*:*:log-group:" + metrics.DefaultActionLogGroup
}

func (b builder) asgARN() string {
	name := "*"
	if b.o.Group != "" {
		name = b.o.Group
	}
	return b.arn("autoscaling", "autoScalingGroup:*:autoScalingGroupName/"+name)
}

// groupTag is the condition "the tag key carries the group": any value, or the value of
// Options.Group.
func (b builder) groupTag(key string) map[string]Condition {
	if b.o.Group == "" {
		return map[string]Condition{"StringLike": {key: "*"}}
	}
	return map[string]Condition{"StringEquals": {key: b.o.Group}}
}

// tagKeysOnly confines a tagging call to tag keys matching pattern, and requires keys to be
// named: DeleteTags without keys would delete every tag, and ForAllValues is true for an
// empty set.
func tagKeysOnly(pattern string) map[string]Condition {
	return map[string]Condition{
		"ForAllValues:StringLike": {"aws:TagKeys": pattern},
		"Null":                    {"aws:TagKeys": "false"},
	}
}

func merge(cs ...map[string]Condition) map[string]Condition {
	out := map[string]Condition{}
	for _, c := range cs {
		for op, kv := range c {
			if out[op] == nil {
				out[op] = Condition{}
			}
			for k, v := range kv {
				out[op][k] = v
			}
		}
	}
	return out
}

func (b builder) publishMetrics() Statement {
	return Statement{Sid: "PublishMetrics", Effect: "Allow", Action: []string{"cloudwatch:PutMetricData"}, Resource: []string{"*"},
		Condition: map[string]Condition{"StringEquals": {"cloudwatch:namespace": metrics.Namespace}},
		Why: "Publish spotmax's events and gauges. PutMetricData has no resources; the cloudwatch:namespace " +
			"condition confines it to the " + metrics.Namespace + " namespace."}
}

var (
	allSpotmaxTags  = groupconfig.Prefix + "*"
	progressTagKeys = groupconfig.StatePrefix + "*"
)

// agentTagKeys are the only tags the agent writes, all on its own instance: its reports of what
// it did and saw. Every other spotmax:state:* key is the controller's replacement journal, which
// the controller acts on; the agent's role cannot write it, so root on one instance cannot forge
// a journal (docs/iam.md, "Trust boundary").
var agentTagKeys = []string{groupconfig.StateVolumeReleased, groupconfig.StateVolumeMounted, groupconfig.StateNotice,
	groupconfig.StateAgent, groupconfig.StateBlankVolume}

// AgentTagKeys returns the tag keys the agent's role may write (on its own instance only).
func AgentTagKeys() []string { return slices.Clone(agentTagKeys) }

func (b builder) controller() []Statement {
	inst := b.ec2ARN("instance")
	return []Statement{
		{Sid: "Describe", Effect: "Allow", Resource: []string{"*"},
			Action: []string{"autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeScalingActivities", "autoscaling:DescribeWarmPool",
				"ec2:DescribeInstanceTypeOfferings", "ec2:DescribeInstances", "ec2:DescribeLaunchTemplateVersions", "ec2:DescribeSnapshots",
				"ec2:DescribeSpotInstanceRequests", "ec2:DescribeSpotPriceHistory", "ec2:DescribeSubnets", "ec2:DescribeVolumes"},
			Why: "Inventory of groups, members and data volumes; the launch template, subnets and offered instance types of a " +
				"replacement; the spot request status that confirms an interruption warning before it is acted on; the spot " +
				"price history that `spotmax savings` prices spot hours with; a group's warm pool and the scaling activity that " +
				"names the warmed instance the group brought in for a replacement (is_warm_pool_first); the scaling activities that say how an old instance left its group before it could be detached and which member the group launched in its place; a cross-AZ move's snapshot. " +
				"Describe actions support no resource-level permissions, so their resource is \"*\"."},
		{Sid: "LaunchReplacementInstance", Effect: "Allow", Action: []string{"ec2:RunInstances"}, Resource: []string{inst},
			Condition: b.groupTag("aws:RequestTag/" + groupconfig.TagGroup),
			Why: "Launch a replacement. spotmax always tags the new instance with " + groupconfig.TagGroup +
				" in the RunInstances request, so the instance it creates must carry the group's tag."},
		{Sid: "LaunchReplacementResources", Effect: "Allow", Action: []string{"ec2:RunInstances"},
			Resource: []string{b.ec2ARN("image"), b.ec2ARN("key-pair"), b.ec2ARN("launch-template"), b.ec2ARN("network-interface"),
				b.ec2ARN("security-group"), b.ec2ARN("snapshot"), b.ec2ARN("spot-instances-request"), b.ec2ARN("subnet"), b.ec2ARN("volume")},
			Why: "The other resources RunInstances uses or creates: the launch template, its AMI and snapshots, subnet, " +
				"security groups, key pair, the root volume and network interface, and the spot request of a spot launch. " +
				"They carry no spotmax tag, so they are not conditioned; the instance statement above is."},
		{Sid: "TagAtLaunch", Effect: "Allow", Action: []string{"ec2:CreateTags"},
			Resource:  []string{inst, b.ec2ARN("network-interface"), b.ec2ARN("spot-instances-request"), b.ec2ARN("volume")},
			Condition: map[string]Condition{"StringEquals": {"ec2:CreateAction": "RunInstances"}},
			Why: "Tags given in RunInstances (spotmax's own and the launch template's tag specifications) need " +
				"ec2:CreateTags; ec2:CreateAction=RunInstances allows it only as part of a launch."},
		{Sid: "ActOnManagedInstances", Effect: "Allow",
			Action:    []string{"ec2:AttachVolume", "ec2:DetachVolume", "ec2:ModifyInstanceAttribute", "ec2:TerminateInstances"},
			Resource:  []string{inst},
			Condition: b.groupTag("ec2:ResourceTag/" + groupconfig.TagGroup),
			Why: "Terminate the retired instance, keep its data volume (DeleteOnTermination=false) and move the volume. " +
				"Only instances that carry " + groupconfig.TagGroup + " (members keep it after they are detached)."},
		{Sid: "MoveDataVolumes", Effect: "Allow", Action: []string{"ec2:AttachVolume", "ec2:DetachVolume"},
			Resource: []string{b.ec2ARN("volume")},
			Why: "The volume side of a data-volume move. Volumes made from a launch template's block-device mapping " +
				"do not get the group's tags, so the condition is on the instance side (ActOnManagedInstances): a " +
				"volume can only be detached from, and attached to, an instance of a spotmax group."},
		{Sid: "TagManagedInstances", Effect: "Allow", Action: []string{"ec2:CreateTags", "ec2:DeleteTags"}, Resource: []string{inst},
			Condition: merge(b.groupTag("ec2:ResourceTag/"+groupconfig.TagGroup), tagKeysOnly(allSpotmaxTags)),
			Why: "Write the replacement journal (" + groupconfig.StatePrefix + "*) on managed instances, and copy or remove " +
				"propagated spotmax tags on members when a group's tags change. Only spotmax:* keys."},
		{Sid: "TagNewGroupMembers", Effect: "Allow", Action: []string{"ec2:CreateTags"}, Resource: []string{inst},
			Condition: merge(b.groupTag("ec2:ResourceTag/aws:autoscaling:groupName"), tagKeysOnly(allSpotmaxTags)),
			Why: "`spotmax group tag` copies the propagated tags, " + groupconfig.TagGroup + " first of all, onto the current " +
				"members of a group being onboarded, which do not carry " + groupconfig.TagGroup + " yet: allowed on members of " +
				"the Auto Scaling group (aws:autoscaling:groupName), only spotmax:* keys."},
		{Sid: "TagDataVolumes", Effect: "Allow", Action: []string{"ec2:CreateTags", "ec2:DeleteTags"}, Resource: []string{b.ec2ARN("volume")},
			Condition: tagKeysOnly(progressTagKeys),
			Why: "Journal a data volume's move on the volume itself (" + groupconfig.StateMovingFrom + ", " + groupconfig.StateMovingTo +
				"). Only the progress keys " + progressTagKeys + "."},
		{Sid: "MarkPooledVolumes", Effect: "Allow", Action: []string{"ec2:CreateTags"}, Resource: []string{b.ec2ARN("volume")},
			Condition: tagKeysOnly(allSpotmaxTags),
			Why: "Mark a member's data volume as the group's (" + groupconfig.TagGroup + ", " + groupconfig.StateDevice + "), so that " +
				"it stays in the group's pool when its instance goes, and a launch's fresh, provably empty volume as discarded " +
				"(" + groupconfig.StateDiscard + "). Only spotmax:* keys."},
		{Sid: "DeletePooledVolumes", Effect: "Allow", Action: []string{"ec2:DeleteVolume"}, Resource: []string{b.ec2ARN("volume")},
			Condition: b.groupTag("ec2:ResourceTag/" + groupconfig.TagGroup),
			Why: "Delete a launch's fresh volume proven empty and unused once a pooled volume took its place, a pooled volume " +
				"past its group's " + groupconfig.TagVolumeRetentionHours + " (off by default), and `spotmax volumes delete`. " +
				"Only volumes marked as the group's (" + groupconfig.TagGroup + ")."},
		{Sid: "SnapshotDataVolumes", Effect: "Allow", Action: []string{"ec2:CreateSnapshot"}, Resource: []string{b.ec2ARN("volume")},
			Condition: b.groupTag("ec2:ResourceTag/" + groupconfig.TagGroup),
			Why: "A cross-AZ move (" + groupconfig.TagCrossAZMove + ", opt-in) snapshots the group's released data volume. " +
				"Only volumes marked as the group's (" + groupconfig.TagGroup + ")."},
		{Sid: "CreateMoveSnapshots", Effect: "Allow", Action: []string{"ec2:CreateSnapshot"}, Resource: []string{b.ec2ARN("snapshot")},
			Condition: b.groupTag("aws:RequestTag/" + groupconfig.TagGroup),
			Why:       "The snapshot a cross-AZ move creates: spotmax tags it with " + groupconfig.TagGroup + " in the request."},
		{Sid: "RestoreMoveSnapshots", Effect: "Allow", Action: []string{"ec2:CreateVolume"}, Resource: []string{b.ec2ARN("volume")},
			Condition: b.groupTag("aws:RequestTag/" + groupconfig.TagGroup),
			Why: "A cross-AZ move restores the snapshot as a volume in the replacement's AZ, tagged with " + groupconfig.TagGroup +
				" in the request."},
		{Sid: "ReadMoveSnapshots", Effect: "Allow", Action: []string{"ec2:CreateVolume", "ec2:DeleteSnapshot"}, Resource: []string{b.ec2ARN("snapshot")},
			Condition: b.groupTag("ec2:ResourceTag/" + groupconfig.TagGroup),
			Why: "Restore a cross-AZ move's snapshot, and delete it once the copy is attached and verified (the source " +
				"volume, kept, holds the same data). Only snapshots tagged " + groupconfig.TagGroup + "."},
		{Sid: "TagAtCreation", Effect: "Allow", Action: []string{"ec2:CreateTags"}, Resource: []string{b.ec2ARN("snapshot"), b.ec2ARN("volume")},
			Condition: merge(map[string]Condition{"StringEquals": {"ec2:CreateAction": []string{"CreateSnapshot", "CreateVolume"}}},
				tagKeysOnly(allSpotmaxTags)),
			Why: "Tags given in CreateSnapshot and CreateVolume (a cross-AZ move's token, source and the group's tags) need " +
				"ec2:CreateTags; ec2:CreateAction allows it only as part of those calls. Only spotmax:* keys."},
		{Sid: "ManageGroupCapacity", Effect: "Allow",
			Action: []string{"autoscaling:AttachInstances", "autoscaling:DetachInstances", "autoscaling:SetDesiredCapacity",
				"autoscaling:SetInstanceProtection", "autoscaling:SuspendProcesses", "autoscaling:TerminateInstanceInAutoScalingGroup", "autoscaling:UpdateAutoScalingGroup"},
			Resource:  []string{b.asgARN()},
			Condition: b.groupTag("autoscaling:ResourceTag/" + groupconfig.TagGroup),
			Why: "Attach the replacement (raising MaxSize by one when the group is full, and restoring it; AZRebalance is " +
				"suspended first, as it would terminate members holding data volumes to even out zones), detach the " +
				"old instance, restore the desired capacity (also after a stand-in joins for a launch the group could not make), and terminate the member a group launched on its own for an " +
				"old instance that left before it could be detached. Only groups tagged " + groupconfig.TagGroup + "."},
		{Sid: "TagGroups", Effect: "Allow", Action: []string{"autoscaling:CreateOrUpdateTags", "autoscaling:DeleteTags"},
			Resource: []string{b.asgARN()}, Condition: tagKeysOnly(allSpotmaxTags),
			Why: "`spotmax group tag/untag` and the replacement's journaled MaxSize (" + groupconfig.StateGroupMaxSize + "). " +
				"Onboarding a group writes " + groupconfig.TagGroup + " itself, so this cannot be conditioned on it; " +
				"the tag-key condition confines it to spotmax's own tags."},
		b.publishMetrics(),
		{Sid: "ReadMetrics", Effect: "Allow", Action: []string{"cloudwatch:GetMetricData"}, Resource: []string{"*"},
			Why: "`spotmax history`. GetMetricData supports no resource-level permissions or namespace condition."},
		{Sid: "WriteActionRecords", Effect: "Allow",
			Action:   []string{"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"},
			Resource: []string{b.logGroupARN(), b.logGroupARN() + ":*"},
			Why: "The audit trail: `spotmax run`, `spotmax replace` and `spotmax drain` write one record per action to the " +
				"CloudWatch Logs log group " + metrics.DefaultActionLogGroup + " (created on first use, one stream per process). " +
				"Only that log group and its streams."},
		{Sid: "ReadActionRecords", Effect: "Allow", Action: []string{"logs:FilterLogEvents"},
			Resource: []string{b.logGroupARN(), b.logGroupARN() + ":*"},
			Why:      "`spotmax history` lists the action records and `spotmax savings` reconstructs instance-hours from them."},
		{Sid: "ReadPrices", Effect: "Allow", Action: []string{"pricing:GetProducts"}, Resource: []string{"*"},
			Why: "`spotmax savings` prices on-demand hours with the AWS Price List API. It supports no resource-level permissions."},
		{Sid: "WriteDashboards", Effect: "Allow", Action: []string{"cloudwatch:PutDashboard"},
			Resource: []string{"arn:" + b.o.Partition + ":cloudwatch::*:dashboard/" + metrics.DashboardPrefix + "*"},
			Why:      "`spotmax dashboard`: only dashboards whose names start with " + metrics.DashboardPrefix + "."},
		{Sid: "ConsumeInterruptionEvents", Effect: "Allow",
			Action:   []string{"sqs:DeleteMessage", "sqs:ReceiveMessage"},
			Resource: []string{b.o.QueueARN},
			Why: "`spotmax run` consumes EC2 spot interruption, rebalance and state-change events from EventBridge through " +
				"this queue (ReceiveMessage, DeleteMessageBatch, which IAM authorizes as sqs:DeleteMessage)."},
		{Sid: "PassInstanceRole", Effect: "Allow", Action: []string{"iam:PassRole"}, Resource: []string{b.o.InstanceRoleARN},
			Condition: map[string]Condition{"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
			Why: "A launch template with an instance profile makes RunInstances pass its role to EC2, which IAM checks " +
				"as iam:PassRole on the caller. Only to EC2; narrow the resource to your instance role with --instance-role-arn."},
	}
}

func (b builder) agent() []Statement {
	self := merge(b.groupTag("ec2:ResourceTag/"+groupconfig.TagGroup), map[string]Condition{
		"ForAllValues:StringEquals": {"aws:TagKeys": AgentTagKeys()},
		"Null":                      {"aws:TagKeys": "false"},
		"StringEquals":              {"aws:ARN": "${ec2:SourceInstanceARN}"},
	})
	return []Statement{
		{Sid: "ReadOwnInstance", Effect: "Allow", Action: []string{"ec2:DescribeTags", "ec2:DescribeVolumes"}, Resource: []string{"*"},
			Why: "The membership check's fallback when IMDS does not expose instance tags (read this instance's " +
				groupconfig.TagGroup + " and progress tags), and identifying the data volume's device on Xen " +
				"instances, whose disks carry no volume serial, by EC2's attachment record. Describe actions support no resource-level permissions."},
		{Sid: "ReportOnOwnInstance", Effect: "Allow", Action: []string{"ec2:CreateTags"}, Resource: []string{b.ec2ARN("instance")},
			Condition: self,
			Why: "Report on its own instance: the data volume released or mounted, an interruption notice relayed, its own " +
				"presence (so that a replacement waits for a clean release only where an agent runs) and a blank fresh volume. " +
				"Only the agent's own keys (" + strings.Join(agentTagKeys, ", ") + "), never the controller's journal; " +
				"aws:ARN=${ec2:SourceInstanceARN} limits it to the instance whose role credentials sign the request, " +
				"and only instances of a spotmax group."},
		b.publishMetrics(),
	}
}
