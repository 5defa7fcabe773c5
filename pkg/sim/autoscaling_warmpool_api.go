package sim

func init() {
	asgActions["PutWarmPool"] = (*Region).asPutWarmPool
	asgActions["DescribeWarmPool"] = (*Region).asDescribeWarmPool
	asgActions["DeleteWarmPool"] = (*Region).asDeleteWarmPool
}

type asWarmPoolConfig struct {
	InstanceReusePolicy *struct {
		ReuseOnScaleIn bool `xml:"ReuseOnScaleIn"`
	} `xml:"InstanceReusePolicy,omitempty"`
	MaxGroupPreparedCapacity *int32 `xml:"MaxGroupPreparedCapacity,omitempty"`
	MinSize                  int32  `xml:"MinSize"`
	PoolState                string `xml:"PoolState"`
	Status                   string `xml:"Status,omitempty"`
}

// asWarmConfig renders a pool's configuration as DescribeWarmPool and DescribeAutoScalingGroups
// show it; nil when the group has none.
func asWarmConfig(wp *warmPool) *asWarmPoolConfig {
	if wp == nil {
		return nil
	}
	out := &asWarmPoolConfig{MaxGroupPreparedCapacity: wp.cfg.MaxGroupPreparedCapacity, MinSize: wp.cfg.MinSize, PoolState: wp.cfg.PoolState}
	if wp.cfg.ReuseOnScaleIn {
		out.InstanceReusePolicy = &struct {
			ReuseOnScaleIn bool `xml:"ReuseOnScaleIn"`
		}{true}
	}
	if wp.deleting {
		out.Status = "PendingDelete"
	}
	return out
}

func (r *Region) asPutWarmPool(c *call) *APIError {
	p := c.Form
	cfg := WarmPool{PoolState: p.Get("PoolState")}
	if n, ok, err := asInt32(p, "MaxGroupPreparedCapacity"); err != nil {
		return err
	} else if ok {
		cfg.MaxGroupPreparedCapacity = &n
	}
	n, _, err := asInt32(p, "MinSize")
	if err != nil {
		return err
	}
	cfg.MinSize = n
	cfg.ReuseOnScaleIn, _, _ = p.Bool("InstanceReusePolicy.ReuseOnScaleIn")
	if err := r.putWarmPool(p.Get("AutoScalingGroupName"), cfg); err != nil {
		return err
	}
	c.writeQuery(struct{}{})
	return nil
}

func (r *Region) asDescribeWarmPool(c *call) *APIError {
	g, err := r.asGroupByName(c.Form.Get("AutoScalingGroupName"))
	if err != nil {
		return err
	}
	if _, err := asMaxRecords(c.Form, 100); err != nil {
		return err
	}
	out := struct {
		Instances             asList[asInstance] `xml:"Instances"`
		WarmPoolConfiguration *asWarmPoolConfig  `xml:"WarmPoolConfiguration,omitempty"`
	}{Instances: asList[asInstance]{Items: []asInstance{}}}
	if wp := r.asgExtraOf(g).warm; wp != nil {
		out.WarmPoolConfiguration = asWarmConfig(wp)
		for _, m := range wp.members {
			out.Instances.Items = append(out.Instances.Items, r.asRenderMember(m))
		}
	}
	c.writeQuery(out)
	return nil
}

func (r *Region) asDeleteWarmPool(c *call) *APIError {
	g, err := r.asMutable(c.Form.Get("AutoScalingGroupName"))
	if err != nil {
		return err
	}
	x := r.asgExtraOf(g)
	if x.warm == nil {
		return errf(CodeValidationError, "No warm pool found for Auto Scaling group %s.", g.Name)
	}
	force, _, _ := c.Form.Bool("ForceDelete")
	x.warm.deleting = true
	if force {
		for _, m := range append([]*ASGMember(nil), x.warm.members...) {
			if in := r.instances[m.InstanceID]; in != nil && in.State != StateTerminated {
				r.terminate(in, "Client.UserInitiatedShutdown")
			}
		}
		x.warm = nil
	} else {
		r.asgKick(g)
	}
	c.writeQuery(struct{}{})
	return nil
}
