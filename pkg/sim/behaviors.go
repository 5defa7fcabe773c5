package sim

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// Behaviors switch the AWS behaviours that make the simulated region as hard as AWS: eventual
// consistency, capacity errors answered as server errors, lifecycle hooks, load-balancer
// draining and the rest. Each service owns its part (behaviors_ec2.go, behaviors_autoscaling.go).
//
// AWSBehaviors turns every one of them on, as AWS does, and is the default of a region and of a
// scenario; the zero value is the kind world that tests name explicitly when they need it
// (KindBehaviors).
type Behaviors struct {
	EC2         EC2Behaviors         `yaml:"ec2" json:"ec2"`
	AutoScaling AutoScalingBehaviors `yaml:"autoscaling" json:"autoscaling"`
}

// AWSBehaviors returns every modelled AWS behaviour switched on, with AWS-like windows.
func AWSBehaviors() Behaviors {
	return Behaviors{EC2: awsEC2Behaviors(), AutoScaling: awsAutoScalingBehaviors()}
}

// KindBehaviors returns the kind world: every modelled AWS behaviour switched off. A test that
// needs it says so by asking for it.
func KindBehaviors() Behaviors { return Behaviors{} }

// ScenarioBehaviors are a scenario's behaviours: a preset ("aws", the default, or "kind") with
// optional per-service overrides.
//
//	behaviors: aws
//	behaviors: {base: kind, ec2: {capacityServerErrors: true}}
type ScenarioBehaviors struct {
	Base        string         `yaml:"base"`
	EC2         map[string]any `yaml:"ec2"`
	AutoScaling map[string]any `yaml:"autoscaling"`
}

// UnmarshalYAML accepts a preset name or a mapping.
func (b *ScenarioBehaviors) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*b = ScenarioBehaviors{Base: n.Value}
		return nil
	}
	if err := scenarioCheckKeys(n, "behaviors", b); err != nil {
		return err
	}
	type plain ScenarioBehaviors
	return n.Decode((*plain)(b))
}

// Resolve returns the behaviours the scenario asks for.
func (b ScenarioBehaviors) Resolve() (Behaviors, error) {
	var out Behaviors
	switch b.Base {
	case "", "aws":
		out = AWSBehaviors()
	case "kind":
		out = KindBehaviors()
	default:
		return out, fmt.Errorf("behaviors: %q must be aws or kind", b.Base)
	}
	if err := overlay(&out.EC2, b.EC2, "behaviors.ec2"); err != nil {
		return out, err
	}
	if err := overlay(&out.AutoScaling, b.AutoScaling, "behaviors.autoscaling"); err != nil {
		return out, err
	}
	return out, nil
}

// overlay decodes a mapping of overrides onto dst through YAML, refusing unknown keys.
func overlay(dst any, m map[string]any, what string) error {
	if len(m) == 0 {
		return nil
	}
	raw, err := yaml.Marshal(m)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	var n yaml.Node
	if err := yaml.Unmarshal(raw, &n); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if len(n.Content) == 0 {
		return nil
	}
	if err := scenarioCheckKeys(n.Content[0], what, dst); err != nil {
		return err
	}
	return n.Content[0].Decode(dst)
}

// Behaviors returns the region's current behaviours.
func (r *Region) Behaviors() Behaviors {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.beh
}

// SetBehaviors switches the region's behaviours; it applies to calls made from now on.
func (r *Region) SetBehaviors(b Behaviors) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.beh = b
}
