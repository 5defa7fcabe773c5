package replace

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/spotmax/spotmax/pkg/groupconfig"
)

// ConfirmInterruption reports whether EC2 is really taking instance id away, before an
// interruption event read from a queue is acted on drastically: a duplicated, stale or mistaken
// "EC2 Spot Instance Interruption Warning" must not detach a healthy instance that holds a
// group's data. Confirmed are: the instance already stopping or terminating; its spot request's
// status marked-for-termination, marked-for-stop or marked-for-hibernation (AWS's spot request
// status lifecycle); or the notice relayed by the agent, which read it from the instance's own
// IMDS. The second result says what was found, for logs.
func (w *Workflow) ConfirmInterruption(ctx context.Context, id string) (bool, string, error) {
	inst, err := w.describeInstance(ctx, id)
	if err != nil {
		return false, "", err
	}
	switch st := stateName(inst); st {
	case "stopping", "stopped", "shutting-down", "terminated":
		return true, "instance is " + st, nil
	}
	if n := instanceTag(inst.Tags, groupconfig.StateNotice); n != "" {
		return true, "notice relayed by the agent: " + n, nil
	}
	sir := aws.ToString(inst.SpotInstanceRequestId)
	if sir == "" {
		return false, "not a spot instance", nil
	}
	var out *ec2.DescribeSpotInstanceRequestsOutput
	err = w.call(ctx, func(ctx context.Context) (err error) {
		out, err = w.EC2.DescribeSpotInstanceRequests(ctx, &ec2.DescribeSpotInstanceRequestsInput{SpotInstanceRequestIds: []string{sir}})
		return err
	})
	if err != nil {
		return false, "", fmt.Errorf("reading spot request %s of %s: %w", sir, id, err)
	}
	for _, r := range out.SpotInstanceRequests {
		if r.Status == nil {
			continue
		}
		switch code := aws.ToString(r.Status.Code); code {
		case "marked-for-termination", "marked-for-stop", "marked-for-hibernation":
			return true, "spot request " + code, nil
		default:
			return false, "spot request " + code, nil
		}
	}
	return false, "spot request " + sir + " not found", nil
}
