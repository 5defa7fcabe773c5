package replace

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/groupconfig"
)

// Journal is a replacement in progress, as journaled on its old instance.
type Journal struct {
	Group       string    `json:"group"`
	Old         string    `json:"old"`
	Replacement string    `json:"replacement,omitempty"`
	Phase       Phase     `json:"phase"`
	Reason      Reason    `json:"reason"`
	Started     time.Time `json:"started"`
}

// InFlight lists every journaled replacement in the region, in paged DescribeInstances calls
// filtered on the journal tag, oldest first. The controller resumes them; `spotmax replace
// --resume` lists them.
func (w *Workflow) InFlight(ctx context.Context) ([]Journal, error) {
	in := &ec2.DescribeInstancesInput{
		MaxResults: aws.Int32(1000),
		Filters:    []ec2types.Filter{{Name: aws.String("tag-key"), Values: []string{groupconfig.StatePhase}}},
	}
	var out []Journal
	p := ec2.NewDescribeInstancesPaginator(w.EC2, in)
	for p.HasMorePages() {
		var page *ec2.DescribeInstancesOutput
		err := w.call(ctx, func(ctx context.Context) (err error) {
			page, err = p.NextPage(ctx)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("listing journaled replacements: %w", err)
		}
		for _, r := range page.Reservations {
			for _, inst := range r.Instances {
				j := stateTags(inst.Tags)
				started, _ := time.Parse(time.RFC3339, j[groupconfig.StateStarted])
				out = append(out, Journal{Group: j[groupconfig.StateJournalGroup], Old: aws.ToString(inst.InstanceId),
					Replacement: j[groupconfig.StateReplacement], Phase: Phase(j[groupconfig.StatePhase]),
					Reason: Reason(j[groupconfig.StateReason]), Started: started})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Started.Equal(out[j].Started) {
			return out[i].Started.Before(out[j].Started)
		}
		return out[i].Old < out[j].Old
	})
	return out, nil
}
