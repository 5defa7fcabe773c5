package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/iam"
	"github.com/spotmax/spotmax/pkg/imds"
)

// OwnInstanceEC2 is what the agent needs from EC2, all on its own instance (its tags and its
// volumes). *ec2.Client satisfies it.
type OwnInstanceEC2 interface {
	DescribeTags(ctx context.Context, in *ec2.DescribeTagsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeTagsOutput, error)
	CreateTags(ctx context.Context, in *ec2.CreateTagsInput, optFns ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
	DescribeVolumes(ctx context.Context, in *ec2.DescribeVolumesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error)
}

var _ OwnInstanceEC2 = (*ec2.Client)(nil)

// lazyEC2 creates the EC2 client on first use: an instance whose tags are in IMDS and that is
// not a member never needs credentials. Its AWS configuration is shared with the CloudWatch
// publisher (--cloudwatch).
type lazyEC2 struct {
	once   sync.Once
	cfg    *aws.Config
	region string
	// imds fetches the instance role's credentials, IMDSv2 only.
	imds   *imds.Client
	client OwnInstanceEC2
	err    error

	confOnce sync.Once
	conf     aws.Config
	confErr  error
}

// config returns the SDK configuration: Config.AWS when set, else the SDK's default chain
// (instance profile credentials, AWS_ENDPOINT_URL) with the region from IMDS. Loading it reads
// the environment and files only; credentials are fetched on the first call.
func (l *lazyEC2) config(ctx context.Context) (aws.Config, error) {
	l.confOnce.Do(func() {
		if l.cfg != nil {
			l.conf = *l.cfg
			return
		}
		opts := []func(*config.LoadOptions) error{config.WithRegion(l.region),
			config.WithEC2RoleCredentialOptions(func(o *ec2rolecreds.Options) { o.Client = l.imds.SDK() })}
		cfg, err := config.LoadDefaultConfig(ctx, opts...)
		if err != nil {
			l.confErr = fmt.Errorf("loading AWS configuration: %w", err)
			return
		}
		l.conf = cfg
	})
	return l.conf, l.confErr
}

func (l *lazyEC2) get(ctx context.Context) (OwnInstanceEC2, error) {
	l.once.Do(func() {
		cfg, err := l.config(ctx)
		if err != nil {
			l.err = err
			return
		}
		l.client = ec2.NewFromConfig(cfg)
	})
	return l.client, l.err
}

// tagReader reads the instance's own tags.
type tagReader interface {
	// Tag returns a tag's value and whether the instance has it.
	Tag(ctx context.Context, key string) (string, bool, error)
	All(ctx context.Context) (map[string]string, error)
	// Source names where the tags come from, for logs.
	Source() string
	// Every is how often the tags may be polled.
	Every() time.Duration
}

// imdsTags reads the tags from IMDS. Every consumer (the retiring mark, the volume assignment)
// shares one listing of tags/instance/ per interval, and a value is only fetched for a key that
// is there: one request a second in the steady state instead of one per tag.
type imdsTags struct {
	c     *imds.Client
	every time.Duration
	mu    sync.Mutex
	keys  map[string]bool
	at    time.Time
	// fresh gets a value (if it has none) each time the listing was read from IMDS: the volume
	// assignment is read then, from the same listing, instead of on a timer of its own.
	fresh chan struct{}
}

func newIMDSTags(c *imds.Client, every time.Duration) *imdsTags {
	return &imdsTags{c: c, every: every, fresh: make(chan struct{}, 1)}
}

// refreshed returns the channel that tells a listing was read from IMDS.
func (t *imdsTags) refreshed() <-chan struct{} { return t.fresh }

func (t *imdsTags) listing(ctx context.Context) (map[string]bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.keys != nil && time.Since(t.at) < t.every/2 {
		return t.keys, nil
	}
	list, err := t.c.Get(ctx, "tags/instance/")
	if err != nil && !errors.Is(err, imds.ErrNotFound) {
		return nil, err
	}
	keys := map[string]bool{}
	for _, k := range strings.Fields(list) {
		keys[k] = true
	}
	t.keys, t.at = keys, time.Now()
	select {
	case t.fresh <- struct{}{}:
	default:
	}
	return keys, nil
}

// invalidate makes the next read list the tags again.
func (t *imdsTags) invalidate() {
	t.mu.Lock()
	t.keys = nil
	t.mu.Unlock()
}

func (t *imdsTags) Tag(ctx context.Context, key string) (string, bool, error) {
	keys, err := t.listing(ctx)
	if err != nil || !keys[key] {
		return "", false, err
	}
	v, err := t.c.Get(ctx, "tags/instance/"+key)
	if errors.Is(err, imds.ErrNotFound) {
		return "", false, nil
	}
	return v, err == nil, err
}

func (t *imdsTags) All(ctx context.Context) (map[string]string, error) { return t.c.Tags(ctx) }
func (t *imdsTags) Source() string                                     { return "imds" }
func (t *imdsTags) Every() time.Duration                               { return t.every }

type ec2Tags struct {
	ec2   *lazyEC2
	id    string
	every time.Duration
}

func (t ec2Tags) describe(ctx context.Context, keys ...string) (map[string]string, error) {
	api, err := t.ec2.get(ctx)
	if err != nil {
		return nil, err
	}
	filters := []ec2types.Filter{{Name: aws.String("resource-id"), Values: []string{t.id}}}
	if len(keys) > 0 {
		filters = append(filters, ec2types.Filter{Name: aws.String("key"), Values: keys})
	}
	tags := map[string]string{}
	p := ec2.NewDescribeTagsPaginator(api, &ec2.DescribeTagsInput{Filters: filters})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing the tags of %s: %w", t.id, err)
		}
		for _, tg := range out.Tags {
			tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
		}
	}
	return tags, nil
}

func (t ec2Tags) Tag(ctx context.Context, key string) (string, bool, error) {
	tags, err := t.describe(ctx, key)
	if err != nil {
		return "", false, err
	}
	v, ok := tags[key]
	return v, ok, nil
}

func (t ec2Tags) All(ctx context.Context) (map[string]string, error) { return t.describe(ctx) }
func (t ec2Tags) Source() string                                     { return "ec2" }
func (t ec2Tags) Every() time.Duration                               { return t.every }

// setTags tags the agent's own instance, with the agent's own keys only (iam.AgentTagKeys: its
// role may write nothing else, and the controller trusts every other spotmax:state:* key).
func (a *agent) setTags(ctx context.Context, tags map[string]string) error {
	own := iam.AgentTagKeys()
	for k := range tags {
		if !slices.Contains(own, k) {
			return fmt.Errorf("tagging %s with %s: not one of the agent's own keys (%s)", a.id.InstanceID, k, strings.Join(own, ", "))
		}
	}
	api, err := a.ec2.get(ctx)
	if err != nil {
		return err
	}
	var list []ec2types.Tag
	var keys []string
	for k, v := range tags {
		list = append(list, ec2types.Tag{Key: aws.String(k), Value: aws.String(v)})
		keys = append(keys, k)
	}
	if _, err := api.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{a.id.InstanceID}, Tags: list}); err != nil {
		return fmt.Errorf("tagging %s with %s: %w", a.id.InstanceID, strings.Join(keys, ", "), err)
	}
	return nil
}

// ec2TagPollTimeout bounds one poll of a tag through EC2, as the watcher bounded every poll.
// (Reads through IMDS bound themselves.)
const ec2TagPollTimeout = 2 * time.Second

// tagSource turns a tag read by r into a watcher source.
func tagSource(r tagReader, key string, kind imds.Kind) imds.Source {
	path := ""
	if _, viaIMDS := r.(*imdsTags); viaIMDS {
		path = "tags/instance/" // what it reads first (the listing), for the watcher's prefetch
	}
	return imds.Source{Name: r.Source() + " tag " + key, Path: path, Every: r.Every(), Check: func(ctx context.Context) (*imds.Notice, error) {
		if path == "" {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, ec2TagPollTimeout)
			defer cancel()
		}
		v, ok, err := r.Tag(ctx, key)
		if err != nil || !ok {
			return nil, err
		}
		return &imds.Notice{Kind: kind, Action: v}, nil
	}}
}
