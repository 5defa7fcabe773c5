// Package imds owns what the agent reads from the EC2 instance metadata service (IMDS): the
// instance's identity, its tags, and the notices that an instance is about to go away (spot
// interruption, rebalance recommendation, Auto Scaling termination, spotmax's own retiring
// mark), parsed from their documents and watched by polling.
//
// It is IMDSv2 only, always: documents are read with a cached session token, renewed before
// its end and at once when IMDS refuses it with 401, and nothing is read when no token can be
// had (never an IMDSv1 fallback). Get, which the notice polls run several times a second, is a
// lean request path (lean.go); the identity document and the instance-role credentials go
// through the AWS SDK's IMDS client (github.com/aws/aws-sdk-go-v2/feature/ec2/imds), configured
// the same way.
package imds

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	sdk "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// ErrNotFound means IMDS has no document at the path (HTTP 404): no notice, no such tag.
var ErrNotFound = errors.New("not in instance metadata")

// ErrTagsUnavailable means the instance's tags are not in IMDS: the launch template does not
// enable instance metadata tags (MetadataOptions.InstanceMetadataTags).
var ErrTagsUnavailable = errors.New("instance tags are not in instance metadata (InstanceMetadataTags is disabled)")

// Options configure a Client.
type Options struct {
	// Endpoint is the IMDS base URL, e.g. http://169.254.169.254. Empty: the SDK's default,
	// which honours AWS_EC2_METADATA_SERVICE_ENDPOINT.
	Endpoint string
	// Attempts is how many times one request is tried (default 2: a refused cached token is
	// retried once with a new one). Pollers retry on their own schedule.
	Attempts int
	// HTTPClient replaces the SDK's HTTP client (tests, proxies).
	HTTPClient sdk.HTTPClient
}

// Client reads the instance metadata service.
type Client struct {
	sdk      *sdk.Client
	lean     *lean // Get's request path (lean.go)
	endpoint string
}

// New returns a client. It does not contact IMDS.
func New(o Options) *Client {
	attempts := o.Attempts
	if attempts <= 0 {
		attempts = 2
	}
	so := sdk.Options{
		Endpoint: o.Endpoint,
		// Never IMDSv1: a request without a session token is what an SSRF can make.
		EnableFallback: aws.FalseTernary,
		Retryer:        retry.NewStandard(func(r *retry.StandardOptions) { r.MaxAttempts = attempts }),
		HTTPClient:     o.HTTPClient,
	}
	var hc doer
	if o.HTTPClient != nil {
		hc = o.HTTPClient
	}
	c := &Client{sdk: sdk.New(so), lean: newLean(o.Endpoint, hc), endpoint: o.Endpoint}
	if c.endpoint == "" {
		c.endpoint = "default"
	}
	return c
}

// SDK returns the underlying SDK client, for the SDK's instance-role credential provider
// (config.WithEC2RoleCredentialOptions): credentials are then fetched IMDSv2 only too, whatever
// AWS_EC2_METADATA_V1_DISABLED says.
func (c *Client) SDK() *sdk.Client { return c.sdk }

// Endpoint returns the endpoint the client was given ("default" for the SDK's choice), for logs.
func (c *Client) Endpoint() string { return c.endpoint }

// Get returns the document at a path below /latest/meta-data/, e.g. "spot/instance-action".
// A missing document is ErrNotFound.
// It runs on the lean request path (lean.go), IMDSv2 only like the SDK client.
func (c *Client) Get(ctx context.Context, path string) (string, error) {
	v, err := c.lean.get(ctx, path)
	if err != nil {
		return "", &getError{path: path, err: err}
	}
	return v, nil
}

// getError is Get's error: "reading <path> from IMDS: <err>", formatted only when read (the
// notice poll's 404 is an error several times a second).
type getError struct {
	path string
	err  error
}

func (e *getError) Error() string { return "reading " + e.path + " from IMDS: " + e.err.Error() }
func (e *getError) Unwrap() error { return e.err }

// Prefetch reads the documents at paths (below /latest/meta-data/) together, pipelined on the
// lean path's connection, and keeps each answer for the next Get of its path until done is
// called, which drops those not taken. The Watcher calls it for the sources due on the same
// tick: their answers then wake the agent once instead of once each. It never fails: anything
// not prefetched is read by Get as usual.
func (c *Client) Prefetch(ctx context.Context, paths []string) (done func()) {
	c.lean.prefetch(ctx, paths)
	return c.lean.forget
}

// Identity is what the agent needs to know about its instance.
type Identity struct {
	InstanceID   string
	Region       string
	AZ           string
	PrivateIP    string
	InstanceType string
}

// Identity reads the instance identity document.
func (c *Client) Identity(ctx context.Context) (Identity, error) {
	out, err := c.sdk.GetInstanceIdentityDocument(ctx, &sdk.GetInstanceIdentityDocumentInput{})
	if err != nil {
		return Identity{}, fmt.Errorf("reading the instance identity document from IMDS: %w", err)
	}
	id := Identity{InstanceID: out.InstanceID, Region: out.Region, AZ: out.AvailabilityZone,
		PrivateIP: out.PrivateIP, InstanceType: out.InstanceType}
	if id.InstanceID == "" || id.Region == "" {
		return id, fmt.Errorf("reading the instance identity document from IMDS: no instanceId or region in it")
	}
	if !ValidInstanceID(id.InstanceID) {
		// It ends up in file names, tags and logs: anything but an instance id is refused.
		return Identity{}, fmt.Errorf("the instance identity document from IMDS (%s) has instanceId %q: %w",
			c.endpoint, id.InstanceID, ErrInvalidInstanceID)
	}
	return id, nil
}

// instanceIDRe is the shape of an EC2 instance id: i- and 8 or 17 hex digits.
var instanceIDRe = regexp.MustCompile(`^i-[0-9a-f]{8}([0-9a-f]{9})?$`)

// ValidInstanceID reports whether id is an EC2 instance id (i-0123456789abcdef0).
func ValidInstanceID(id string) bool { return instanceIDRe.MatchString(id) }

// ErrInvalidInstanceID means IMDS gave an instance id that is not one: a broken or hostile
// metadata endpoint. It is not retried.
var ErrInvalidInstanceID = errors.New("not an EC2 instance id (i- and 8 or 17 hex digits)")

// tagsPath is where IMDS lists the instance's tags.
const tagsPath = "tags/instance/"

// Tag returns the value of one instance tag: ErrNotFound when the instance does not have it,
// ErrTagsUnavailable when IMDS shows no tags at all.
func (c *Client) Tag(ctx context.Context, key string) (string, error) {
	if key == "" || strings.ContainsAny(key, "/ ") {
		return "", fmt.Errorf("reading tag %q from IMDS: IMDS cannot show a key with '/' or a space", key)
	}
	v, err := c.Get(ctx, tagsPath+key)
	if errors.Is(err, ErrNotFound) {
		if _, lerr := c.Get(ctx, tagsPath); errors.Is(lerr, ErrNotFound) {
			return "", fmt.Errorf("reading tag %s: %w", key, ErrTagsUnavailable)
		}
	}
	return v, err
}

// Tags returns all of the instance's tags that IMDS shows; ErrTagsUnavailable when it shows
// none (metadata tags disabled).
func (c *Client) Tags(ctx context.Context) (map[string]string, error) {
	list, err := c.Get(ctx, tagsPath)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("listing instance tags: %w", ErrTagsUnavailable)
	}
	if err != nil {
		return nil, err
	}
	keys := strings.Fields(list)
	sort.Strings(keys)
	tags := make(map[string]string, len(keys))
	for _, k := range keys {
		v, err := c.Get(ctx, tagsPath+k)
		if errors.Is(err, ErrNotFound) {
			continue // removed between the listing and now
		}
		if err != nil {
			return nil, err
		}
		tags[k] = v
	}
	return tags, nil
}

// requestTimeout bounds one poll, whatever the SDK's own timeouts.
const requestTimeout = 2 * time.Second
