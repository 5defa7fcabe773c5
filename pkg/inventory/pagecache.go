package inventory

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// pageCache keeps the groups of the last listing's DescribeAutoScalingGroups pages by the hash
// of their bytes (without the request id): a page that comes back byte for byte the same is
// not decoded again. Decoding the groups' XML — mostly their member lists — is most of a
// steady-state listing's CPU, and at a steady state nearly every page is unchanged. A page is
// kept as the Groups it makes (fromASG: configuration parsed; members as asgMember) and
// not as the SDK's output, whose pointer-per-field structs were half the controller's live heap
// at 10,000 instances; the listing receives them in the output's metadata (pageGroups) and
// copies them. Pages not seen in a listing are dropped at the next one.
type pageCache struct {
	mu         sync.Mutex
	cur, prev  map[[32]byte]*cachedPage
	hits, miss int
}

// rotate starts a listing: what the previous listing did not use is dropped.
func (c *pageCache) rotate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prev, c.cur = c.cur, map[[32]byte]*cachedPage{}
}

// cachedPage is one page: its groups, as fromASG made them but without members (never
// modified: listings copy them), each group's members in their compact form, and the token of
// the next page.
type cachedPage struct {
	groups  []*Group
	members [][]asgMember
	next    *string
}

// pageGroups is the key of a page in the middleware metadata, which the SDK hands to the caller
// as the output's ResultMetadata.
type pageGroups struct{}

// answer makes the operation's result the page: no SDK groups, the next page's token, and the
// page in the metadata.
func (p *cachedPage) answer(out *middleware.DeserializeOutput, md *middleware.Metadata) {
	out.Result = &autoscaling.DescribeAutoScalingGroupsOutput{NextToken: p.next}
	md.Set(pageGroups{}, p)
}

func (c *pageCache) get(k [32]byte) *cachedPage {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.cur[k]
	if p == nil {
		if p = c.prev[k]; p != nil {
			c.cur[k] = p
		}
	}
	if p != nil {
		c.hits++
	} else {
		c.miss++
	}
	return p
}

func (c *pageCache) put(k [32]byte, p *cachedPage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		c.cur = map[[32]byte]*cachedPage{}
	}
	c.cur[k] = p
}

// option makes a DescribeAutoScalingGroups call go through the cache.
func (c *pageCache) option(o *autoscaling.Options) {
	o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
		orig, ok := s.Deserialize.Get(operationDeserializer)
		if !ok {
			return nil // not the SDK's stack as we know it: decode every page
		}
		_, err := s.Deserialize.Swap(operationDeserializer, &cachingDeserializer{orig: orig, cache: c})
		return err
	})
}

const operationDeserializer = "OperationDeserializer"

// cachingDeserializer wraps the SDK's deserializer: it reads the raw body, answers from the
// cache when the same page was decoded before, and otherwise lets the SDK decode it.
type cachingDeserializer struct {
	orig  middleware.DeserializeMiddleware
	cache *pageCache
}

func (*cachingDeserializer) ID() string { return operationDeserializer }

func (d *cachingDeserializer) HandleDeserialize(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (
	middleware.DeserializeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleDeserialize(ctx, in)
	resp, ok := out.RawResponse.(*smithyhttp.Response)
	if err != nil || !ok || resp.StatusCode != 200 {
		return d.orig.HandleDeserialize(ctx, in, replay{out, md, err})
	}
	buf := bodyBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledBody {
			buf.Reset()
			bodyBuffers.Put(buf)
		}
	}()
	_, err = buf.ReadFrom(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return out, md, &smithy.DeserializationError{Err: err}
	}
	key := pageKey(buf.Bytes())
	if p := d.cache.get(key); p != nil {
		p.answer(&out, &md)
		return out, md, nil
	}
	// The SDK's decoder copies what it keeps out of the body (strings), so the buffer can be
	// reused once it returns.
	resp.Body = io.NopCloser(bytes.NewReader(buf.Bytes()))
	out, md, err = d.orig.HandleDeserialize(ctx, in, replay{out, md, nil})
	if sdk, ok := out.Result.(*autoscaling.DescribeAutoScalingGroupsOutput); ok && err == nil {
		p := &cachedPage{next: sdk.NextToken}
		s := newStrs()
		for _, g := range sdk.AutoScalingGroups {
			grp := fromASG(g, s)
			p.members = append(p.members, compactMembers(grp.Members))
			grp.Members = nil
			p.groups = append(p.groups, grp)
		}
		d.cache.put(key, p)
		p.answer(&out, &md)
	}
	return out, md, err
}

// bodyBuffers hold Auto Scaling pages while they are hashed (about 1 MB at 100 groups of 10
// members): reading each into a fresh slice was a third of a steady-state reconcile's
// allocations.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody bounds the buffers kept for reuse.
const maxPooledBody = 8 << 20

// pageKey hashes a response body without its RequestId element, which differs at every call.
func pageKey(body []byte) [32]byte {
	h := sha256.New()
	if i := bytes.LastIndex(body, []byte("<RequestId>")); i >= 0 {
		if j := bytes.Index(body[i:], []byte("</RequestId>")); j >= 0 {
			h.Write(body[:i])
			h.Write(body[i+j:])
			var k [32]byte
			h.Sum(k[:0])
			return k
		}
	}
	return sha256.Sum256(body)
}

// replay is the rest of the stack, already run.
type replay struct {
	out middleware.DeserializeOutput
	md  middleware.Metadata
	err error
}

func (r replay) HandleDeserialize(context.Context, middleware.DeserializeInput) (middleware.DeserializeOutput, middleware.Metadata, error) {
	return r.out, r.md, r.err
}
